"""The supervisor: owns the actor nursery and the control inbox.

Strategy: isolate and restart (actors/supervision.py). Each campaign actor and account limiter runs in its
own supervised task; one crashing is logged with its identity, counted, and restarted with backoff — it
never cancels another. On boot the supervisor rebuilds everything from the database (the truth): sends left in
``sending`` by a crash become in doubt, and every active campaign gets its actor back.
"""

from __future__ import annotations

import collections
import datetime as dt
import random
import uuid
from typing import Any

import attrs
import trio

from campaignsvc import metrics
from campaignsvc.actors import enrolment
from campaignsvc.actors.account_reader import AccountReader
from campaignsvc.actors.accounts import account_settings, ramp_steps_down, stepped_down
from campaignsvc.actors.bus import Bus
from campaignsvc.actors.campaign import CampaignActor
from campaignsvc.actors.claimer import Claimer
from campaignsvc.actors.clock import Clock, SystemClock
from campaignsvc.actors.leases import LeaseKeeper
from campaignsvc.actors.limiter import AccountLimiter, AccountSettings, SendRequest
from campaignsvc.actors.messages import (
    AccountChanged,
    CampaignActivated,
    CampaignDeactivated,
    ControlMessage,
    ParticipantsChanged,
)
from campaignsvc.actors.reconciler import Reconciler
from campaignsvc.actors.recorder import Recorder
from campaignsvc.actors.send_path import DispatchSender
from campaignsvc.actors.supervision import supervise
from campaignsvc.config import Settings
from campaignsvc.domain.campaign import CampaignPlan, ParticipantUpdate
from campaignsvc.domain.pacing import AccountPolicy
from campaignsvc.domain.waiting import Account
from campaignsvc.errors import StorageError
from campaignsvc.integrations.messaging import MessagingClient
from campaignsvc.logs import get_logger
from campaignsvc.storage import accounts as accounts_db
from campaignsvc.storage import dispatch, lifecycle, ramps
from campaignsvc.storage import leases as leases_db
from campaignsvc.storage.store import Store

log = get_logger(__name__)


@attrs.define
class _Running:
    actor: CampaignActor
    scope: trio.CancelScope


class Supervisor:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        messaging: MessagingClient | None = None,
        clock: Clock | None = None,
        bus: Bus | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self.bus = bus or Bus()
        # Subscribed from the start: what is published before the supervisor runs waits for it.
        self._inbox = self.bus.subscribe(
            CampaignActivated, CampaignDeactivated, ParticipantsChanged, AccountChanged
        )
        self._nursery: trio.Nursery | None = None
        self.campaigns: dict[uuid.UUID, _Running] = {}
        self.limiters: dict[uuid.UUID, AccountLimiter] = {}
        self.restarts: collections.Counter[str] = collections.Counter()
        # Campaign actors starting at once read the database in turns (a boot with thousands active);
        # limiters read their accounts through the account reader, many per statement.
        self._boot = trio.CapacityLimiter(max(1, settings.db_pool_max // 2))
        self.state = "starting"
        self._messaging = messaging or MessagingClient.from_settings(settings)
        quarantine = dt.timedelta(seconds=settings.in_doubt_retry_after_s)
        self.leases = LeaseKeeper(
            store,
            instance=settings.instance_id,
            lease_s=settings.lease_s,
            quarantine=quarantine,
            on_change=self._leases_changed,
            let_go=self._let_go,
        )
        self._limiter_scopes: dict[uuid.UUID, trio.CancelScope] = {}
        self.recorder = Recorder(store, release=self._release, bus=self.bus, owner=settings.instance_id)
        self.claimer = Claimer(store, quarantine=quarantine, owner=settings.instance_id)
        self.account_reader = AccountReader(store)
        self.reconciler = Reconciler(self)
        self.sender = DispatchSender(
            claimer=self.claimer,
            messaging=self._messaging,
            recorder=self.recorder,
            settings=settings,
            clock=self._clock,
            release=self._release,
            on_block=self._on_block,
            ai_text=settings.ai_personalize_text,
            rng=self._rng,
            leases=self.leases,
        )

    # --- control -------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.recorder.run)
                await nursery.start(self.claimer.run)
                await nursery.start(self.account_reader.run)
                # This boot's accounts: its own leases back under new epochs, then its share. Sends a crash
                # left unfinished become in doubt as their accounts are taken (storage/leases.py).
                await self.leases.join()
                await nursery.start(self.leases.run)
                # Every active campaign's actor has read its campaign (or crashed, and will retry) before
                # the supervisor says it runs; they boot side by side, in turns for the database.
                async with trio.open_nursery() as booting:
                    for campaign_id in await self._store.run(dispatch.active_campaign_ids, transaction=False):
                        booting.start_soon(self._start_campaign_ready, campaign_id)
                await nursery.start(self.reconciler.run)
                self.state = "running"
                task_status.started(self)
                async for message in self._inbox:
                    self._handle(message)
                nursery.cancel_scope.cancel()
        finally:
            self.state = "stopped"
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._messaging.aclose()

    def _handle(self, message: ControlMessage) -> None:
        match message:
            case CampaignActivated(campaign_id=cid) | ParticipantsChanged(campaign_id=cid):
                self.leases.nudge()  # its accounts may be new to the leases
                running = self.campaigns.get(cid)
                if running is None:
                    self._start_campaign(cid)
                else:
                    running.actor.wake()
            case CampaignDeactivated(campaign_id=cid):
                self._stop_campaign(cid)
            case AccountChanged(bd_account_id=account):
                limiter = self.limiters.get(account)
                if limiter is not None:
                    limiter.reload()
                for running in self.campaigns.values():
                    running.actor.wake()
            case _:
                log.warning("supervisor.unknown_message", message=type(message).__name__)

    async def stop(self, grace_s: float) -> None:
        """Stop taking work: campaign actors stop, queued sends are dropped, sends already handed to
        Messaging finish and are recorded (bounded by ``grace_s``)."""
        self.state = "stopping"
        for cid in list(self.campaigns):
            self._stop_campaign(cid)
        with trio.move_on_after(grace_s):
            for limiter in list(self.limiters.values()):
                await limiter.wait_send_done()
            await self.recorder.drain(grace_s)
        with trio.move_on_after(grace_s):
            try:
                # Released now, the accounts are taken by the other instances at their next heartbeat.
                await self._store.run(leases_db.leave, self.leases.instance, self.leases.boot_id)
            except StorageError as exc:
                log.warning("supervisor.leases_not_released", error=str(exc))
        self.bus.unsubscribe(self._inbox)

    # --- campaign actors -----------------------------------------------------------------------------

    def _start_campaign(self, campaign_id: uuid.UUID) -> None:
        """Start the campaign's actor (if it is not running) without waiting for it to be ready."""
        running = self._register(campaign_id)
        if running is not None:
            assert self._nursery is not None
            self._nursery.start_soon(self._run_campaign, campaign_id, running)

    async def _start_campaign_ready(self, campaign_id: uuid.UUID) -> None:
        """Start the campaign's actor (if it is not running) and return once it is ready."""
        running = self._register(campaign_id)
        if running is not None:
            assert self._nursery is not None
            await self._nursery.start(self._run_campaign, campaign_id, running)

    def _register(self, campaign_id: uuid.UUID) -> _Running | None:
        if self._nursery is None or self.state == "stopping" or campaign_id in self.campaigns:
            return None
        running = _Running(self._new_actor(campaign_id), trio.CancelScope())
        self.campaigns[campaign_id] = running
        return running

    def _new_actor(self, campaign_id: uuid.UUID) -> CampaignActor:
        return CampaignActor(
            campaign_id,
            store=self._store,
            settings=self._settings,
            clock=self._clock,
            directory=self,
            enrol=self._enrol,
            boot=self._boot,
            owner=self._settings.instance_id,
        )

    def _stop_campaign(self, campaign_id: uuid.UUID) -> None:
        running = self.campaigns.pop(campaign_id, None)
        if running is not None:
            running.scope.cancel()
        for limiter in self.limiters.values():
            limiter.drop(campaign_id)

    async def _run_campaign(
        self,
        campaign_id: uuid.UUID,
        running: _Running,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        runs = 0

        async def run(*, task_status: trio.TaskStatus[Any]) -> None:
            nonlocal runs
            if self.campaigns.get(campaign_id) is not running:
                task_status.started()  # stopped while it waited to restart
                return
            if runs:
                running.actor = self._new_actor(campaign_id)  # a crashed actor's memory is not trusted
            runs += 1
            await running.actor.run(task_status=task_status)

        def crashed(_: BaseException) -> None:
            self.restarts["campaign"] += 1
            for limiter in self.limiters.values():
                limiter.drop(campaign_id)

        with running.scope:
            await supervise(
                "campaign", {"campaign_id": str(campaign_id)}, run, crashed=crashed, task_status=task_status
            )
        if self.campaigns.get(campaign_id) is running:
            del self.campaigns[campaign_id]

    async def _enrol(self, plan: CampaignPlan) -> None:
        try:
            await self._store.run(
                enrolment.enrol, plan, settings=self._settings, now=self._clock.now(), rng=self._rng
            )
        except enrolment.NoSendingAccount as exc:
            log.warning("campaign.no_account", campaign_id=str(plan.id), error=str(exc))

    # --- limiters (Directory) ------------------------------------------------------------------------

    def limiter(self, bd_account_id: uuid.UUID) -> AccountLimiter:
        limiter = self.limiters.get(bd_account_id)
        if limiter is None:
            limiter = AccountLimiter(
                bd_account_id,
                AccountSettings(
                    AccountPolicy(
                        floor_s=self._settings.min_gap_s,
                        daily_cap=self._settings.max_sends_per_account_per_day,
                    )
                ),
                sender=self.sender,
                on_defer=self._defer,
                clock=self._clock,
                rng=self._rng,
                load_settings=lambda: self._load_account(bd_account_id),
                on_unblock=lambda: self._store.run(accounts_db.unblock, bd_account_id),
            )
            limiter.reload()
            self.limiters[bd_account_id] = limiter
            scope = self._limiter_scopes[bd_account_id] = trio.CancelScope()
            assert self._nursery is not None
            self._nursery.start_soon(self._run_limiter, limiter, scope)
        return limiter

    async def _load_account(self, bd_account_id: uuid.UUID) -> AccountSettings | None:
        row = await self.account_reader.read(bd_account_id)
        if row is None:
            return AccountSettings(AccountPolicy(active=False, floor_s=self._settings.min_gap_s))
        return account_settings(row, self._settings, self._clock.now())

    async def _run_limiter(
        self,
        limiter: AccountLimiter,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        def crashed(_: BaseException) -> None:
            self.restarts["limiter"] += 1
            lost = limiter.take_lost()
            if lost is not None:
                self._release(lost.plan.id, lost.participant_id, lost.bd_account_id, None)
            limiter.reload()

        with scope:
            await supervise(
                "limiter",
                {"bd_account_id": str(limiter.bd_account_id)},
                limiter.run,
                crashed=crashed,
                task_status=task_status,
            )

    # --- leases --------------------------------------------------------------------------------------

    def _leases_changed(self, gained: set[uuid.UUID], lost: set[uuid.UUID]) -> None:
        """Accounts lost: their limiters stop at once (a send under way is cut off; the new owner finds
        its row in doubt) and the campaigns forget their participants. Accounts gained: every campaign
        reads its due participants again, now with those accounts'."""
        for account in lost:
            self._give_up(account)
        if gained:
            for running in self.campaigns.values():
                running.actor.wake()

    def _give_up(self, account: uuid.UUID) -> None:
        """The account is no longer this instance's: its limiter stops, its campaigns forget it."""
        self.limiters.pop(account, None)
        scope = self._limiter_scopes.pop(account, None)
        if scope is not None:
            scope.cancel()
        for running in self.campaigns.values():
            running.actor.account_lost(account)

    async def _let_go(self, n: int) -> list[uuid.UUID]:
        """Up to ``n`` held accounts to hand to other instances, between sends: accounts without a limiter
        first, then those whose limiter is not sending; each one's limiter is stopped and its campaigns
        forget it before it is released."""
        idle = [a for a in self.leases.held if a not in self.limiters]
        quiet = [a for a, lim in self.limiters.items() if lim.sending is None and a in self.leases.held]
        chosen = (idle + quiet)[:n]
        for account in chosen:
            self._give_up(account)
        return chosen

    # --- for the reconciler --------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self._store

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def clock(self) -> Clock:
        return self._clock

    def sync_campaigns(self, active: set[uuid.UUID]) -> None:
        """Run an actor for every active campaign and none for the others (their state changed through
        another instance, whose notification did not arrive)."""
        if self.state != "running":
            return
        for cid in [c for c in self.campaigns if c not in active]:
            running = self.campaigns[cid]
            if not running.actor.completed:
                log.info("campaign.synced_stop", campaign_id=str(cid))
            self._stop_campaign(cid)
        for cid in active - set(self.campaigns):
            log.info("campaign.synced_start", campaign_id=str(cid))
            self._start_campaign(cid)

    def restart_stranded(self, campaign_id: uuid.UUID) -> None:
        """The campaign has participants no actor holds: its actor reads them again (or starts)."""
        running = self.campaigns.get(campaign_id)
        if running is None:
            self._start_campaign(campaign_id)
        else:
            running.actor.wake()

    # --- routing between actors ----------------------------------------------------------------------

    def _release(
        self,
        campaign_id: uuid.UUID,
        participant_id: uuid.UUID,
        bd_account_id: uuid.UUID,
        update: ParticipantUpdate | None,
    ) -> None:
        running = self.campaigns.get(campaign_id)
        if running is not None:
            running.actor.released(participant_id, bd_account_id, update)

    def _defer(self, request: SendRequest, until: dt.datetime, reason: str) -> None:
        running = self.campaigns.get(request.plan.id)
        if running is not None:
            running.actor.deferred(request, until, reason)

    async def _on_block(
        self, bd_account_id: uuid.UUID, until: dt.datetime, reason: str, seconds: int | None
    ) -> None:
        metrics.ACCOUNT_BLOCKS.labels(reason).inc()
        now = self._clock.now()
        wait_s = seconds if seconds is not None else (until - now).total_seconds()
        steps_down = ramp_steps_down(reason, wait_s, self._settings)

        async def record(conn: Any) -> bool:
            """The block and, when it is long enough, the ramp's step-down, in one transaction."""
            await accounts_db.block(conn, bd_account_id, until=until, reason=reason, wait_seconds=seconds)
            if not steps_down:
                return False
            row = await ramps.for_step_down(conn, bd_account_id)
            lowered = stepped_down(row, self._settings, now) if row is not None else None
            if lowered is None:
                return False
            await ramps.set_step_down(
                conn, bd_account_id, budget=lowered.budget, at=lowered.at, until=lowered.until, reason=reason
            )
            log.warning(
                "ramp.stepped_down",
                bd_account_id=str(bd_account_id),
                budget=lowered.budget,
                until=lowered.until.isoformat(),
                reason=reason,
            )
            return True

        if await self._store.run(record):
            limiter = self.limiters.get(bd_account_id)
            if limiter is not None:
                limiter.reload()  # the lowered budget applies from the block's end
        if reason == "peer_flood":
            paused = await self._store.run(lifecycle.pause_campaigns_only_on, bd_account_id, "peer_flood")
            for campaign_id in paused:
                log.warning(
                    "campaign.auto_paused",
                    campaign_id=str(campaign_id),
                    bd_account_id=str(bd_account_id),
                    reason=reason,
                )
                self._stop_campaign(campaign_id)

    # --- for /agents/throttle, the waiting codes and the dashboard -------------------------------------

    def pacing_view(self, bd_account_id: uuid.UUID, campaign_id: uuid.UUID, name: str) -> Account | None:
        """The account as its running limiter paces it (None: no limiter runs for it)."""
        limiter = self.limiters.get(bd_account_id)
        return None if limiter is None else limiter.pacing_view(campaign_id, name)

    def throttle(self) -> list[dict[str, Any]]:
        depth: dict[uuid.UUID, dict[str, int]] = collections.defaultdict(dict)
        for cid, running in self.campaigns.items():
            for account, n in running.actor.queue_depth().items():
                depth[account][str(cid)] = n
        out = []
        for account, limiter in self.limiters.items():
            snapshot = limiter.snapshot()
            snapshot["queueDepth"] = depth.get(account, {})
            out.append(snapshot)
        return out
