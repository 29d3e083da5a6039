"""The baseline scheduler: the original service's design, a poller (original-v1 §4.1–4.3).

Every ``CAMPAIGN_SEND_INTERVAL_MS`` it reads the due participants of active campaigns and sends them,
keeping ``CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT`` between two sends of an account. It is kinder than the
original so the comparison is about the design, not its bugs: sends of one tick run concurrently (the
original sends 20 per tick, one after the other, sleeping between them), an account's last send is
remembered across ticks (the original forgets it after each batch), and an account is never sent twice at
once. Each send uses the product's own claim transaction, Messaging client and outcome transaction, so
the per-send work is the same as the service's.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import trio

from campaignsvc.actors.recorder import Outcome, write_outcomes
from campaignsvc.config import Settings
from campaignsvc.domain import claims
from campaignsvc.domain.campaign import CampaignPlan, ParticipantUpdate, after_send
from campaignsvc.domain.claims import decide
from campaignsvc.domain.status import ParticipantStatus
from campaignsvc.errors import StorageError
from campaignsvc.integrations.messaging import Delivered, MessagingClient, SendCommand
from campaignsvc.storage import claims as claims_db
from campaignsvc.storage import dispatch
from campaignsvc.storage.store import Store

DUE_SQL = """
SELECT cp.id, cp.campaign_id, cp.bd_account_id, cp.current_step, cp.next_send_at
FROM campaign_participants cp JOIN campaigns c ON c.id = cp.campaign_id
WHERE c.status = 'active' AND cp.status IN ('pending', 'sent') AND cp.next_send_at IS NOT NULL
  AND cp.next_send_at <= now() AND cp.bd_account_id IS NOT NULL
ORDER BY cp.next_send_at, cp.enqueue_order
LIMIT $1
"""


class Poller:
    def __init__(self, store: Store, settings: Settings, messaging: MessagingClient, batch: int = 20_000):
        self._store = store
        self._settings = settings
        self._messaging = messaging
        self._batch = batch
        self._gap = dt.timedelta(milliseconds=settings.min_gap_ms_same_bd_account)
        self._last_send: dict[uuid.UUID, dt.datetime] = {}
        self._in_flight: set[uuid.UUID] = set()
        self._plans: dict[uuid.UUID, CampaignPlan] = {}
        self._rng = random.Random(1)
        # The sends of a tick share the pool: as many at once as it has connections.
        self._slots = trio.CapacityLimiter(settings.db_pool_max)
        self.sends = 0
        self.errors = 0
        self.ticks = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        interval = self._settings.send_interval_ms / 1000.0
        async with trio.open_nursery() as nursery:
            task_status.started()
            next_tick = trio.current_time()
            while True:
                # setInterval: ticks at a fixed rate, whether or not the previous batch has finished.
                nursery.start_soon(self._tick, nursery)
                next_tick += interval
                await trio.sleep_until(next_tick)

    async def _plan(self, campaign_id: uuid.UUID) -> CampaignPlan:
        plan = self._plans.get(campaign_id)
        if plan is None:
            campaign, steps = await self._store.run(dispatch.load_campaign, campaign_id, transaction=False)
            plan = CampaignPlan.from_rows(campaign, steps, reply_wait_hours=self._settings.reply_wait_hours)
            self._plans[campaign_id] = plan
        return plan

    async def _tick(self, nursery: trio.Nursery) -> None:
        self.ticks += 1
        rows = await self._store.fetch(DUE_SQL, self._batch)
        now = dt.datetime.now(dt.UTC)
        for row in rows:
            account = row["bd_account_id"]
            if account in self._in_flight:
                continue
            last = self._last_send.get(account)
            if last is not None and now - last < self._gap:
                continue  # the original defers it by the rest of the gap; the next tick finds it
            self._in_flight.add(account)
            nursery.start_soon(self._send, row)

    async def _send(self, row: Any) -> None:
        account = row["bd_account_id"]
        try:
            async with self._slots:
                await self._send_one(row)
        except StorageError:
            self.errors += 1  # the original logs it and moves on; the row stays due for the next tick
        finally:
            self._in_flight.discard(account)

    async def _send_one(self, row: Any) -> None:
        account = row["bd_account_id"]
        plan = await self._plan(row["campaign_id"])
        step = row["current_step"]
        started = dt.datetime.now(dt.UTC)
        key = plan.steps[step].key
        assert key is not None
        claimed = await self._store.run(
            claims_db.claim,
            claims_db.Ask(
                participant_id=row["id"],
                step=step,
                step_key=key,
                bd_account_id=account,
                decide=lambda facts: decide(plan, step, None, self._rng, started, "", facts),
            ),
            quarantine=dt.timedelta(seconds=self._settings.in_doubt_retry_after_s),
        )
        if not isinstance(claimed, claims.Claimed):
            return
        self._last_send[account] = started
        answer = await self._messaging.send(
            SendCommand(
                organization_id=plan.organization_id,
                user_id=plan.owner_id,
                contact_id=claimed.contact_id,
                bd_account_id=account,
                channel_id=claimed.channel_id,
                content=claimed.content,
                idempotency_key=claimed.idempotency_key,
                correlation_id=str(uuid.uuid4()),
            )
        )
        now = dt.datetime.now(dt.UTC)
        delivered = isinstance(answer, Delivered)
        if delivered:
            update = after_send(plan, step, now, None, self._rng)
        else:  # the baseline does not retry: the participant fails, as in the original
            update = ParticipantUpdate(step, ParticipantStatus.FAILED, None, None, last_error=str(answer))
        outcome = Outcome(
            campaign_id=row["campaign_id"],
            organization_id=plan.organization_id,
            participant_id=row["id"],
            bd_account_id=account,
            step=step,
            update=update,
            send_id=claimed.send_id,
            ledger_status="sent" if delivered else "failed",
            message_id=answer.message_id if isinstance(answer, Delivered) else None,
            last_sent_at=now if delivered else None,
            event=("campaign.message.sent", {"campaignId": str(row["campaign_id"])}),
        )
        await self._store.run(write_outcomes, [outcome])
        self.sends += 1
