"""Recorder: writes send outcomes in batches (write-behind), one transaction per batch.

Limiters hand it an :class:`Outcome` and move on; it commits the ledger row, the participant's next
state and the outbox event together, then tells the participant's campaign that its slot is free. A
failed commit is retried — an outcome is never dropped. If the process dies first, the ledger row is
still ``sending`` and the boot recovery treats it as in doubt (retried with the same key), so nothing is
lost and nothing is sent twice.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import attrs
import trio

from campaignsvc.domain.campaign import ParticipantUpdate
from campaignsvc.errors import StorageError
from campaignsvc.logs import get_logger
from campaignsvc.storage import dispatch, outbox
from campaignsvc.storage.store import Store

log = get_logger(__name__)

MAX_BATCH = 500


@attrs.frozen
class Outcome:
    campaign_id: uuid.UUID
    organization_id: uuid.UUID
    participant_id: uuid.UUID
    bd_account_id: uuid.UUID
    step: int
    update: ParticipantUpdate
    send_id: uuid.UUID | None = None  # the ledger row to finish (None: nothing was claimed)
    ledger_status: str | None = None  # sent | failed | deferred | in_doubt
    message_id: uuid.UUID | None = None
    error_class: str | None = None
    error: str | None = None
    last_sent_at: dt.datetime | None = None
    channel_id: str | None = None
    event: tuple[str, dict[str, Any]] | None = None
    lead_due: bool = False


# (campaign id, participant id, account id, participant's new state or None): the slot is free again.
Release = Callable[[uuid.UUID, uuid.UUID, uuid.UUID, ParticipantUpdate | None], None]


async def _write(conn: asyncpg.Connection, batch: list[Outcome]) -> int:
    """The batch in one transaction, one statement per kind of write (not per outcome)."""
    await dispatch.finish_sends(
        conn,
        [
            (o.send_id, o.ledger_status, o.message_id, o.error_class, o.error)
            for o in batch
            if o.send_id is not None and o.ledger_status is not None
        ],
    )
    await dispatch.apply_updates(
        conn,
        [dispatch.Advance(o.participant_id, o.step, o.update, o.last_sent_at, o.channel_id) for o in batch],
    )
    await dispatch.mark_leads_due(conn, [o.participant_id for o in batch if o.lead_due])
    events = [(o.event[0], o.organization_id, o.event[1]) for o in batch if o.event is not None]
    await outbox.enqueue_many(conn, events)
    return len(events)


class Recorder:
    def __init__(
        self,
        store: Store,
        *,
        release: Release,
        events_written: Callable[[], None] = lambda: None,
        leads_due: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._release = release
        self._events_written = events_written
        self._leads_due = leads_due
        self._send, self._receive = trio.open_memory_channel[Outcome](math.inf)
        self.recorded = 0
        self.batches = 0
        self._committed = trio.Event()  # replaced after every commit

    def record(self, outcome: Outcome) -> None:
        """Never blocks: the limiter must not wait for the database to pace the next send."""
        self._send.send_nowait(outcome)

    def backlog(self) -> int:
        return self._receive.statistics().current_buffer_used

    async def run(self, *, task_status: trio.TaskStatus[Recorder] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        async with self._receive:
            while True:
                batch = [await self._receive.receive()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self._commit(batch)

    async def _commit(self, batch: list[Outcome]) -> None:
        delay = 0.1
        while True:
            try:
                events = await self._store.run(_write, batch)
                break
            except StorageError as exc:
                log.warning("recorder.retry", error=str(exc), outcomes=len(batch), in_s=delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.recorded += len(batch)
        self.batches += 1
        if events:
            self._events_written()
        if any(o.lead_due for o in batch):
            self._leads_due()
        for o in batch:
            self._release(o.campaign_id, o.participant_id, o.bd_account_id, o.update)
        self._committed.set()
        self._committed = trio.Event()

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until every outcome handed in so far is committed."""
        with trio.move_on_after(timeout_s):
            while self._receive.statistics().current_buffer_used:
                await self._committed.wait()
