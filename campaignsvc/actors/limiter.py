"""AccountLimiter: one per BD account, across all campaigns — the account's clock (SPEC R-THR).

It serialises the account's sends and enforces, before each one: the gap since the previous send start
(the campaign's delay, never below the account floor), the daily cap counted in the account's time zone
(lowered by the account's ramp, day by day),
the working window, and any block (FLOOD_WAIT, PEER_FLOOD, session problems). Campaigns offer it one
send request each (a "lane"); it serves the lanes round-robin, so one big campaign cannot starve another.
A request it cannot serve for a while (window closed, cap reached) goes back to its campaign with the
time to try again; a block holds the lanes until it ends.

The send itself (claim, Messaging call, outcome) is the injected :class:`Sender`'s job; the limiter only
decides *when*. That keeps the pacing logic testable on trio's virtual clock.
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import math
import random
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

from campaignsvc.actors.clock import Clock
from campaignsvc.domain import pacing
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy
from campaignsvc.domain.waiting import Account
from campaignsvc.logs import get_logger

log = get_logger(__name__)
_HOUR = dt.timedelta(hours=1)
# A send is claimed this long before it may start, and its Messaging call then waits for the start: the
# call starts on time instead of after the claim's round-trips. Campaigns offer due sends this early too.
CLAIM_LEAD = dt.timedelta(milliseconds=100)
# Added to a last start read from the database by a limiter that has sent nothing yet (after a restart)
# when that start is only the one a claim planned (its outcome was never recorded): the process that died
# may have made the call later. An exact start (recorded with its outcome) is used as it is.
RECOVERED_START_ALLOWANCE = dt.timedelta(milliseconds=100)


@attrs.frozen
class SendRequest:
    plan: CampaignPlan
    participant_id: uuid.UUID
    bd_account_id: uuid.UUID
    step: int
    due_at: dt.datetime


@attrs.frozen
class SendReport:
    """What a send did, as far as pacing is concerned."""

    attempted: bool  # Messaging was called: the gap and the daily cap are used
    # When Messaging was called (after the claim): the gap counts from here, so a slow claim cannot
    # bring two calls of the account closer than the gap. None: when the limiter handed the send over.
    started_at: dt.datetime | None = None
    block_until: dt.datetime | None = None
    block_reason: str | None = None
    # Counts toward the daily cap: only a message that went out (or may have: in doubt). A refused send
    # (FLOOD_WAIT, PEER_FLOOD, a recipient error, a transient failure) spends the gap, not the cap —
    # the same rule the cap's count after a restart uses (ledger rows sent, sending, in_doubt).
    counted: bool = True


@attrs.define
class AccountSettings:
    """What the limiter reads from the database when it starts: the account's rules and its history."""

    policy: AccountPolicy = attrs.field(factory=AccountPolicy)
    last_start: dt.datetime | None = None
    last_start_exact: bool = False  # last_start was recorded with its call's outcome, not only planned
    recent_starts: list[dt.datetime] = attrs.field(factory=list)
    # The version of the account's rules these settings were read at (storage/accounts.limiter_states).
    rules_version: str | None = None


class Sender(Protocol):
    async def send(
        self, limiter: AccountLimiter, request: SendRequest, start_at: dt.datetime | None = None
    ) -> SendReport:
        """Claim now, call Messaging not before ``start_at``."""
        ...


# (request, until, reason): a request the limiter hands back to its campaign.
Deferral = Callable[[SendRequest, dt.datetime, str], None]


class AccountLimiter:
    def __init__(
        self,
        bd_account_id: uuid.UUID,
        settings: AccountSettings,
        *,
        sender: Sender,
        on_defer: Deferral,
        clock: Clock,
        rng: random.Random | None = None,
        load_settings: Callable[[], Any] | None = None,
        on_unblock: Callable[[], Any] | None = None,
    ) -> None:
        self.bd_account_id = bd_account_id
        self.settings = settings
        self._sender = sender
        self._on_defer = on_defer
        self._clock = clock
        self._rng = rng or random.Random()
        self._load_settings = load_settings
        self._on_unblock = on_unblock
        self._lanes: dict[uuid.UUID, SendRequest] = {}  # one request per campaign; order is in _rr
        self._rr: collections.deque[uuid.UUID] = collections.deque()  # campaigns in service order
        self._changed = trio.Event()
        self._reload_wanted = False
        self._next_gap: tuple[uuid.UUID, float] | None = None
        self._starts: list[dt.datetime] = sorted(settings.recent_starts)  # send starts, last 48 h
        self.state = "idle"
        self.sending: SendRequest | None = None
        # The request whose send raised: ``sending`` is reset on the way out, so the supervisor reads
        # this to free the campaign's slot (reading ``sending`` after the reset stranded the account).
        self.lost: SendRequest | None = None
        self._send_done = trio.Event()
        self.cap_until: dt.datetime | None = None
        self.window_until: dt.datetime | None = None
        self.sends = 0

    # --- what campaigns call -------------------------------------------------------------------------

    def offer(self, request: SendRequest) -> None:
        """Queue the campaign's next send for this account (one per campaign; a newer one replaces it)."""
        cid = request.plan.id
        if cid not in self._lanes:
            self._rr.append(cid)
        self._lanes[cid] = request
        self._poke()

    def drop(self, campaign_id: uuid.UUID) -> SendRequest | None:
        """Forget the campaign's queued request (paused, stopped). A send already under way finishes."""
        request = self._lanes.pop(campaign_id, None)
        if request is not None:
            self._rr.remove(campaign_id)
            self._poke()
        return request

    def reload(self) -> None:
        """Re-read the account's settings and block from the database before the next decision."""
        self._reload_wanted = True
        self._poke()

    def queued(self) -> dict[uuid.UUID, SendRequest]:
        return dict(self._lanes)

    def take_lost(self) -> SendRequest | None:
        """The request of the send that crashed the limiter, once (None when nothing was under way)."""
        lost, self.lost = self.lost, None
        return lost

    async def wait_send_done(self) -> None:
        """Return once no send of this account is under way."""
        while self.sending is not None:
            await self._send_done.wait()

    # --- pacing --------------------------------------------------------------------------------------

    def _poke(self) -> None:
        self._changed.set()

    def _gap_for(self, plan: CampaignPlan) -> float:
        if self._next_gap is None or self._next_gap[0] != plan.id:
            self._next_gap = (plan.id, self.settings.policy.gap(plan, self._rng))
        return self._next_gap[1]

    def next_allowed(self) -> dt.datetime | None:
        """The earliest next start by the gap alone: the sampled gap of the campaign up next (else the
        account floor) after the last start, with the margin."""
        gap = self._next_gap[1] if self._next_gap is not None else self.settings.policy.floor_s
        return self.settings.policy.after_gap(self.settings.last_start, gap)

    def next_start(self, now: dt.datetime) -> dt.datetime | None:
        """When the account may send next, all rules taken together (domain.pacing)."""
        policy = self.settings.policy
        return policy.next_start(
            now,
            sent_today=pacing.sent_today(self._starts, policy.day_zone(), now),
            last_start=self.settings.last_start,
            gap_s=self._next_gap[1] if self._next_gap is not None else None,
            cap_until=self.cap_until if self.state == "daily_cap" else None,
        )

    def _defer(self, request: SendRequest, until: dt.datetime, reason: str) -> None:
        self._lanes.pop(request.plan.id, None)
        self._rr.remove(request.plan.id)
        self._on_defer(request, until, reason)

    def _choose(self, now: dt.datetime) -> tuple[SendRequest | None, dt.datetime | None]:
        """The request to send next and when; (None, t) to wait until t (None: until something changes)."""
        policy = self.settings.policy
        held = policy.hold(now)
        if held is not None:
            self.state = held.state
            return None, held.until
        for cid in list(self._rr):
            request = self._lanes[cid]
            verdict = policy.decide(
                request.plan,
                due_at=request.due_at,
                now=now,
                last_start=self.settings.last_start,
                gap_s=self._gap_for(request.plan),
                starts=self._starts,
                rng=self._rng,
            )
            if isinstance(verdict, pacing.Start):
                return request, verdict.at
            if verdict.reason == "cap":
                self.cap_until = verdict.until
            else:
                self.window_until = verdict.until
            self._defer(request, verdict.until, verdict.reason)
        self.state = "daily_cap" if self.cap_until and self.cap_until > now else "idle"
        return None, None

    async def _wait(self, until: dt.datetime | None) -> None:
        deadline = math.inf if until is None else self._clock.deadline(until)
        with trio.move_on_at(deadline):
            await self._changed.wait()

    async def _maybe_reload(self) -> None:
        if self._reload_wanted and self._load_settings is not None:
            self._reload_wanted = False
            fresh = await self._load_settings()
            if fresh is not None:
                if (
                    self.settings.last_start is None
                    and fresh.last_start is not None
                    and not fresh.last_start_exact
                ):
                    # Planned by another process that died before recording the call: it may have left a
                    # little later than planned.
                    fresh.last_start += RECOVERED_START_ALLOWANCE
                # Keep what this process knows better than the database: its own last send.
                if self.settings.last_start and (
                    fresh.last_start is None or fresh.last_start < self.settings.last_start
                ):
                    fresh.last_start = self.settings.last_start
                self.settings = fresh

    async def _end_block_if_over(self, now: dt.datetime) -> None:
        s = self.settings
        if s.policy.blocked_until is not None and s.policy.blocked_until <= now:
            s.policy = attrs.evolve(s.policy, blocked_until=None, block_reason=None)
            log.info("limiter.unblocked", bd_account_id=str(self.bd_account_id))
            if self._on_unblock is not None:
                await self._on_unblock()

    async def run(self, *, task_status: trio.TaskStatus[AccountLimiter] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        while True:
            # Armed before anything is read: a poke during the awaits below (a reload asked for while one
            # is under way) ends the next wait instead of being lost.
            self._changed = trio.Event()
            await self._maybe_reload()
            now = self._clock.now()
            await self._end_block_if_over(now)
            request, start_at = self._choose(now)
            if request is None:
                await self._wait(start_at)
                continue
            assert start_at is not None  # a chosen request always comes with its start
            if start_at - CLAIM_LEAD > now:
                self.state = "waiting_gap"
                await self._wait(start_at - CLAIM_LEAD)
                continue  # decide again: a lane may have changed, the window may have closed
            await self._send(request, start_at)

    async def _send(self, request: SendRequest, start_at: dt.datetime) -> None:
        # Served: the campaign leaves the rotation; its next offer joins at the back (round-robin).
        self._lanes.pop(request.plan.id, None)
        self._rr.remove(request.plan.id)
        self.state = "sending"
        self.sending = request
        started = max(self._clock.now(), start_at)  # the call's start, unless the sender reports it
        try:
            report = await self._sender.send(self, request, start_at)
        except Exception:
            self.lost = request
            raise
        finally:
            self.sending = None
            self._send_done.set()
            self._send_done = trio.Event()
        if report.attempted:
            started = report.started_at or started
            self.settings.last_start = started
            if report.counted:
                self._starts.append(started)
            self.sends += 1
            if len(self._starts) > 1024 and self._starts[512] < started - 48 * _HOUR:
                del self._starts[: bisect.bisect_left(self._starts, started - 48 * _HOUR)]
            self._next_gap = None
        if report.block_until is not None:
            self.settings.policy = attrs.evolve(
                self.settings.policy, blocked_until=report.block_until, block_reason=report.block_reason
            )
            log.warning(
                "limiter.blocked",
                bd_account_id=str(self.bd_account_id),
                until=report.block_until.isoformat(),
                reason=report.block_reason,
            )

    # --- for the views -------------------------------------------------------------------------------

    def pacing_view(self, campaign_id: uuid.UUID, name: str) -> Account:
        """The account as this limiter paces it now, for domain.waiting: its rules and history, the gap
        drawn for the campaign's next send, and the other campaigns' sends in line before it."""
        lanes = list(self._rr)
        ahead = lanes.index(campaign_id) if campaign_id in lanes else len(lanes)
        if self.sending is not None and self.sending.plan.id != campaign_id:
            ahead += 1
        drawn = self._next_gap
        return Account(
            name=name,
            policy=self.settings.policy,
            last_start=self.settings.last_start,
            starts=list(self._starts),
            gap_s=drawn[1] if drawn is not None and drawn[0] == campaign_id else None,
            lanes_ahead=ahead,
            other_lanes=len([cid for cid in lanes if cid != campaign_id]),
        )

    def snapshot(self) -> dict[str, Any]:
        now = self._clock.now()
        s = self.settings.policy
        zone = s.day_zone()
        edges = [bisect.bisect_left(self._starts, now - dt.timedelta(minutes=m)) for m in range(60, -1, -1)]
        per_minute = [edges[i + 1] - edges[i] for i in range(60)]
        # Idle between sends, yet at its day's cap by its rules (nothing was handed back, because enrolment
        # placed the rest after midnight): say so, as the view of an account without a limiter does.
        state = self.state
        if state == "idle":
            state = s.state(now, sent_today=pacing.sent_today(self._starts, zone, now))
        return {
            "bdAccountId": str(self.bd_account_id),
            "state": state,
            "blockedUntil": s.blocked_until,
            "blockReason": s.block_reason,
            "sentToday": pacing.sent_today(self._starts, zone, now),
            "dailyCap": s.daily_cap,
            "lastSendAt": self.settings.last_start,
            "nextAllowedAt": self.next_start(now),
            "floorSeconds": s.floor_s,
            "queued": [str(cid) for cid in self._rr],
            "sendingParticipantId": str(self.sending.participant_id) if self.sending else None,
            "sendsPerMinute": per_minute,
            "capReachedUntil": self.cap_until if self.cap_until and self.cap_until > now else None,
            "windowOpensAt": self.window_until if self.window_until and self.window_until > now else None,
            "rampCap": s.ramp_cap(now),
            "rampNextStepAt": s.ramp_next_step_at(now),
        }
