"""AccountLimiter on trio's virtual clock (SPEC R-THR-1..4, PERF gap accuracy).

Every test runs on ``autojump_clock``: hours of pacing pass in milliseconds of real time and the order of
events is deterministic. A :class:`FakeSender` records each send start on the :class:`TrioClock`; a
:class:`Feeder` plays a campaign actor (one request per account out at a time, the next participant offered
once the previous one is released, a handed-back request offered again at the time the limiter named).
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import heapq
import itertools
import math
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
import trio
import trio.testing

from campaignsvc.actors.clock import TrioClock
from campaignsvc.actors.limiter import CLAIM_LEAD, AccountLimiter, AccountSettings, SendReport, SendRequest
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.audience import gap_range
from campaignsvc.domain.campaign import WINDOW_JITTER_S, CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy

UTC = ZoneInfo("UTC")
TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
EVERY_DAY = frozenset(range(7))
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
ORG = uuid.UUID(int=1)
JITTER = dt.timedelta(seconds=WINDOW_JITTER_S)
ATTEMPTED = SendReport(attempted=True)

_ids = itertools.count(1_000)


def new_id() -> uuid.UUID:
    return uuid.UUID(int=next(_ids))


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def seconds(s: float) -> dt.timedelta:
    return dt.timedelta(seconds=s)


def hm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def window(zone: ZoneInfo, start: str, end: str, days: frozenset[int] = EVERY_DAY) -> sched.Schedule:
    return sched.Schedule(zone, hm(start), hm(end), days)


def make_plan(
    audience: Mapping[str, Any] | None = None,
    *,
    schedule: sched.Schedule | None = None,
    daily_target: int | None = None,
) -> CampaignPlan:
    """A campaign as the limiter sees it; the gap comes from ``target_audience`` as v1 stored it."""
    low, high = gap_range(audience or {})
    return CampaignPlan(
        id=new_id(),
        organization_id=ORG,
        owner_id=None,
        steps=(),
        templates={},
        schedule=schedule,
        gap_min_s=low,
        gap_max_s=high,
        daily_target=daily_target,
        reply_wait=dt.timedelta(hours=168),
        pipeline_id=None,
        lead_settings={},
    )


_HISTORY = {f.name for f in attrs.fields(AccountSettings)} - {"policy"}


def open_settings(**changes: Any) -> AccountSettings:
    """No floor, no cap, no window: only what a test sets applies (rules and history by name)."""
    rules = {"floor_s": 0.0, "daily_cap": 0} | {k: v for k, v in changes.items() if k not in _HISTORY}
    return AccountSettings(AccountPolicy(**rules), **{k: v for k, v in changes.items() if k in _HISTORY})


@attrs.frozen
class Sent:
    account: uuid.UUID
    campaign: uuid.UUID
    participant: uuid.UUID
    start: dt.datetime
    allowed: dt.datetime | None  # limiter.next_allowed() as the send began: previous start + the gap


@attrs.frozen
class Deferred:
    request: SendRequest
    until: dt.datetime
    reason: str
    at: dt.datetime


class FakeSender:
    """Implements ``Sender``: records the start on the virtual clock, takes ``duration_s`` of virtual time
    (per account in ``durations``), returns the report scripted for the n-th send (default: attempted),
    then releases the participant to its campaign."""

    def __init__(self, clock: TrioClock, on_done: Callable[[SendRequest], None]) -> None:
        self.clock = clock
        self.on_done = on_done
        self.duration_s = 0.0
        self.durations: dict[uuid.UUID, float] = {}
        self.script: dict[int, SendReport] = {}
        self.sent: list[Sent] = []
        self.finished: list[uuid.UUID] = []

    async def send(
        self, limiter: AccountLimiter, request: SendRequest, start_at: dt.datetime | None = None
    ) -> SendReport:
        if start_at is not None:  # the real sender claims first, then calls Messaging at the start
            await trio.sleep_until(self.clock.deadline(start_at))
        index = len(self.sent)
        self.sent.append(
            Sent(
                limiter.bd_account_id,
                request.plan.id,
                request.participant_id,
                self.clock.now(),
                limiter.next_allowed(),
            )
        )
        duration = self.durations.get(limiter.bd_account_id, self.duration_s)
        if duration:
            await trio.sleep(duration)
        self.finished.append(request.participant_id)
        self.on_done(request)
        return self.script.get(index, ATTEMPTED)


class Feeder:
    """Plays a campaign actor over some accounts: one request per account out at a time, the next
    participant (``participants`` per account, None = endless) offered once the previous one is released,
    a handed-back request offered again at the ``until`` the limiter gave."""

    def __init__(
        self,
        plan: CampaignPlan,
        limiters: Sequence[AccountLimiter],
        clock: TrioClock,
        participants: int | None,
    ) -> None:
        self.plan = plan
        self.limiters = {limiter.bd_account_id: limiter for limiter in limiters}
        self.clock = clock
        self.left = {account: participants for account in self.limiters}
        self.offered_at: dict[uuid.UUID, dt.datetime] = {}  # participant → its latest offer
        self._events, self._inbox = trio.open_memory_channel[tuple[SendRequest, dt.datetime | None]](math.inf)
        self._later: list[tuple[dt.datetime, int, SendRequest]] = []
        self._seq = itertools.count()

    def released(self, request: SendRequest) -> None:
        self._events.send_nowait((request, None))

    def deferred(self, request: SendRequest, until: dt.datetime) -> None:
        self._events.send_nowait((request, until))

    def _offer(self, request: SendRequest) -> None:
        self.offered_at[request.participant_id] = self.clock.now()
        self.limiters[request.bd_account_id].offer(request)

    def _offer_next(self, account: uuid.UUID) -> None:
        left = self.left[account]
        if left == 0:
            return
        if left is not None:
            self.left[account] = left - 1
        self._offer(SendRequest(self.plan, new_id(), account, 0, self.clock.now()))

    def offer_first(self) -> None:
        for account in self.limiters:
            self._offer_next(account)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            deadline = self.clock.deadline(self._later[0][0]) if self._later else math.inf
            with trio.move_on_at(deadline):
                request, until = await self._inbox.receive()
                if until is None:
                    self._offer_next(request.bd_account_id)
                else:
                    heapq.heappush(self._later, (until, next(self._seq), request))
            now = self.clock.now()
            while self._later and self._later[0][0] <= now:
                self._offer(heapq.heappop(self._later)[2])


class World:
    """Limiters, their campaigns and one recording sender on a wall clock that starts at ``origin``."""

    def __init__(self, origin: dt.datetime, *, seed: int = 0) -> None:
        self.origin = origin
        self.clock = TrioClock(origin)
        self.rng = random.Random(seed)
        self.sender = FakeSender(self.clock, self._released)
        self.limiters: dict[uuid.UUID, AccountLimiter] = {}
        self.feeders: dict[uuid.UUID, Feeder] = {}
        self.deferrals: list[Deferred] = []

    def account(
        self,
        settings: AccountSettings,
        *,
        load_settings: Callable[[], Awaitable[AccountSettings | None]] | None = None,
        on_unblock: Callable[[], Awaitable[None]] | None = None,
    ) -> AccountLimiter:
        limiter = AccountLimiter(
            new_id(),
            settings,
            sender=self.sender,
            on_defer=self._deferred,
            clock=self.clock,
            rng=random.Random(self.rng.random()),
            load_settings=load_settings,
            on_unblock=on_unblock,
        )
        self.limiters[limiter.bd_account_id] = limiter
        return limiter

    def campaign(
        self, plan: CampaignPlan, limiters: Sequence[AccountLimiter], *, participants: int | None = None
    ) -> Feeder:
        feeder = Feeder(plan, limiters, self.clock, participants)
        self.feeders[plan.id] = feeder
        return feeder

    def at(self, offset_s: float) -> dt.datetime:
        return self.origin + seconds(offset_s)

    async def until(self, at: dt.datetime) -> None:
        """Let virtual time run to ``at``, then let every task finish reacting to that instant."""
        await trio.sleep_until(self.clock.deadline(at))
        await trio.testing.wait_all_tasks_blocked()

    def sent(self, limiter: AccountLimiter | None = None) -> list[Sent]:
        return [s for s in self.sender.sent if limiter is None or s.account == limiter.bd_account_id]

    def starts(self, limiter: AccountLimiter | None = None) -> list[dt.datetime]:
        return [s.start for s in self.sent(limiter)]

    def _released(self, request: SendRequest) -> None:
        feeder = self.feeders.get(request.plan.id)
        if feeder is not None:
            feeder.released(request)

    def _deferred(self, request: SendRequest, until: dt.datetime, reason: str) -> None:
        self.deferrals.append(Deferred(request, until, reason, self.clock.now()))
        feeder = self.feeders.get(request.plan.id)
        if feeder is not None:
            feeder.deferred(request, until)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with trio.open_nursery() as nursery:
            for limiter in self.limiters.values():
                await nursery.start(limiter.run)
            for feeder in self.feeders.values():
                await nursery.start(feeder.run)
            # trio runs tasks woken together in random order: the first offers go in one step, in order.
            for feeder in self.feeders.values():
                feeder.offer_first()
            await trio.testing.wait_all_tasks_blocked()
            yield
            nursery.cancel_scope.cancel()


def request(plan: CampaignPlan, limiter: AccountLimiter, clock: TrioClock) -> SendRequest:
    return SendRequest(plan, new_id(), limiter.bd_account_id, 0, clock.now())


# --- R-THR-1 / R-THR-4 / PERF: the gap over many accounts ---------------------------------------------


async def test_limiter__thousand_accounts_mixed_gaps_never_send_closer_than_the_gap(autojump_clock):
    origin = utc(2025, 6, 10, 7, 30)
    hours = 2
    world = World(origin, seed=1)
    pick = random.Random(2)

    plans = [
        make_plan({"sendDelaySeconds": 300}),
        make_plan({"sendDelaySeconds": 180}, schedule=window(ZoneInfo("Europe/London"), "08:45", "10:00")),
        make_plan({"sendDelayMinSeconds": 240, "sendDelayMaxSeconds": 600}),
        make_plan({"sendDelayMinSeconds": 400, "sendDelayMaxSeconds": 200}),  # reversed: still a range
        make_plan({}, daily_target=12),  # default 60 s
        make_plan({"sendDelayMinSeconds": 30, "sendDelayMaxSeconds": 1200}),
    ]
    floors = [0.0, 120.0, 360.0, 360.0]  # 0 disables the floor; 360 s is the default
    # Working windows that open and close during the run (UTC 07:30–09:30), caps that reset inside it.
    kinds: list[dict[str, Any]] = [
        {"schedule": window(BERLIN, "10:00", "10:45")},  # 08:00–08:45 UTC
        {"schedule": window(NEW_YORK, "04:20", "05:05")},  # 08:20–09:05 UTC
        {"schedule": window(ZoneInfo("Australia/Sydney"), "22:00", "18:15")},  # overnight, closes 08:15 UTC
        {"schedule": window(ZoneInfo("Asia/Kolkata"), "09:30", "18:30")},  # open throughout
        {"timezone": ZoneInfo("America/Anchorage"), "daily_cap": 10},  # local midnight at 08:00 UTC
        {"daily_cap": 20},  # the default cap, days in the campaign's zone else UTC
        {},
        {},
        {},
        {},
    ]
    campaigns_of: dict[uuid.UUID, list[CampaignPlan]] = {}
    for i in range(1_000):
        limiter = world.account(open_settings(floor_s=floors[(i // 10) % 4], **kinds[i % 10]))
        world.sender.durations[limiter.bd_account_id] = (1.5, 0.0, 0.0, 0.0)[i % 4]
        campaigns_of[limiter.bd_account_id] = pick.sample(plans, pick.randint(1, 3))
    for plan in plans:
        served = [world.limiters[a] for a, ps in campaigns_of.items() if plan in ps]
        world.campaign(plan, served)

    async with world.running():
        await world.until(origin + dt.timedelta(hours=hours))

    plan_of = {plan.id: plan for plan in plans}
    by_account: dict[uuid.UUID, list[Sent]] = collections.defaultdict(list)
    for sent in world.sender.sent:
        by_account[sent.account].append(sent)
    offered_at = {p: t for feeder in world.feeders.values() for p, t in feeder.offered_at.items()}

    max_excess = dt.timedelta(0)
    checked_gaps = 0
    for account, limiter in world.limiters.items():
        sends = by_account[account]
        assert sends, f"account {account} never sent"
        starts = [sent.start for sent in sends]
        s = limiter.settings.policy
        for k, sent in enumerate(sends):
            plan = plan_of[sent.campaign]
            assert plan in campaigns_of[account]
            # Inside the window that applies (the campaign's, else the account's).
            schedule = plan.effective_schedule(s.schedule)
            assert sched.is_open(schedule, sent.start), (account, sent)
            # Below the cap that applies, counted in the account's zone, else the campaign's, else UTC.
            cap = plan.daily_cap(s.daily_cap)
            if cap:
                zone = limiter.settings.policy.day_zone(plan)
                midnight = dt.datetime.combine(sched.local_day(zone, sent.start), dt.time(), tzinfo=zone)
                assert k - bisect.bisect_left(starts, midnight) < cap, (account, sent)
            # Work waiting (offered, gap elapsed) starts at once: the excess over the gap.
            ready = (
                offered_at[sent.participant]
                if sent.allowed is None
                else max(sent.allowed, offered_at[sent.participant])
            )
            assert sent.start >= ready
            max_excess = max(max_excess, sent.start - ready)
            if k == 0:
                continue
            previous = sends[k - 1].start
            required = seconds(max(s.floor_s, plan.gap_min_s))
            assert sent.start - previous >= required, (account, sent, required)
            # The gap sampled for this send lies in the campaign's range, never below the floor.
            assert sent.allowed is not None
            assert required <= sent.allowed - previous <= seconds(max(s.floor_s, plan.gap_max_s))
            checked_gaps += 1

    for d in world.deferrals:
        limiter = world.limiters[d.request.bd_account_id]
        if d.reason == "window":
            schedule = d.request.plan.effective_schedule(limiter.settings.policy.schedule)
            # Handed back when it could not start before the window closes: the next window start + jitter.
            start = sched.next_open(schedule, d.until - JITTER)
            assert d.at < start <= d.until < start + JITTER, d
        else:
            assert d.reason == "cap"
            assert d.until >= sched.next_local_midnight(
                limiter.settings.policy.day_zone(d.request.plan), d.at
            )

    assert {d.reason for d in world.deferrals} == {"cap", "window"}
    assert checked_gaps > 10_000
    # PERF allows 50 ms at p99 in real time; on the virtual clock there is no scheduling latency, so any
    # excess would be the limiter's own doing (microsecond rounding aside).
    assert max_excess <= dt.timedelta(milliseconds=1), max_excess
    print(
        f"\n{len(world.sender.sent)} sends over {len(world.limiters)} accounts in {hours} virtual hours, "
        f"{checked_gaps} gaps checked, {len(world.deferrals)} deferrals, max excess over the gap "
        f"{max_excess / dt.timedelta(microseconds=1):.0f} µs"
    )


# --- R-THR-3: fairness ------------------------------------------------------------------------------


async def test_limiter__two_campaigns_on_one_account_are_served_round_robin(autojump_clock):
    world = World(utc(2025, 6, 10, 10, 0))
    limiter = world.account(open_settings())
    huge = make_plan({"sendDelaySeconds": 10})
    small = make_plan({"sendDelaySeconds": 300})
    world.campaign(huge, [limiter])  # offered first, endless, shorter gap
    world.campaign(small, [limiter], participants=5)

    async with world.running():
        await world.until(world.at(3_600))

    order = [s.campaign for s in world.sent()]
    # Both lanes always full: the campaigns alternate, starting with the one that offered first.
    assert order[:10] == [huge.id, small.id] * 5
    assert order[10:] == [huge.id] * len(order[10:])
    # The gap that applies is the one of the campaign served next.
    starts = world.starts()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts[:11])]
    assert gaps == [300.0, 10.0] * 5
    assert world.deferrals == []


# --- R-THR-2: blocks ----------------------------------------------------------------------------------


async def test_limiter__flood_block_holds_every_campaign_until_it_ends(autojump_clock):
    world = World(utc(2025, 6, 10, 10, 0))
    database = {"blocked_until": None}
    unblocked: list[dt.datetime] = []

    async def load() -> AccountSettings:
        return open_settings(blocked_until=database["blocked_until"])

    async def on_unblock() -> None:
        unblocked.append(world.clock.now())

    limiter = world.account(open_settings(), load_settings=load, on_unblock=on_unblock)
    a = make_plan({"sendDelaySeconds": 30})
    b = make_plan({"sendDelaySeconds": 30})
    world.campaign(a, [limiter])
    world.campaign(b, [limiter])
    flood_until = world.at(30 + 1_800)
    world.sender.script[1] = SendReport(attempted=True, block_until=flood_until, block_reason="flood_wait")
    peer_flood_until = world.at(1_860 + 86_400)
    world.sender.script[3] = SendReport(
        attempted=True, block_until=peer_flood_until, block_reason="peer_flood"
    )

    async with world.running():
        await world.until(world.at(31))
        assert world.starts() == [world.at(0), world.at(30)]
        assert limiter.state == "flood_blocked"
        assert limiter.snapshot()["blockedUntil"] == flood_until
        await world.until(flood_until - seconds(1))
        # Both campaigns' next requests wait at the limiter; none is sent or handed back.
        assert len(world.sent()) == 2
        assert set(limiter.queued()) == {a.id, b.id}
        assert limiter.state == "flood_blocked"
        assert world.deferrals == []

        await world.until(flood_until + seconds(31))
        assert world.starts()[2:] == [flood_until, flood_until + seconds(30)]
        assert [s.campaign for s in world.sent()] == [a.id, b.id, a.id, b.id]
        assert unblocked == [flood_until]
        assert limiter.state == "flood_blocked"
        assert limiter.settings.policy.block_reason == "peer_flood"

        # The block is lifted in the database: a reload lets the account resume at once.
        await world.until(world.at(2_460))
        assert len(world.sent()) == 4
        limiter.reload()
        await trio.testing.wait_all_tasks_blocked()
        assert world.starts()[4:] == [world.at(2_460)]
        await world.until(world.at(2_560))
        assert world.starts()[4:] == [world.at(2_460), world.at(2_490), world.at(2_520), world.at(2_550)]


async def test_limiter__a_reload_asked_for_while_reloading_is_not_lost(autojump_clock):
    world = World(utc(2025, 6, 10, 10, 0))
    database = {"restricted": True}
    loads: list[dt.datetime] = []

    async def load() -> AccountSettings:
        loads.append(world.clock.now())
        fresh = open_settings(restricted=database["restricted"])  # read at the start of the query
        await trio.sleep(1)
        return fresh

    limiter = world.account(open_settings(restricted=True), load_settings=load)
    limiter.reload()  # as the supervisor does when it creates a limiter
    plan = make_plan({"sendDelaySeconds": 60})
    limiter.offer(request(plan, limiter, world.clock))

    async with world.running():
        await world.until(world.at(0.5))
        # The account is cleared while the first read is under way; its notification asks again.
        database["restricted"] = False
        limiter.reload()
        await world.until(world.at(3_600))

    assert loads == [world.at(0), world.at(1)]
    assert world.starts() == [world.at(2)]


# --- R-THR-1: the daily cap ---------------------------------------------------------------------------


async def test_limiter__daily_cap_resets_at_local_midnight(autojump_clock):
    # 23:50 in Tokyo: three sends fit before midnight, three more after it.
    world = World(utc(2025, 6, 10, 14, 50))
    limiter = world.account(open_settings(timezone=TOKYO, daily_cap=3))
    a, b = make_plan({"sendDelaySeconds": 60}), make_plan({"sendDelaySeconds": 60})
    world.campaign(a, [limiter])
    world.campaign(b, [limiter])
    tokyo_midnight = utc(2025, 6, 10, 15, 0)
    async with world.running():
        await world.until(world.at(5 * 60))
        assert limiter.state == "daily_cap"
        assert limiter.snapshot()["capReachedUntil"] == tokyo_midnight
        await world.until(world.at(3_600))
    # The cap counts the sends of both campaigns.
    assert world.starts() == [
        utc(2025, 6, 10, 14, 50),
        utc(2025, 6, 10, 14, 51),
        utc(2025, 6, 10, 14, 52),
        tokyo_midnight,
        tokyo_midnight + seconds(60),
        tokyo_midnight + seconds(120),
    ]
    # Both lanes are handed back when the cap is reached, until the next local midnight.
    day_one, day_two = world.deferrals[:2], world.deferrals[2:]
    assert [(d.reason, d.request.plan.id, d.at, d.until) for d in day_one] == [
        ("cap", b.id, utc(2025, 6, 10, 14, 52), tokyo_midnight),
        ("cap", a.id, utc(2025, 6, 10, 14, 52), tokyo_midnight),
    ]
    next_midnight = tokyo_midnight + dt.timedelta(days=1)
    assert {(d.reason, d.request.plan.id, d.at, d.until) for d in day_two} == {
        ("cap", a.id, tokyo_midnight + seconds(120), next_midnight),
        ("cap", b.id, tokyo_midnight + seconds(120), next_midnight),
    }

    # With a working window, the next local midnight is placed at the window start (plus jitter).
    world = World(utc(2025, 6, 10, 8, 50))  # 17:50 in Tokyo
    limiter = world.account(
        open_settings(timezone=TOKYO, daily_cap=3, schedule=window(TOKYO, "09:00", "18:00"))
    )
    world.campaign(make_plan({"sendDelaySeconds": 60}), [limiter])
    window_start = utc(2025, 6, 11, 0, 0)  # 09:00 in Tokyo
    async with world.running():
        await world.until(window_start + JITTER + seconds(1))
    deferred = world.deferrals[0]
    assert {d.reason for d in world.deferrals} == {"cap"}
    assert window_start <= deferred.until < window_start + JITTER
    assert world.starts()[:4] == [world.at(0), world.at(60), world.at(120), deferred.until]

    # The campaign's dailySendTarget below the account cap; it counts every send of the account.
    world = World(utc(2025, 6, 10, 10, 0))
    limiter = world.account(open_settings(daily_cap=5))
    plain = make_plan({"sendDelaySeconds": 60})
    targeted = make_plan({"sendDelaySeconds": 60}, daily_target=2)
    world.campaign(plain, [limiter])
    world.campaign(targeted, [limiter])
    async with world.running():
        await world.until(world.at(3_600))
    assert [s.campaign for s in world.sent()] == [plain.id, targeted.id, plain.id, plain.id, plain.id]
    utc_midnight = utc(2025, 6, 11, 0, 0)
    assert [(d.reason, d.request.plan.id, d.at, d.until) for d in world.deferrals] == [
        ("cap", targeted.id, world.at(120), utc_midnight),
        ("cap", plain.id, world.at(240), utc_midnight),
    ]


# --- R-SEQ-4 at the limiter: working windows ----------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "on_campaign", "origin", "window_start"),
    [
        # Overnight window, Saturday afternoon before the spring-forward night: 22:00 CET.
        (window(BERLIN, "22:00", "06:00"), True, utc(2025, 3, 29, 12, 0), utc(2025, 3, 29, 21, 0)),
        # Sunday 06:30 CEST, just after that window closed: the next one starts 22:00 CEST.
        (window(BERLIN, "22:00", "06:00"), True, utc(2025, 3, 30, 4, 30), utc(2025, 3, 30, 20, 0)),
        # The account's own hours with minutes, weekdays: Friday 18:31 EDT → Monday 09:30 EST.
        (
            window(NEW_YORK, "09:30", "18:30", WEEKDAYS),
            False,
            utc(2025, 10, 31, 22, 31),
            utc(2025, 11, 3, 14, 30),
        ),
        # Before the window on a weekday: the same day's 09:30.
        (
            window(NEW_YORK, "09:30", "18:30", WEEKDAYS),
            False,
            utc(2025, 11, 4, 12, 0),
            utc(2025, 11, 4, 14, 30),
        ),
    ],
)
async def test_limiter__window_closed_defers_to_the_next_window_start(
    autojump_clock, schedule, on_campaign, origin, window_start
):
    world = World(origin)
    limiter = world.account(open_settings(schedule=None if on_campaign else schedule))
    plan = make_plan({"sendDelaySeconds": 60}, schedule=schedule if on_campaign else None)
    world.campaign(plan, [limiter], participants=1)
    async with world.running():
        [deferred] = world.deferrals
        assert deferred.reason == "window"
        assert deferred.at == origin
        assert window_start <= deferred.until < window_start + JITTER
        assert limiter.snapshot()["windowOpensAt"] == deferred.until
        assert limiter.queued() == {}
        await world.until(window_start + JITTER + seconds(1))
    # Handed back once (no polling), sent the moment it is offered again.
    assert len(world.deferrals) == 1
    assert world.starts() == [deferred.until]


async def test_limiter__a_lane_whose_window_closes_within_its_gap_does_not_hold_up_the_others(autojump_clock):
    world = World(utc(2025, 6, 10, 9, 50))
    limiter = world.account(open_settings())
    until_ten = make_plan({"sendDelaySeconds": 600}, schedule=window(UTC, "09:00", "10:00"))
    anytime = make_plan({"sendDelaySeconds": 60})
    world.campaign(until_ten, [limiter])
    world.campaign(anytime, [limiter])
    async with world.running():
        await world.until(world.at(5 * 60))
    # The windowed campaign's next send could start at 10:01 at the earliest, after its window: it is handed
    # back at once, and the other campaign goes on at its own gap instead of waiting for 10:01.
    [deferred] = world.deferrals
    assert (deferred.reason, deferred.request.plan.id, deferred.at) == ("window", until_ten.id, world.at(60))
    assert utc(2025, 6, 11, 9, 0) <= deferred.until < utc(2025, 6, 11, 9, 0) + JITTER
    assert world.starts() == [world.at(60 * k) for k in range(6)]
    assert [s.campaign for s in world.sent()] == [until_ten.id] + [anytime.id] * 5


async def test_limiter__overnight_window_across_dst_sends_only_inside_it(autojump_clock):
    world = World(utc(2025, 3, 29, 12, 0))  # Saturday; clocks go forward in Berlin that night
    limiter = world.account(open_settings())
    overnight = window(BERLIN, "22:00", "06:00")
    world.campaign(make_plan({"sendDelaySeconds": 3_600}, schedule=overnight), [limiter])
    async with world.running():
        await world.until(utc(2025, 3, 30, 20, 30))
    first, second = world.deferrals
    assert utc(2025, 3, 29, 21, 0) <= first.until < utc(2025, 3, 29, 21, 0) + JITTER  # 22:00 CET
    assert utc(2025, 3, 30, 20, 0) <= second.until < utc(2025, 3, 30, 20, 0) + JITTER  # 22:00 CEST
    # Hourly from the window start until 06:00 CEST (04:00 UTC), then the next evening's start.
    hourly = [first.until + dt.timedelta(hours=h) for h in range(7)]
    assert world.starts() == [*hourly, second.until]
    assert second.at == first.until + dt.timedelta(hours=6)  # the next start, 04:00+, would be outside
    assert all(sched.is_open(overnight, t) for t in world.starts())


# --- drop() -----------------------------------------------------------------------------------------


async def test_limiter__drop_forgets_the_queued_request_but_not_the_send_under_way(autojump_clock):
    world = World(utc(2025, 6, 10, 10, 0))
    limiter = world.account(open_settings())
    world.sender.duration_s = 10
    a, b, c = (make_plan({"sendDelaySeconds": 60}) for _ in range(3))
    clock = world.clock
    async with world.running():
        in_flight = request(a, limiter, clock)
        limiter.offer(in_flight)
        await world.until(world.at(1))
        assert limiter.state == "sending"
        assert limiter.drop(a.id) is None  # nothing queued for it: the send under way goes on
        b_first, b_newer = request(b, limiter, clock), request(b, limiter, clock)
        limiter.offer(b_first)
        await world.until(world.at(2))
        limiter.offer(b_newer)  # replaces the queued one
        assert limiter.queued() == {b.id: b_newer}
        await world.until(world.at(11))
        assert world.sender.finished == [in_flight.participant_id]

        c_queued = request(c, limiter, clock)
        limiter.offer(c_queued)
        await world.until(world.at(100))
        assert limiter.queued() == {c.id: c_queued}
        assert limiter.drop(c.id) == c_queued
        assert limiter.queued() == {}
        await world.until(world.at(3_600))

    assert [s.participant for s in world.sent()] == [in_flight.participant_id, b_newer.participant_id]
    assert world.starts() == [world.at(0), world.at(60)]
    assert world.deferrals == []
    assert limiter.state == "idle"


# --- restart safety -------------------------------------------------------------------------------


async def test_limiter__gap_holds_across_a_restart(autojump_clock):
    world = World(utc(2025, 6, 10, 10, 0))
    floored = world.account(
        open_settings(floor_s=360, last_start=world.at(-100), recent_starts=[world.at(-100)])
    )
    ranged = world.account(open_settings(last_start=world.at(-100), recent_starts=[world.at(-100)]))
    world.campaign(make_plan({"sendDelaySeconds": 60}), [floored])
    world.campaign(make_plan({"sendDelayMinSeconds": 400, "sendDelayMaxSeconds": 500}), [ranged])
    async with world.running():
        assert floored.state == ranged.state == "waiting_gap"
        assert floored.snapshot()["nextAllowedAt"] == world.at(260)
        await world.until(world.at(1_000))
    # The floor counts from the last send before the restart, not from the start of this process.
    assert world.starts(floored) == [world.at(260), world.at(620), world.at(980)]
    first = world.starts(ranged)[0]
    assert world.at(300) <= first <= world.at(400)


async def test_limiter__sends_before_a_restart_count_toward_todays_cap(autojump_clock):
    world = World(utc(2025, 6, 10, 10, 0))  # 12:00 in Berlin
    berlin_midnight = utc(2025, 6, 9, 22, 0)
    earlier = [
        utc(2025, 6, 9, 21, 0),  # yesterday in Berlin
        berlin_midnight - dt.timedelta(microseconds=1),  # yesterday, just
        berlin_midnight,  # today
        utc(2025, 6, 10, 8, 0),
        utc(2025, 6, 10, 9, 0),
    ]
    limiter = world.account(
        open_settings(timezone=BERLIN, daily_cap=4, last_start=earlier[-1], recent_starts=earlier)
    )
    world.campaign(make_plan({"sendDelaySeconds": 60}), [limiter])
    assert limiter.snapshot()["sentToday"] == 3
    async with world.running():
        await world.until(world.at(3_600))
    assert limiter.snapshot()["sentToday"] == 4
    assert world.starts() == [world.at(0)]
    [deferred] = world.deferrals
    assert (deferred.reason, deferred.at, deferred.until) == ("cap", world.at(0), utc(2025, 6, 10, 22, 0))


# --- snapshot() for the dashboard (R-UI-1) --------------------------------------------------------


async def test_limiter__snapshot_reports_state_counts_and_sends_per_minute(autojump_clock):
    world = World(utc(2025, 6, 10, 10, 0))
    world.sender.duration_s = 5
    limiter = world.account(open_settings(daily_cap=25))
    restricted = world.account(open_settings(restricted=True))
    blocked = world.account(open_settings(blocked_until=world.at(3_600), block_reason="flood_wait"))
    plan = make_plan({"sendDelaySeconds": 90})
    feeder = world.campaign(plan, [limiter])
    other = make_plan({"sendDelaySeconds": 90})
    restricted.offer(request(other, restricted, world.clock))
    blocked.offer(request(other, blocked, world.clock))

    def snap(*keys: str) -> dict[str, Any]:
        shot = limiter.snapshot()
        return {key: shot[key] for key in keys}

    async with world.running():
        assert restricted.snapshot()["state"] == "restricted"
        shot = blocked.snapshot()
        assert (shot["state"], shot["blockedUntil"], shot["blockReason"], shot["nextAllowedAt"]) == (
            "flood_blocked",
            world.at(3_600),
            "flood_wait",
            world.at(3_600),
        )
        assert shot["queued"] == [str(other.id)]

        await world.until(world.at(2))
        [first] = feeder.offered_at
        assert snap("state", "sendingParticipantId", "sentToday", "lastSendAt", "nextAllowedAt") == {
            "state": "sending",
            "sendingParticipantId": str(first),
            "sentToday": 0,
            "lastSendAt": None,
            "nextAllowedAt": None,
        }

        await world.until(world.at(10))
        assert snap("state", "sentToday", "dailyCap", "lastSendAt", "nextAllowedAt", "queued") == {
            "state": "waiting_gap",
            "sentToday": 1,
            "dailyCap": 25,
            "lastSendAt": world.at(0),
            "nextAllowedAt": world.at(90),
            "queued": [str(plan.id)],
        }

        # Sends every 90 s from 10:00:00 to 10:30:00; the chart covers [now - 60 min, now) per minute.
        await world.until(world.at(30 * 60 + 45))
        per_minute = limiter.snapshot()["sendsPerMinute"]
        assert len(per_minute) == 60
        assert per_minute == [0] * 29 + [0 if (i - 29) % 3 == 2 else 1 for i in range(29, 60)]
        assert sum(per_minute) == 21
        assert snap("sentToday", "lastSendAt", "nextAllowedAt") == {
            "sentToday": 21,
            "lastSendAt": world.at(30 * 60),
            "nextAllowedAt": world.at(31 * 60 + 30),
        }

        # The 25th send is the last of the day.
        await world.until(world.at(40 * 60))
        assert snap("state", "sentToday", "capReachedUntil", "nextAllowedAt", "queued") == {
            "state": "daily_cap",
            "sentToday": 25,
            "capReachedUntil": utc(2025, 6, 11, 0, 0),
            "nextAllowedAt": utc(2025, 6, 11, 0, 0),
            "queued": [],
        }
        assert world.starts(limiter)[-1] == world.at(36 * 60)

        # An hour later the chart has slid on.
        await world.until(world.at(100 * 60 + 45))
        assert limiter.snapshot()["sendsPerMinute"] == [0] * 60


async def test_limiter__refused_sends_spend_the_gap_but_not_the_daily_cap(autojump_clock):
    world = World(utc(2025, 6, 10, 10, 0))
    limiter = world.account(open_settings(daily_cap=3))
    world.sender.script = {
        0: SendReport(attempted=True, counted=False),
        1: SendReport(attempted=True, counted=False),
    }
    world.campaign(make_plan({"sendDelaySeconds": 60}), [limiter])
    async with world.running():
        await world.until(world.at(3_600))
    starts = world.starts()
    # Two refusals, then the three sends the cap allows, each at least the gap after the previous call.
    assert len(starts) == 5
    assert all(b - a >= seconds(60) for a, b in itertools.pairwise(starts))
    assert limiter.snapshot()["sentToday"] == 3
    assert [d.reason for d in world.deferrals] == ["cap"]


async def test_limiter__next_allowed_at_the_cap_is_the_accounts_next_local_midnight(autojump_clock):
    world = World(utc(2025, 6, 10, 10, 0))
    tokyo = ZoneInfo("Asia/Tokyo")  # 19:00 local: the next day starts at 15:00 UTC
    starts = [world.at(-60 * i) for i in (3, 2, 1)]
    at_cap = world.account(
        open_settings(daily_cap=3, timezone=tokyo, last_start=starts[-1], recent_starts=starts)
    )
    async with world.running():
        shot = at_cap.snapshot()
        # Nothing offered yet, but the day's cap is used: the account is at its cap, as the view of an
        # account without a limiter says (enrolment places the rest after midnight: nothing is handed back).
        assert (shot["state"], shot["sentToday"]) == ("daily_cap", 3)
        assert shot["nextAllowedAt"] == utc(2025, 6, 10, 15, 0)


async def test_limiter__a_send_offered_a_claims_lead_before_midnight_starts_at_midnight(autojump_clock):
    """The campaign actor offers a send ``CLAIM_LEAD`` before its due time. One handed back for the cap to
    the next local midnight comes back 100 ms before it: the cap is counted on the day it would start,
    so it starts at midnight instead of being handed back again and again until the day turns."""
    world = World(utc(2025, 6, 10, 14, 59))  # 23:59 in Tokyo
    limiter = world.account(open_settings(timezone=TOKYO, daily_cap=1))
    plan = make_plan({"sendDelaySeconds": 0})
    midnight = utc(2025, 6, 10, 15, 0)
    deferred: list[tuple[dt.datetime, dt.datetime]] = []
    clock = world.clock

    async with trio.open_nursery() as nursery:

        async def offer_again(request: SendRequest, until: dt.datetime) -> None:
            await trio.sleep_until(clock.deadline(until - CLAIM_LEAD))
            limiter.offer(attrs.evolve(request, due_at=until))

        def on_defer(request: SendRequest, until: dt.datetime, reason: str) -> None:
            deferred.append((clock.now(), until))
            if len(deferred) < 5:  # a limiter that keeps handing it back would loop without time passing
                nursery.start_soon(offer_again, request, until)

        limiter._on_defer = on_defer
        await nursery.start(limiter.run)
        limiter.offer(request(plan, limiter, clock))
        limiter.offer(
            SendRequest(make_plan({"sendDelaySeconds": 0}), new_id(), limiter.bd_account_id, 0, clock.now())
        )
        await world.until(midnight + seconds(5))
        nursery.cancel_scope.cancel()
    assert [(at, until) for at, until in deferred] == [(world.origin, midnight)]
    assert world.starts(limiter) == [world.origin, midnight]
