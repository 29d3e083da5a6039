"""One pacing policy (domain.pacing): the spread enrolment writes, the limiter's decision and the views
agree on every generated case."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignsvc.domain import pacing
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy, Defer, Start
from tests.unit.strategies import ZONES, instant_near_transitions, schedules
from tests.unit.test_limiter import make_plan

HOUR = dt.timedelta(hours=1)


@st.composite
def policies(draw: st.DrawFn) -> AccountPolicy:
    zone = draw(st.one_of(st.none(), st.sampled_from(ZONES).map(ZoneInfo)))
    return AccountPolicy(
        timezone=zone,
        schedule=draw(st.one_of(st.none(), schedules())),
        daily_cap=draw(st.integers(0, 6)),
        floor_s=draw(st.sampled_from([0.0, 30.0, 360.0])),
        margin_s=draw(st.sampled_from([0.0, 0.02])),
    )


@st.composite
def plans(draw: st.DrawFn) -> CampaignPlan:
    gap = draw(st.sampled_from([0, 1, 60, 600, 3600]))
    return make_plan(
        {"sendDelaySeconds": gap},
        schedule=draw(st.one_of(st.none(), schedules())),
        daily_target=draw(st.one_of(st.none(), st.integers(1, 6))),
    )


@settings(max_examples=300, deadline=None)
@given(policy=policies(), plan=plans(), data=st.data())
def test_spread_slots__are_starts_the_limiter_takes_as_they_are(policy, plan, data):
    """Each first send enrolment spreads, offered to the limiter at its due time with the sends before it
    done, starts exactly then: the two apply the same gap, margin, window and cap."""
    zone = policy.day_zone(plan)
    start = data.draw(instant_near_transitions(zone))
    cap = policy.cap(plan)
    used = data.draw(st.integers(0, max(0, cap - 1))) if cap else 0
    count = data.draw(st.integers(1, 12))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    slots = policy.spread(plan, start, count, sent_today=used, rng=rng)
    # The sends already used today happened at the day's first instant.
    starts = [pacing.day_start(zone, start)] * used
    last = None
    gap = policy.gap(plan, rng)  # one value: the campaign's range is a single gap
    for slot in slots:
        verdict = policy.decide(
            plan, due_at=slot, now=slot, last_start=last, gap_s=gap, starts=starts, rng=rng
        )
        assert verdict == Start(slot), (slot, verdict)
        starts.append(slot)
        last = slot


@settings(max_examples=300, deadline=None)
@given(policy=policies(), plan=plans(), data=st.data())
def test_the_view__says_what_the_limiter_does(policy, plan, data):
    """For a campaign without its own window or target, the account's state and next start (the
    throttle view) are what the limiter's decision does with a send due now."""
    plan = make_plan({"sendDelaySeconds": int(plan.gap_min_s)})  # no campaign window, no target
    zone = policy.day_zone(plan)
    now = data.draw(instant_near_transitions(zone))
    sent = data.draw(st.integers(0, 8))
    midnight = pacing.day_start(zone, now)
    starts = [midnight + (now - midnight) * (i / 10) for i in range(sent)]  # sorted, all today
    last = data.draw(st.one_of(st.none(), st.just(now - dt.timedelta(seconds=30))))
    gap = policy.gap(plan, random.Random(0))
    blocked = data.draw(st.one_of(st.none(), st.just(now + HOUR)))
    restricted = data.draw(st.booleans())
    policy = attrs.evolve(policy, blocked_until=blocked, restricted=restricted, schedule=None)
    today = pacing.sent_since(starts, pacing.day_start(zone, now))
    state = policy.state(now, sent_today=today)
    expected = policy.next_start(now, sent_today=today, last_start=last, gap_s=gap)
    if restricted:
        assert state == pacing.RESTRICTED and policy.hold(now) == pacing.Hold(pacing.RESTRICTED, None)
        return
    if blocked is not None:
        assert state == pacing.FLOOD_BLOCKED and policy.hold(now) == pacing.Hold(
            pacing.FLOOD_BLOCKED, blocked
        )
        assert expected is not None and expected >= blocked
        return
    assert policy.hold(now) is None
    verdict = policy.decide(
        plan, due_at=now, now=now, last_start=last, gap_s=gap, starts=starts, rng=random.Random(0)
    )
    if state == pacing.DAILY_CAP:
        assert isinstance(verdict, Defer) and verdict.reason == "cap"
        # Offered again at the next local midnight; the view's next start is that or the gap's end.
        assert verdict.until == sched.next_local_midnight(zone, now)
        after = policy.after_gap(last, gap)
        assert expected == max(verdict.until, after or verdict.until)
    else:
        assert state == pacing.IDLE
        assert verdict == Start(expected or now)


def test_day_start__is_where_the_day_begins_even_when_midnight_does_not_exist():
    santiago = ZoneInfo("America/Santiago")  # clocks jump 00:00 -> 01:00 on 2024-09-08
    at = dt.datetime(2024, 9, 8, 15, 0, tzinfo=dt.UTC)
    begins = pacing.day_start(santiago, at)
    assert begins.astimezone(santiago).replace(tzinfo=None) == dt.datetime(2024, 9, 8, 1, 0)
    assert sched.next_local_midnight(santiago, begins - dt.timedelta(microseconds=1)) == begins
