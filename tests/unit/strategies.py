"""Hypothesis strategies shared by the schedule and forecast tests."""

from __future__ import annotations

import functools
import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
from hypothesis import strategies as st

from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy, Ramp
from campaignsvc.domain.schedule import MINUTES_PER_DAY, Schedule, previous_local_midnight
from campaignsvc.domain.steps import AFTER_REPLY, DELAY, Step
from campaignsvc.domain.templates import parse

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # DST changes at midnight
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kathmandu",  # +05:45
    "Pacific/Chatham",  # +12:45 / +13:45
    "Europe/London",
]
US = timedelta(microseconds=1)
LO = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
HI = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())


@functools.cache
def transitions(key: str) -> tuple[int, ...]:
    """Instants (POSIX seconds) where the zone's UTC offset changes between LO and HI."""
    tz = ZoneInfo(key)

    def offset(ts: int) -> timedelta | None:
        return datetime.fromtimestamp(ts, tz).utcoffset()

    found = []
    for day_ts in range(LO, HI, 86400):
        if offset(day_ts) != offset(day_ts + 86400):
            lo, hi = day_ts, day_ts + 86400
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            found.append(hi)
    return tuple(found)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    minute = st.one_of(st.integers(0, 1439), st.sampled_from([0, 30, 60, 90, 120, 150, 180, 1380, 1410]))
    start, end = draw(minute), draw(minute)
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return Schedule(tz, start, end, days)


@st.composite
def instant_near_transitions(draw: st.DrawFn, tz: ZoneInfo) -> datetime:
    near = transitions(tz.key)
    if near and draw(st.booleans()):
        ts = draw(st.sampled_from(near)) + draw(st.integers(-2 * 86400, 2 * 86400))
    else:
        ts = draw(st.integers(LO + 3 * 86400, HI - 20 * 86400))
    return datetime.fromtimestamp(ts, UTC) + timedelta(microseconds=draw(st.integers(0, 999_999)))


@st.composite
def schedule_and_instant(draw: st.DrawFn) -> tuple[Schedule, datetime]:
    s = draw(schedules())
    return s, draw(instant_near_transitions(s.tz))


# --- forecasts (tests/unit/test_forecast.py) ---------------------------------------------------------


@attrs.frozen
class Held:
    """Participants of one account as the database holds them: at ``step``, due at ``due``, ``sent``
    before or never."""

    step: int
    due: datetime
    sent: bool


@attrs.frozen
class AccountCase:
    policy: AccountPolicy
    last_start: datetime | None
    starts: tuple[datetime, ...]  # sends counting toward today's cap, sorted
    participants: tuple[Held, ...]


@attrs.frozen
class ForecastCase:
    now: datetime
    plan: CampaignPlan
    accounts: tuple[AccountCase, ...]


def _step(i: int, trigger: str, hours: int, minutes: int, hidden: bool) -> Step:
    return Step(
        id=uuid.UUID(int=i + 1),
        order_index=i,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        trigger_type=trigger,
        delay_hours=hours,
        delay_minutes=minutes,
        is_hidden=hidden,
        template_id=uuid.UUID(int=100 + i),
    )


@st.composite
def working_windows(draw: st.DrawFn) -> Schedule:
    """A working window of 2 to 14 hours on at least three days a week."""
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    start = draw(st.integers(0, 47)) * 30
    length = draw(st.integers(4, 28)) * 30
    days = draw(st.frozensets(st.integers(0, 6), min_size=3))
    return Schedule(tz, start, (start + length) % MINUTES_PER_DAY, days)


@st.composite
def ramps(draw: st.DrawFn, now: datetime) -> Ramp:
    """A new account's ramp-up, started up to a week ago or starting in a few days."""
    return Ramp(
        start_per_day=draw(st.integers(1, 3)),
        increase_per_day=draw(st.integers(0, 2)),
        max_per_day=draw(st.integers(3, 10)),
        started_on=(now + timedelta(days=draw(st.integers(-7, 3)))).date(),
    )


@st.composite
def forecast_cases(draw: st.DrawFn, *, max_accounts: int = 3, max_participants: int = 8) -> ForecastCase:
    """A campaign part-way (or not started) on 1–3 accounts with their own rules and history: 1–3 steps
    (delays from none to three days, maybe a reply-triggered or hidden one after the first), a fixed or
    ranged gap, maybe a window and a daily target; each account a cap, zone, hours, floor, today's sends,
    a last start, maybe a block and a ramp-up; its participants never sent (spread as enrolment spreads
    them) or part-way."""
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
        days=draw(st.integers(0, 364)), minutes=draw(st.integers(0, 24 * 60 - 1))
    )
    count = draw(st.integers(1, 3))
    steps = [
        _step(
            i,
            AFTER_REPLY if i and draw(st.integers(0, 5)) == 0 else DELAY,
            draw(st.sampled_from([0, 0, 1, 6, 24, 72])) if i else draw(st.sampled_from([0, 0, 1])),
            draw(st.sampled_from([0, 0, 30])),
            bool(i) and draw(st.integers(0, 6)) == 0,
        )
        for i in range(count)
    ]
    if draw(st.booleans()):
        gap_min = gap_max = float(draw(st.sampled_from([30, 120, 600, 1800])))
    else:
        gap_min = float(draw(st.sampled_from([60, 300])))
        gap_max = gap_min + float(draw(st.sampled_from([60, 600])))
    plan = CampaignPlan(
        id=uuid.UUID(int=7),
        organization_id=uuid.UUID(int=8),
        owner_id=None,
        steps=tuple(steps),
        templates={s.template_id: parse("Hi") for s in steps},
        schedule=draw(st.none() | working_windows()),
        gap_min_s=gap_min,
        gap_max_s=gap_max,
        daily_target=draw(st.none() | st.sampled_from([2, 10])),
        reply_wait=timedelta(hours=24),
        pipeline_id=None,
        lead_settings={},
    )
    accounts = []
    for _ in range(draw(st.integers(1, max_accounts))):
        policy = AccountPolicy(
            timezone=draw(st.none() | st.sampled_from(ZONES).map(ZoneInfo)),
            schedule=draw(st.none() | working_windows()),
            daily_cap=draw(st.sampled_from([0, 3, 5, 20])),
            floor_s=float(draw(st.sampled_from([0, 60, 360]))),
            margin_s=0.02,
            blocked_until=draw(
                st.none() | st.integers(1, 5 * 3600).map(lambda s: now + timedelta(seconds=s))
            ),
            ramp=draw(st.none() | ramps(now)),
        )
        day = previous_local_midnight(policy.day_zone(plan), now)
        room = int((now - day).total_seconds())
        today = sorted(
            day + timedelta(seconds=s)
            for s in draw(st.lists(st.integers(0, max(0, room - 1)), max_size=4 if room > 1 else 0))
        )
        last = draw(st.none() | st.integers(1, 3600).map(lambda s: now - timedelta(seconds=s)))
        if today and (last is None or last < today[-1]):
            last = today[-1]
        fresh = draw(st.integers(0, max_participants))
        rng = random.Random(draw(st.integers(0, 2**32)))
        start = now + timedelta(hours=draw(st.sampled_from([0, 0, 2])))
        dues = (
            policy.spread(plan, start, fresh, sent_today=len(today), rng=rng)
            if draw(st.booleans())
            else [now] * fresh
        )
        held = [Held(0, due, False) for due in dues]
        for _ in range(draw(st.integers(0, max_participants // 2))):
            step = draw(st.integers(0, count - 1))
            if steps[step].is_hidden or steps[step].trigger_type == AFTER_REPLY:
                continue
            due = now + timedelta(minutes=draw(st.integers(-120, 3 * 24 * 60)))
            held.append(Held(step, due, True))
        accounts.append(AccountCase(policy, last, tuple(today), tuple(held)))
    return ForecastCase(now, plan, tuple(accounts))
