"""LeadCreator: creates the CRM lead a campaign owes (R-LIFE-4), off the send path.

It works off participants marked ``lead_due_at`` (set with the first send or the reply that triggers
it), calls the pipeline service once each (409 means the lead exists: done), retries unreachable or
failing calls with backoff, and gives up on a refusal (recorded on the participant).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

import asyncpg
import trio

from campaignsvc.actors.bus import Bus
from campaignsvc.actors.messages import ControlMessage, LeadsOwed
from campaignsvc.domain.delivery import backoff_s
from campaignsvc.errors import StorageError
from campaignsvc.integrations.pipeline import LeadCreationFailed, PipelineClient
from campaignsvc.logs import get_logger
from campaignsvc.storage import leads as db
from campaignsvc.storage.store import Store

log = get_logger(__name__)

BATCH = 50
MAX_ATTEMPTS = 12
IDLE_RECHECK_S = 60.0


class LeadCreator:
    def __init__(
        self,
        store: Store,
        pipeline: PipelineClient,
        *,
        bus: Bus | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._pipeline = pipeline
        # Woken by LeadsOwed; without a bus it looks every IDLE_RECHECK_S (and when woken directly).
        self._owed = bus.subscribe(LeadsOwed) if bus is not None else None
        self._rng = rng or random.Random()
        self._wake = trio.Event()
        self.created = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[LeadCreator] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        try:
            async with trio.open_nursery() as nursery:
                if self._owed is not None:
                    nursery.start_soon(self._hear_owed, self._owed)
                await self._work()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._pipeline.aclose()

    async def _hear_owed(self, owed: trio.MemoryReceiveChannel[ControlMessage]) -> None:
        async for _ in owed:
            self.wake()

    async def _work(self) -> None:
        while True:
            self._wake = trio.Event()  # before the round: a wake during it is not lost
            try:
                worked = await self._round()
            except StorageError as exc:
                log.warning("leads.database_error", error=str(exc))
                worked = False
            if worked:
                continue
            with trio.move_on_after(IDLE_RECHECK_S):
                await self._wake.wait()

    async def _round(self) -> bool:
        batch = await self._store.run(db.due, BATCH, transaction=False)
        for item in batch:
            await self._create(item)
        return bool(batch)

    async def _create(self, item: asyncpg.Record) -> None:
        settings = item["lead_creation_settings"] or {}
        on_reply = settings.get("trigger") == "on_reply"
        try:
            lead_id = await self._pipeline.create_lead(
                organization_id=item["organization_id"],
                user_id=item["created_by_user_id"],
                contact_id=item["contact_id"],
                pipeline_id=item["pipeline_id"],
                stage_id=item["stage_id"],
                responsible_id=_uuid(settings.get("default_responsible_id")),
                correlation_id=str(uuid.uuid4()),
            )
        except LeadCreationFailed as exc:
            attempts = item["attempts"] + 1
            if exc.retryable and attempts < MAX_ATTEMPTS:
                until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=backoff_s(attempts, self._rng))
                await self._store.run(db.postpone, item["id"], until, str(exc))
            else:
                log.warning("leads.given_up", participant_id=str(item["id"]), error=str(exc))
                await self._store.run(db.give_up, item["id"], str(exc))
            return
        await self._store.run(db.created, item, lead_id, on_reply=on_reply)
        self.created += 1


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
