"""CampaignActor: one per active campaign.

It keeps the participants due within the next minute in a heap (read from the database in batches), and
at each one's due time hands it to its account's limiter as a :class:`SendRequest`. Backpressure: at
most one request per account is out at a time; other due participants of a busy account wait in memory
until the limiter releases the slot (after the outcome is committed). It sleeps until the earliest due
time or a message, never polls per participant, and completes the campaign when nothing is left (R-LIFE-2).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import heapq
import itertools
import math
import uuid
from typing import Protocol

import attrs
import trio

from campaignsvc.actors.clock import Clock
from campaignsvc.actors.limiter import CLAIM_LEAD, AccountLimiter, SendRequest
from campaignsvc.config import Settings
from campaignsvc.domain.campaign import CampaignPlan, ParticipantUpdate
from campaignsvc.domain.status import CampaignStatus
from campaignsvc.logs import get_logger
from campaignsvc.storage import dispatch, lifecycle
from campaignsvc.storage import variants as variants_db
from campaignsvc.storage.store import Store

log = get_logger(__name__)

HORIZON = dt.timedelta(seconds=60)
LOAD_LIMIT = 2000
# A full window is read again once fewer than a quarter of LOAD_LIMIT rows are still in memory, but not
# sooner than REFILL_PAUSE after the last read (a window of rows all held at their accounts must not spin).
REFILL_PAUSE = dt.timedelta(milliseconds=250)
# How often a campaign with autoWinner steps reads the A/B statistics again (one query; docs/semantics.md,
# "A/B variants").
WINNERS_EVERY = dt.timedelta(minutes=1)


class Directory(Protocol):
    """What a campaign actor needs from the supervisor."""

    def limiter(self, bd_account_id: uuid.UUID) -> AccountLimiter: ...


@attrs.frozen
class _Released:
    participant_id: uuid.UUID
    bd_account_id: uuid.UUID
    update: ParticipantUpdate | None


@attrs.frozen
class _Deferred:
    request: SendRequest
    until: dt.datetime
    reason: str


@attrs.frozen
class _Reload:
    pass


@attrs.frozen
class _AccountReset:
    bd_account_id: uuid.UUID


@attrs.frozen
class _AccountLost:
    bd_account_id: uuid.UUID


class CampaignActor:
    def __init__(
        self,
        campaign_id: uuid.UUID,
        *,
        store: Store,
        settings: Settings,
        clock: Clock,
        directory: Directory,
        enrol: object | None = None,
        boot: trio.CapacityLimiter | None = None,
        owner: str | None = None,
    ) -> None:
        self.campaign_id = campaign_id
        # The instance whose leased accounts this actor sends for (None: every account).
        self._owner = owner
        # Held while the actor first reads the database, so thousands of actors starting together (a
        # restart) take turns instead of all queueing on the pool past its acquire timeout.
        self._boot: contextlib.AbstractAsyncContextManager[object] = boot or contextlib.nullcontext()
        self._store = store
        self._settings = settings
        self._clock = clock
        self._directory = directory
        self._enrol = enrol
        self._send, self._inbox = trio.open_memory_channel[object](math.inf)
        self.plan: CampaignPlan | None = None
        self.busy: dict[uuid.UUID, uuid.UUID] = {}  # account → participant out at its limiter
        self._heap: list[tuple[dt.datetime, int, dispatch.DueRow]] = []
        self._seq = itertools.count()
        self._known: set[uuid.UUID] = set()
        self._parked: dict[uuid.UUID, collections.deque[dispatch.DueRow]] = collections.defaultdict(
            collections.deque
        )
        self._reload_at: dt.datetime | None = None  # the next database read
        self._safety_at: dt.datetime | None = None  # the last read + CAMPAIGN_SEND_INTERVAL_MS
        self._loaded_until: dt.datetime | None = None  # every participant due by then is in memory
        self._refill_at: dt.datetime | None = None  # the window was full: read on from then, once drained
        self._anything_later = True
        self._winners_at: dt.datetime | None = None  # the next read of the A/B winners (autoWinner steps)
        self.completed = False

    # --- messages (called from other actors; never block) ---------------------------------------------

    def released(
        self, participant_id: uuid.UUID, bd_account_id: uuid.UUID, update: ParticipantUpdate | None
    ) -> None:
        self._send.send_nowait(_Released(participant_id, bd_account_id, update))

    def deferred(self, request: SendRequest, until: dt.datetime, reason: str) -> None:
        self._send.send_nowait(_Deferred(request, until, reason))

    def wake(self) -> None:
        """Participants changed (added, replied, rescheduled): read them again."""
        self._send.send_nowait(_Reload())

    def account_lost(self, bd_account_id: uuid.UUID) -> None:
        """This instance no longer holds the account's lease: forget its participants (their new owner
        sends them) and its slot."""
        self._send.send_nowait(_AccountLost(bd_account_id))

    def account_reset(self, bd_account_id: uuid.UUID) -> None:
        """The account's limiter restarted and lost its queue: the slot is free."""
        self._send.send_nowait(_AccountReset(bd_account_id))

    def queue_depth(self) -> dict[uuid.UUID, int]:
        """Due participants waiting per account (parked behind a busy slot, plus the one out)."""
        depth = {acc: len(rows) for acc, rows in self._parked.items() if rows}
        for acc in self.busy:
            depth[acc] = depth.get(acc, 0) + 1
        return depth

    # --- the loop ------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[CampaignActor] = trio.TASK_STATUS_IGNORED) -> None:
        async with self._boot:
            campaign, steps = await self._store.run(
                dispatch.load_campaign, self.campaign_id, transaction=False
            )
            if (
                campaign is None
                or campaign["status"] != CampaignStatus.ACTIVE
                or campaign["deleted_at"] is not None
            ):
                task_status.started(self)
                return
            self.plan = CampaignPlan.from_rows(
                campaign, steps, reply_wait_hours=self._settings.reply_wait_hours
            )
            await self._enrol_unscheduled()
            await self._reload(self._clock.now())
        task_status.started(self)
        log.info("campaign.running", campaign_id=str(self.campaign_id), steps=len(self.plan.steps))
        while True:
            now = self._clock.now()
            if self.plan.auto_winner and (self._winners_at is None or now >= self._winners_at):
                await self._refresh_winners(now)
            if (self._reload_at is not None and now >= self._reload_at) or self._refill_due(now):
                await self._reload(now)
            self._dispatch_due(now)
            wake_at = self._next_wake(now)
            if self._idle():
                completed, next_check = await self._check_completion()
                if completed:
                    self.completed = True
                    log.info("campaign.completed", campaign_id=str(self.campaign_id))
                    return
                if next_check is not None:
                    wake_at = min(wake_at, next_check)
            await self._receive_until(wake_at)

    async def _refresh_winners(self, now: dt.datetime) -> None:
        """The winner of each autoWinner step by the statistics now: the sends claimed from here on carry
        the plan with them, so participants not yet sent such a step get its winner's arm."""
        assert self.plan is not None
        plan = self.plan
        steps = {
            s.id: (s.key, plan.arms[s.id])
            for s in plan.steps
            if s.id in plan.auto_winner and s.key is not None
        }
        won = await self._store.run(variants_db.winners, self.campaign_id, steps, transaction=False)
        self._winners_at = now + WINNERS_EVERY
        if won != dict(plan.winners):
            log.info(
                "campaign.ab_winners",
                campaign_id=str(self.campaign_id),
                winners={str(k): str(a.variant_id) for k, a in won.items()},
            )
            self.plan = attrs.evolve(plan, winners=won)

    def _idle(self) -> bool:
        return (
            not self.busy and not self._heap and not any(self._parked.values()) and not self._anything_later
        )

    def _next_wake(self, now: dt.datetime) -> dt.datetime:
        candidates = [now + dt.timedelta(milliseconds=self._settings.send_interval_ms)]
        if self._reload_at is None and self._safety_at is not None:
            candidates.append(self._safety_at)
        if self._heap:
            candidates.append(self._heap[0][0] - CLAIM_LEAD)
        if self._reload_at is not None:
            candidates.append(self._reload_at)
        if self._refill_at is not None and self._in_memory() < LOAD_LIMIT // 4:
            candidates.append(max(now, self._refill_at))
        return min(candidates)

    def _in_memory(self) -> int:
        return len(self._heap) + sum(len(rows) for rows in self._parked.values())

    def _refill_due(self, now: dt.datetime) -> bool:
        return self._refill_at is not None and now >= self._refill_at and self._in_memory() < LOAD_LIMIT // 4

    async def _receive_until(self, wake_at: dt.datetime) -> None:
        with trio.move_on_at(self._clock.deadline(wake_at)):
            message = await self._inbox.receive()
            await self._handle(message)
            while True:
                try:
                    message = self._inbox.receive_nowait()
                except trio.WouldBlock:
                    break
                await self._handle(message)
        # Only the safety interval (since the last read) passing means "read the database again": waking
        # for a due participant does not (that re-read the whole due window at every due time once nothing
        # was scheduled beyond the horizon).
        safety = self._safety_at
        if self._reload_at is None and safety is not None and self._clock.now() >= safety:
            self._reload_at = safety

    async def _handle(self, message: object) -> None:
        match message:
            case _Released(participant_id=pid, bd_account_id=account, update=update):
                if self.busy.get(account) == pid:
                    del self.busy[account]
                self._known.discard(pid)
                if update is None:
                    # Nothing is known of its state (the send crashed, or found it moved on): read the
                    # database now rather than at the safety interval, up to a minute later.
                    self._reload_soon(self._clock.now())
                elif update.next_send_at is not None:
                    self._remember(dispatch.DueRow(pid, account, update.current_step, update.next_send_at))
            case _Deferred(request=request, until=until, reason=reason):
                account = request.bd_account_id
                moved = await self._store.run(
                    dispatch.defer_account_in_campaign,
                    self.campaign_id,
                    account,
                    until,
                    reason,
                )
                log.info(
                    "campaign.account_deferred",
                    campaign_id=str(self.campaign_id),
                    bd_account_id=str(account),
                    until=until.isoformat(),
                    reason=reason,
                    participants=moved,
                )
                if self.busy.get(account) == request.participant_id:
                    del self.busy[account]
                self._forget_account(account)
                self._reload_soon(self._clock.now())
                self._reload_soon(until)
            case _Reload():
                await self._enrol_unscheduled()
                self._reload_soon(self._clock.now())
            case _AccountReset(bd_account_id=account):
                self.busy.pop(account, None)
                self._reload_soon(self._clock.now())
            case _AccountLost(bd_account_id=account):
                self.busy.pop(account, None)
                self._forget_account(account)

    def _reload_soon(self, at: dt.datetime) -> None:
        self._reload_at = at if self._reload_at is None else min(self._reload_at, at)

    def _remember(self, row: dispatch.DueRow) -> None:
        if row.participant_id in self._known:
            return
        if self._loaded_until is not None and row.due_at > self._loaded_until:
            self._reload_soon(row.due_at)
            self._anything_later = True
            return
        self._known.add(row.participant_id)
        heapq.heappush(self._heap, (row.due_at, next(self._seq), row))

    def _forget_account(self, account: uuid.UUID) -> None:
        parked = self._parked.pop(account, collections.deque())
        for row in parked:
            self._known.discard(row.participant_id)
        kept = [item for item in self._heap if item[2].bd_account_id != account]
        for item in self._heap:
            if item[2].bd_account_id == account:
                self._known.discard(item[2].participant_id)
        heapq.heapify(kept)
        self._heap = kept

    async def _reload(self, now: dt.datetime) -> None:
        self._safety_at = now + dt.timedelta(milliseconds=self._settings.send_interval_ms)
        until = now + HORIZON
        rows, later = await self._store.run(
            dispatch.due_window,
            self.campaign_id,
            until,
            LOAD_LIMIT,
            owner=self._owner,
            transaction=False,
        )
        out = set(self.busy.values())
        self._heap.clear()
        self._parked.clear()
        self._known = set(out)
        for row in rows:
            if row.participant_id not in out:
                self._known.add(row.participant_id)
                heapq.heappush(self._heap, (row.due_at, next(self._seq), row))
        # The accounts with work in the window get their limiter now, so each reads its account while
        # the sends are still ahead instead of in front of the first one.
        for account in {row.bd_account_id for row in rows}:
            self._directory.limiter(account)
        full = len(rows) >= LOAD_LIMIT
        self._loaded_until = rows[-1].due_at if full else until
        self._anything_later = full or later is not None
        pause_end = await self._store.run(dispatch.earliest_pause_end, self.campaign_id, transaction=False)
        # A full window of overdue rows ends in the past: reading again at its end re-read the same rows
        # in a tight loop that never reached the inbox. Read on once they have mostly gone out instead.
        self._refill_at = now + REFILL_PAUSE if full else None
        ends = [t for t in (self._loaded_until, pause_end) if t is not None and t > now] if full else []
        wanted = ends if full else [t for t in (later, pause_end) if t is not None]
        self._reload_at = min(wanted) if wanted else None

    def _dispatch_due(self, now: dt.datetime) -> None:
        assert self.plan is not None
        # Offered a claim's lead early: the limiter claims then and calls Messaging at the due time.
        while self._heap and self._heap[0][0] - CLAIM_LEAD <= now:
            _, _, row = heapq.heappop(self._heap)
            if row.bd_account_id in self.busy:
                self._parked[row.bd_account_id].append(row)
            else:
                self._offer(row)
        for account in [a for a, rows in self._parked.items() if rows and a not in self.busy]:
            self._offer(self._parked[account].popleft())

    def _offer(self, row: dispatch.DueRow) -> None:
        assert self.plan is not None
        if row.step >= len(self.plan.steps):
            self._known.discard(row.participant_id)
            return  # a stale row; the database says what is next on the next read
        self.busy[row.bd_account_id] = row.participant_id
        request = SendRequest(self.plan, row.participant_id, row.bd_account_id, row.step, row.due_at)
        self._directory.limiter(row.bd_account_id).offer(request)

    async def _check_completion(self) -> tuple[bool, dt.datetime | None]:
        assert self.plan is not None
        completed, next_check = await self._store.run(
            lifecycle.complete_if_done, self.campaign_id, self.plan.reply_wait
        )
        return completed, next_check

    async def _enrol_unscheduled(self) -> None:
        if self._enrol is not None and self.plan is not None:
            await self._enrol(self.plan)  # type: ignore[operator]
