"""Reconciler: periodic checks that heal what no message announced.

- Stranded participants: due for longer than ``CAMPAIGN_STRANDED_AFTER_MS`` in an active campaign and held
  by no actor (no send of their campaign on their account in flight or queued). They are counted
  (``campaign_stranded_participants_total``), logged (``participants.stranded``) and their campaign is
  woken, or started when its actor is gone. A campaign slot that claims an account while neither the
  limiter nor the recorder holds its participant (seen so on two checks in a row) is freed.
- Account changes: a digest of each live limiter's account row, compared every
  ``CAMPAIGN_ACCOUNT_REFRESH_MS``; a change makes the limiter re-read its account.
- Campaigns: as often, the campaign actors are synced with the campaigns that are active — what another
  instance started, paused or stopped is seen even when its notification was missed
  (integrations/control.py).
"""

from __future__ import annotations

import collections
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from campaignsvc import metrics
from campaignsvc.logs import get_logger
from campaignsvc.storage import accounts as accounts_db
from campaignsvc.storage import dispatch, reconcile

if TYPE_CHECKING:
    from campaignsvc.actors.supervisor import Supervisor

log = get_logger(__name__)

SCAN_LIMIT = 5000

Slot = tuple[uuid.UUID, uuid.UUID, uuid.UUID]  # campaign, account, participant


class Reconciler:
    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor
        self._suspect: set[Slot] = set()
        self.stranded = 0

    async def run(self, *, task_status: trio.TaskStatus[Reconciler] = trio.TASK_STATUS_IGNORED) -> None:
        s = self._sup.settings
        task_status.started(self)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._every, s.reconcile_interval_s, self.sweep)
            nursery.start_soon(self._every, s.account_refresh_s, self.refresh_accounts)
            nursery.start_soon(self._every, s.account_refresh_s, self.sync_campaigns)

    async def _every(self, seconds: float, check: Callable[[], Awaitable[object]]) -> None:
        while True:
            await trio.sleep(seconds)
            try:
                await check()
            except Exception as exc:
                # A check failing (the database away) waits for the next one; it must never stop sends.
                log.warning("reconciler.check_failed", check=check.__name__, error=str(exc))

    # --- stranded participants -----------------------------------------------------------------------

    def _stale_slots(self) -> set[Slot]:
        """Campaign slots whose participant no limiter and no recorder holds."""
        sup = self._sup
        stale = set()
        for cid, running in sup.campaigns.items():
            for account, pid in running.actor.busy.items():
                limiter = sup.limiters.get(account)
                if limiter is not None:
                    sending = limiter.sending
                    if sending is not None and sending.participant_id == pid:
                        continue
                    lane = limiter.queued().get(cid)
                    if lane is not None and lane.participant_id == pid:
                        continue
                if pid in sup.recorder.pending:
                    continue
                stale.add((cid, account, pid))
        return stale

    async def sweep(self) -> int:
        """One check; returns how many participants it found stranded."""
        sup = self._sup
        stale_now = self._stale_slots()
        # Seen twice: a slot is briefly unheld between the recorder's release and the actor reading it.
        stale = stale_now & self._suspect
        self._suspect = stale_now - stale
        before = sup.clock.now() - dt.timedelta(seconds=sup.settings.stranded_after_s)
        rows = await sup.store.run(
            reconcile.overdue, before, SCAN_LIMIT, sup.settings.instance_id, transaction=False
        )
        stale_pairs = {(cid, account) for cid, account, _ in stale}
        per_campaign: collections.Counter[uuid.UUID] = collections.Counter()
        for cid, _pid, account in rows:
            running = sup.campaigns.get(cid)
            busy = running.actor.busy.get(account) if running is not None else None
            if busy is not None and (cid, account) not in stale_pairs:
                continue  # its account is working through this campaign's queue
            per_campaign[cid] += 1
        for cid, account, _ in stale:
            running = sup.campaigns.get(cid)
            if running is not None:
                running.actor.account_reset(account)
        for cid, n in per_campaign.items():
            metrics.STRANDED.inc(n)
            self.stranded += n
            log.warning("participants.stranded", campaign_id=str(cid), participants=n)
            sup.restart_stranded(cid)
        return sum(per_campaign.values())

    # --- campaigns -----------------------------------------------------------------------------------

    async def sync_campaigns(self) -> None:
        active = await self._sup.store.run(dispatch.active_campaign_ids, transaction=False)
        self._sup.sync_campaigns(set(active))

    # --- account changes -----------------------------------------------------------------------------

    async def refresh_accounts(self) -> None:
        ids = list(self._sup.limiters)
        if not ids:
            return
        versions = await self._sup.store.run(accounts_db.settings_versions, ids, transaction=False)
        for account, version in versions.items():
            limiter = self._sup.limiters.get(account)
            if limiter is None:
                continue
            loaded = limiter.settings.rules_version
            # None: not loaded yet (its first read is on the way); it reads the current rules then.
            if loaded is not None and loaded != version:
                # Only the account's limiter re-reads: waking every campaign actor (what an AccountChanged
                # event does) for each flood block this process itself wrote would cost a read per campaign.
                log.info("limiter.account_changed", bd_account_id=str(account))
                limiter.reload()
