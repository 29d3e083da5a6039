"""Ramp-up of a new account (domain.pacing.Ramp through AccountPolicy): the budget per local day of the
account's zone (across a DST change and at its midnight, not UTC's), maxPerDay, the step-down and its
cool-off, accounts without a ramp unchanged; the waiting code ``ramp_up``; and, on trio's virtual clock with
the real AccountLimiter, the sends per local day it lets through."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import random

import attrs

from campaignsvc.actors.accounts import account_policy, account_ramp, ramp_steps_down, stepped_down
from campaignsvc.config import Settings
from campaignsvc.domain import pacing
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.pacing import AccountPolicy, Defer, Ramp, Start, StepDown
from campaignsvc.domain.waiting import Account, Code, Participant, explain
from tests.unit.test_limiter import BERLIN, JITTER, NEW_YORK, TOKYO, World, make_plan, open_settings, utc

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
PLAN = make_plan({"sendDelaySeconds": 60})


def ramp(
    start: int = 2, inc: int = 1, top: int = 10, on: dt.date = dt.date(2026, 3, 7), **kw: object
) -> Ramp:
    return Ramp(start, inc, top, on, **kw)  # type: ignore[arg-type]


def local(zone: dt.tzinfo, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone).astimezone(dt.UTC)


# --- the budget per local day -----------------------------------------------------------------------


def test_budget__counts_calendar_days_of_the_accounts_zone_across_a_dst_change():
    # New York moves to summer time at 02:00 on Sunday 2026-03-08: that day has 23 hours.
    r = ramp(start=2, inc=3, top=10, on=dt.date(2026, 3, 7))
    assert r.budget(NEW_YORK, local(NEW_YORK, 2026, 3, 7, 0, 0)) == 2
    assert r.budget(NEW_YORK, local(NEW_YORK, 2026, 3, 7, 23, 59)) == 2
    assert r.budget(NEW_YORK, local(NEW_YORK, 2026, 3, 8, 0, 0)) == 5
    assert r.budget(NEW_YORK, local(NEW_YORK, 2026, 3, 8, 23, 59)) == 5  # 23 h after its midnight
    assert r.budget(NEW_YORK, local(NEW_YORK, 2026, 3, 9, 0, 0)) == 8
    assert r.budget(NEW_YORK, local(NEW_YORK, 2026, 3, 10, 12, 0)) == 10  # 11 would pass maxPerDay
    assert r.budget(NEW_YORK, local(NEW_YORK, 2026, 4, 30, 12, 0)) == 10
    # Before its first day: the start budget.
    assert r.budget(NEW_YORK, local(NEW_YORK, 2026, 3, 1, 12, 0)) == 2


def test_budget__steps_at_the_accounts_midnight_not_utcs():
    r = ramp(start=4, inc=2, top=50, on=dt.date(2026, 6, 1))
    tokyo_midnight = utc(2026, 6, 1, 15, 0)  # 2026-06-02 00:00 in Tokyo
    assert r.budget(TOKYO, tokyo_midnight - dt.timedelta(seconds=1)) == 4
    assert r.budget(TOKYO, tokyo_midnight) == 6
    # In UTC the same instant is still June 1st.
    assert r.budget(pacing.UTC, tokyo_midnight) == 4


def test_next_step_at__is_the_next_local_midnight_in_its_zone_until_the_maximum():
    r = ramp(start=2, inc=3, top=10, on=dt.date(2026, 3, 7))
    # Midnight of March 8 is still standard time (UTC-5); that of March 9 is summer time (UTC-4).
    assert r.next_step_at(NEW_YORK, local(NEW_YORK, 2026, 3, 7, 9, 0)) == utc(2026, 3, 8, 5, 0)
    assert r.next_step_at(NEW_YORK, local(NEW_YORK, 2026, 3, 8, 9, 0)) == utc(2026, 3, 9, 4, 0)
    assert r.next_step_at(NEW_YORK, local(NEW_YORK, 2026, 3, 9, 9, 0)) == utc(2026, 3, 10, 4, 0)
    assert r.next_step_at(NEW_YORK, local(NEW_YORK, 2026, 3, 10, 9, 0)) is None  # at maxPerDay
    # A ramp that starts later steps on the day after its first.
    later = ramp(start=2, inc=1, top=10, on=dt.date(2026, 3, 20))
    assert later.next_step_at(NEW_YORK, local(NEW_YORK, 2026, 3, 9, 9, 0)) == local(
        NEW_YORK, 2026, 3, 21, 0, 0
    )
    # No increase: it never grows.
    assert ramp(start=3, inc=0, top=10).next_step_at(NEW_YORK, local(NEW_YORK, 2026, 3, 9, 9, 0)) is None


def test_max_per_day_equal_to_start__a_flat_budget():
    r = ramp(start=5, inc=4, top=5, on=dt.date(2026, 1, 1))
    assert {r.budget(BERLIN, utc(2026, 1, 1) + i * DAY) for i in range(10)} == {5}
    assert r.next_step_at(BERLIN, utc(2026, 1, 1)) is None


# --- the step-down ----------------------------------------------------------------------------------


def test_step_down__halves_todays_budget_holds_it_for_the_cool_off_then_grows_from_there():
    r = ramp(start=10, inc=5, top=100, on=dt.date(2026, 1, 1))
    now = utc(2026, 1, 5, 12, 0)  # day 4: 30
    assert r.budget(pacing.UTC, now) == 30
    lowered = r.stepped_down(pacing.UTC, now, cap=0, cool_off=72 * HOUR)
    assert lowered.step_down == StepDown(15, now, utc(2026, 1, 8, 12, 0))
    assert lowered.budget(pacing.UTC, now) == 15
    # Held for the cool-off (which ends on January 8th, midday) ...
    assert [lowered.budget(pacing.UTC, utc(2026, 1, d, 23)) for d in (5, 6, 7, 8)] == [15, 15, 15, 15]
    assert lowered.next_step_at(pacing.UTC, now) == utc(2026, 1, 9)
    # ... then growing by increasePerDay a day from 15, below the original curve, up to the maximum.
    assert [lowered.budget(pacing.UTC, utc(2026, 1, d, 1)) for d in (9, 10, 11)] == [20, 25, 30]
    assert r.budget(pacing.UTC, utc(2026, 1, 11, 1)) == 60
    assert lowered.budget(pacing.UTC, utc(2026, 3, 1)) == 100


def test_step_down__halves_the_accounts_own_cap_when_it_is_lower_and_never_goes_below_one():
    r = ramp(start=10, inc=5, top=100, on=dt.date(2026, 1, 1))
    now = utc(2026, 1, 5, 12, 0)
    assert r.stepped_down(pacing.UTC, now, cap=20, cool_off=HOUR).budget(pacing.UTC, now) == 10
    one = ramp(start=1, inc=1, top=5, on=dt.date(2026, 1, 5))
    assert one.stepped_down(pacing.UTC, now, cap=0, cool_off=HOUR).budget(pacing.UTC, now) == 1
    # A second step-down halves what the first left.
    twice = r.stepped_down(pacing.UTC, now, cap=0, cool_off=HOUR).stepped_down(
        pacing.UTC, now + HOUR, cap=0, cool_off=HOUR
    )
    assert twice.budget(pacing.UTC, now + HOUR) == 7


def test_step_down_rule__long_flood_waits_and_every_peer_flood():
    settings = Settings.from_env({}, ramp_step_down_flood_s=300)
    assert ramp_steps_down("peer_flood", 0, settings)
    assert ramp_steps_down("flood_wait", 301, settings)
    assert not ramp_steps_down("flood_wait", 300, settings)
    assert not ramp_steps_down("account", 10_000, settings)


def test_stepped_down_from_the_rows__in_the_accounts_zone_with_the_cool_off_setting():
    settings = Settings.from_env({}, ramp_cool_off_hours=48.0, max_sends_per_account_per_day=0)
    row = {
        "timezone": "Asia/Tokyo",
        "max_dm_per_day": None,
        "ramp_start_per_day": 2,
        "ramp_increase_per_day": 2,
        "ramp_max_per_day": 40,
        "ramp_started_on": dt.date(2026, 6, 1),
        "ramp_step_down_budget": None,
        "ramp_stepped_down_at": None,
        "ramp_step_down_until": None,
    }
    now = utc(2026, 6, 3, 16, 0)  # June 4th in Tokyo: 2 + 3 × 2 = 8 (June 3rd in UTC would be 6)
    lowered = stepped_down(row, settings, now)
    assert lowered == StepDown(4, now, now + 48 * HOUR)
    # Read back as the limiter reads it.
    stored = row | {
        "ramp_step_down_budget": 4,
        "ramp_stepped_down_at": now,
        "ramp_step_down_until": now + 48 * HOUR,
    }
    assert account_ramp(stored) == Ramp(2, 2, 40, dt.date(2026, 6, 1), StepDown(4, now, now + 48 * HOUR))
    assert account_ramp({"ramp_start_per_day": None}) is None
    assert stepped_down({**row, "ramp_start_per_day": None}, settings, now) is None


# --- the policy applies it everywhere ---------------------------------------------------------------


def test_no_ramp__the_cap_is_as_before_and_zero_still_means_no_cap():
    now = utc(2026, 3, 9, 12)
    capped = AccountPolicy(daily_cap=20, floor_s=0.0)
    assert capped.cap(PLAN, now) == capped.cap(PLAN) == 20
    assert capped.ramp_cap(now) is None and capped.ramp_next_step_at(now) is None
    assert not capped.ramp_binds(PLAN, now)
    free = AccountPolicy(daily_cap=0, floor_s=0.0)
    starts = [now - dt.timedelta(minutes=i) for i in range(500, 0, -1)]
    verdict = free.decide(
        PLAN, due_at=now, now=now, last_start=starts[-1], gap_s=0, starts=starts, rng=random.Random(0)
    )
    assert verdict == Start(now)
    assert free.state(now, sent_today=500) == pacing.IDLE
    assert free.next_start(now, sent_today=500) is None
    slots = free.spread(PLAN, now, 300, sent_today=0, rng=random.Random(0))
    assert slots == [now + i * dt.timedelta(seconds=60) for i in range(300)]


def test_with_a_ramp__decide_state_next_start_and_cap_use_todays_budget():
    now = local(BERLIN, 2026, 3, 9, 12, 0)
    policy = AccountPolicy(
        timezone=BERLIN, daily_cap=20, floor_s=0.0, ramp=ramp(2, 1, 10, dt.date(2026, 3, 9))
    )
    starts = [now - 2 * HOUR, now - HOUR]
    midnight = local(BERLIN, 2026, 3, 10, 0, 0)
    verdict = policy.decide(
        PLAN, due_at=now, now=now, last_start=starts[-1], gap_s=0, starts=starts, rng=random.Random(0)
    )
    assert verdict == Defer(midnight, "cap")
    assert policy.cap(PLAN, now) == 2 and policy.cap(PLAN, midnight) == 3
    assert policy.state(now, sent_today=2) == pacing.DAILY_CAP
    assert policy.state(now, sent_today=1) == pacing.IDLE
    assert policy.next_start(now, sent_today=2) == midnight
    assert policy.ramp_binds(PLAN, now)
    assert policy.ramp_cap(now) == 2 and policy.ramp_next_step_at(now) == midnight
    # The account's own cap below the ramp's budget is what binds; the lower of the two applies.
    low = attrs.evolve(policy, daily_cap=1)
    assert low.cap(PLAN, now) == 1 and not low.ramp_binds(PLAN, now)
    # With no cap of its own (0), the ramp alone.
    assert attrs.evolve(policy, daily_cap=0).cap(PLAN, now) == 2


def test_spread__each_local_day_gets_that_days_budget():
    start = local(BERLIN, 2026, 3, 9, 22, 0)
    policy = AccountPolicy(timezone=BERLIN, daily_cap=0, floor_s=0.0, ramp=ramp(2, 1, 4, dt.date(2026, 3, 9)))
    slots = policy.spread(PLAN, start, 12, sent_today=0, rng=random.Random(0))
    per_day = collections.Counter(sched.local_day(BERLIN, t) for t in slots)
    assert per_day == {
        dt.date(2026, 3, 9): 2,
        dt.date(2026, 3, 10): 3,
        dt.date(2026, 3, 11): 4,
        dt.date(2026, 3, 12): 3,  # at maxPerDay 4; 12 slots in all
    }
    assert slots == sorted(slots) and len(slots) == 12
    # Sends already made today count against its budget; each later day starts at its midnight (plus
    # the window jitter).
    slots = policy.spread(PLAN, start, 4, sent_today=1, rng=random.Random(0))
    assert slots[0] == start
    midnight = local(BERLIN, 2026, 3, 10, 0, 0)
    assert midnight <= slots[1] <= midnight + JITTER
    assert all(b - a >= dt.timedelta(seconds=60) for a, b in itertools.pairwise(slots))


def test_the_policy_from_the_account_row_carries_the_ramp():
    settings = Settings.from_env({}, max_sends_per_account_per_day=20)
    row = {
        "timezone": "Europe/Berlin",
        "max_dm_per_day": None,
        "ramp_start_per_day": 3,
        "ramp_increase_per_day": 2,
        "ramp_max_per_day": 9,
        "ramp_started_on": dt.date(2026, 3, 9),
    }
    now = local(BERLIN, 2026, 3, 10, 12, 0)
    assert account_policy(row, settings, now).cap(PLAN, now) == 5
    without = {k: v for k, v in row.items() if not k.startswith("ramp_")}
    assert account_policy(without, settings, now).ramp is None
    assert account_policy(without, settings, now, ramp=row).cap(PLAN, now) == 5


# --- the waiting code -------------------------------------------------------------------------------


def test_waiting__held_by_the_ramp_is_ramp_up_held_by_the_own_cap_is_daily_cap():
    now = local(BERLIN, 2026, 3, 9, 12, 0)
    starts = [now - 2 * HOUR, now - HOUR]
    due = Participant(status="pending", next_send_at=now, waiting_reason=None, current_step=0)
    ramped = AccountPolicy(
        timezone=BERLIN, daily_cap=20, floor_s=0.0, ramp=ramp(2, 1, 10, dt.date(2026, 3, 9))
    )
    wait = explain(
        due, plan=PLAN, campaign_status="active", account=Account("Anna", ramped, starts[-1], starts), now=now
    )
    assert wait is not None and wait.code == Code.RAMP_UP
    assert wait.until == local(BERLIN, 2026, 3, 10, 0, 0)
    assert wait.message == (
        "Ramp-up of Anna: 2/day today (3 tomorrow) reached — next send after 2026-03-10 00:00 Europe/Berlin"
    )
    # The account's own cap of 2 binds as much as the ramp: daily_cap, as without a ramp.
    own = attrs.evolve(ramped, daily_cap=2)
    wait = explain(
        due, plan=PLAN, campaign_status="active", account=Account("Anna", own, starts[-1], starts), now=now
    )
    assert wait is not None and wait.code == Code.DAILY_CAP
    # Handed back by the limiter (stored reason "cap", next send at midnight): ramp_up too.
    deferred = attrs.evolve(due, next_send_at=local(BERLIN, 2026, 3, 10, 0, 0), waiting_reason="cap")
    wait = explain(
        deferred,
        plan=PLAN,
        campaign_status="active",
        account=Account("Anna", ramped, starts[-1], starts),
        now=now,
    )
    assert wait is not None and wait.code == Code.RAMP_UP
    assert wait.message.endswith("next send at 2026-03-10 00:00 Europe/Berlin")
    wait = explain(
        deferred,
        plan=PLAN,
        campaign_status="active",
        account=Account("Anna", own, starts[-1], starts),
        now=now,
    )
    assert wait is not None and wait.code == Code.DAILY_CAP


# --- the live limiter on the virtual clock ----------------------------------------------------------


async def test_limiter__a_ramp_of_two_plus_one_sends_two_on_day_zero_and_three_on_day_one(autojump_clock):
    origin = local(BERLIN, 2026, 3, 9, 9, 0)
    world = World(origin)
    limiter = world.account(
        open_settings(timezone=BERLIN, daily_cap=20, ramp=ramp(2, 1, 10, dt.date(2026, 3, 9)))
    )
    world.campaign(make_plan({"sendDelaySeconds": 600}), [limiter])  # endless participants
    day_two = local(BERLIN, 2026, 3, 11, 0, 0)
    async with world.running():
        await world.until(origin + HOUR)
        snapshot = limiter.snapshot()
        assert limiter.state == "daily_cap"
        assert snapshot["rampCap"] == 2
        assert snapshot["rampNextStepAt"] == local(BERLIN, 2026, 3, 10, 0, 0)
        await world.until(day_two - dt.timedelta(seconds=1))
        assert limiter.snapshot()["rampCap"] == 3
    per_day = collections.Counter(sched.local_day(BERLIN, t) for t in world.starts(limiter))
    assert per_day == {dt.date(2026, 3, 9): 2, dt.date(2026, 3, 10): 3}
    assert {d.reason for d in world.deferrals} == {"cap"}
