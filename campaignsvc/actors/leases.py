"""The lease keeper: this instance's share of the BD accounts (storage/leases.py), kept alive by a heartbeat.

Every ``lease / 3`` it beats once (one transaction): renews every lease it holds, releases what it was
asked to let go, and takes free accounts and those of dead instances up to a fair share. Each account is
held under an epoch; a claim carries the epoch it was made under and the database refuses it once the
lease moved on (storage/claims.py), and so does an outcome (storage/dispatch.record).

Self-fencing: the keeper knows until when its leases are surely still its own — the start of the last
heartbeat that succeeded, plus the lease, minus a margin (the other instances count the lease from the
heartbeat's commit, which is later). Past that instant it holds nothing: no claim is asked and no
Messaging call starts (actors/send_path.py), so a paused or cut-off instance never sends under a lease
another instance may have taken. The instance that takes an account over counts its gap from the moment
the old leases expired.

When several instances share the accounts, one holding more than its share lets the extra accounts go
between their sends (the supervisor stops their limiters first), so that a new instance gets its share.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable

import trio

from campaignsvc import metrics
from campaignsvc.errors import StorageError
from campaignsvc.logs import get_logger
from campaignsvc.storage import leases as db
from campaignsvc.storage.store import Store

log = get_logger(__name__)


# A burst of nudges (replies, edits: each publishes a control message) costs one heartbeat per this long.
NUDGE_SPACING_S = 0.25


class InstanceSuperseded(Exception):
    """Another process registered under this instance's id: this one must stop sending and exit."""


class LeaseKeeper:
    def __init__(
        self,
        store: Store,
        *,
        instance: str,
        lease_s: float,
        quarantine: dt.timedelta,
        on_change: Callable[[set[uuid.UUID], set[uuid.UUID]], None],
        let_go: Callable[[int], Awaitable[list[uuid.UUID]]],
    ) -> None:
        self.instance = instance
        self.boot_id = uuid.uuid4()
        self._store = store
        self._lease = dt.timedelta(seconds=lease_s)
        self._quarantine = quarantine
        self._on_change = on_change  # (gained, lost)
        self._let_go = let_go
        self.interval_s = lease_s / 3
        self.margin_s = max(0.2, lease_s / 6)
        self.held: dict[uuid.UUID, int] = {}
        self._valid_until = -float("inf")  # trio time
        self.instances = 1
        self.share = 0
        self.last_beat_at: dt.datetime | None = None
        self.failures = 0
        self.moves = 0
        self._nudged = trio.Event()

    # --- what the send path asks ---------------------------------------------------------------------

    def epoch(self, bd_account_id: uuid.UUID) -> int | None:
        """The epoch this instance holds the account under, while the lease is surely its own; else None."""
        if trio.current_time() >= self._valid_until:
            return None
        return self.held.get(bd_account_id)

    def holds(self, bd_account_id: uuid.UUID, epoch: int) -> bool:
        """The account is still held under ``epoch``, surely: a call may start now."""
        return self.epoch(bd_account_id) == epoch

    @property
    def healthy(self) -> bool:
        return trio.current_time() < self._valid_until

    # --- running -------------------------------------------------------------------------------------

    async def join(self) -> None:
        """Register this boot and take back the leases an earlier boot under this id held."""
        began = trio.current_time()
        held = await self._store.run(db.join, self.instance, self.boot_id, self._quarantine)
        self._valid_until = began + self._lease.total_seconds() - self.margin_s
        self._apply(held)
        await self.beat()

    async def beat(self, release: Iterable[tuple[uuid.UUID, int]] = ()) -> None:
        began = trio.current_time()
        found = await self._store.run(
            db.heartbeat, self.instance, self.boot_id, self._lease, self._quarantine, release=list(release)
        )
        if not found.alive:
            self._valid_until = -float("inf")
            self._apply({})
            raise InstanceSuperseded(
                f"another process registered as instance {self.instance!r}: this one stops sending"
            )
        self._valid_until = began + self._lease.total_seconds() - self.margin_s
        self.instances = found.instances
        self.share = found.share
        self.last_beat_at = found.at
        if found.taken_over:
            metrics.LEASE_MOVES.labels("taken_over").inc(found.taken_over)
            log.warning("leases.taken_over", instance=self.instance, accounts=found.taken_over)
        self._apply(found.held)

    def _apply(self, held: dict[uuid.UUID, int]) -> None:
        gained = {a for a, e in held.items() if self.held.get(a) != e}
        lost = {a for a, e in self.held.items() if held.get(a) != e}
        self.held = dict(held)
        metrics.LEASES_HELD.set(len(held))
        if gained or lost:
            self.moves += len(gained) + len(lost)
            metrics.LEASE_MOVES.labels("gained").inc(len(gained))
            metrics.LEASE_MOVES.labels("lost").inc(len(lost))
            if lost or len(gained) < len(held):
                log.info(
                    "leases.changed",
                    instance=self.instance,
                    gained=len(gained),
                    lost=len(lost),
                    held=len(held),
                )
            self._on_change(gained, lost)

    def nudge(self) -> None:
        """Beat soon rather than at the next interval (a campaign started: its accounts may be new). Many
        nudges make one beat, and nudged beats are at least ``NUDGE_SPACING_S`` apart."""
        self._nudged.set()

    async def run(self, *, task_status: trio.TaskStatus[LeaseKeeper] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._expire)
            task_status.started(self)
            while True:
                began = trio.current_time()
                with trio.move_on_after(self.interval_s):
                    await self._nudged.wait()
                    await trio.sleep_until(began + min(NUDGE_SPACING_S, self.interval_s))
                self._nudged = trio.Event()
                await self._round()

    async def _round(self) -> None:
        release: list[tuple[uuid.UUID, int]] = []
        excess = len(self.held) - self.share
        if excess > 0 and self.instances > 1:
            for account in await self._let_go(excess):
                # Given up here, before the database hears of it: no claim or call of it starts from now.
                epoch = self.held.pop(account, None)
                if epoch is not None:
                    release.append((account, epoch))
        try:
            await self.beat(release)
            self.failures = 0
        except StorageError as exc:
            self.failures += 1
            log.warning(
                "leases.heartbeat_failed",
                instance=self.instance,
                error=str(exc),
                valid_for_s=round(max(0.0, self._valid_until - trio.current_time()), 3),
            )

    async def _expire(self) -> None:
        """Once the leases are no longer surely this instance's, it holds nothing: every limiter stops
        (a heartbeat that fails or hangs must not leave them sending)."""
        while True:
            await trio.sleep_until(self._valid_until)
            if trio.current_time() >= self._valid_until and self.held:
                log.warning("leases.expired", instance=self.instance, held=len(self.held))
                self._apply({})
            if trio.current_time() >= self._valid_until:
                await trio.sleep(self.interval_s / 4)
