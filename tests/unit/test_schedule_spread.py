from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignsvc.domain.schedule import (
    Schedule,
    is_open,
    local_day,
    next_local_midnight,
    next_open,
    spread,
)
from tests.unit.strategies import ZONES, instant_near_transitions, schedules

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")
MON = (2025, 6, 2)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def run(start, count, *, gap_s=60.0, daily_cap=0, sent_today=0, schedule=None, day_tz=UTC_ZONE, jitter_s=0.0):
    return spread(
        start,
        count,
        gap_s=gap_s,
        daily_cap=daily_cap,
        sent_today=sent_today,
        schedule=schedule,
        day_tz=day_tz,
        rng=random.Random(7),
        jitter_s=jitter_s,
    )


def test_spread__no_schedule_no_cap_is_start_plus_gaps():
    assert run(utc(*MON, 10, 0), 4, gap_s=90) == [
        utc(*MON, 10, 0),
        utc(*MON, 10, 1, 30),
        utc(*MON, 10, 3),
        utc(*MON, 10, 4, 30),
    ]


def test_spread__zero_count_is_empty():
    assert run(utc(*MON, 10, 0), 0) == []


@pytest.mark.parametrize("bad", [{"gap_s": -1}, {"daily_cap": -1}, {"sent_today": -1}, {"jitter_s": -0.5}])
def test_spread__rejects_negative_arguments(bad):
    with pytest.raises(ValueError):
        run(utc(*MON, 10, 0), 3, **bad)
    with pytest.raises(ValueError):
        run(utc(*MON, 10, 0), -1)


def test_spread__start_outside_the_window_waits_for_its_start():
    s = Schedule(BERLIN, 9 * 60, 17 * 60, frozenset({1, 2, 3, 4, 5}))
    assert run(berlin(*MON, 6, 0), 2, gap_s=60, schedule=s) == [berlin(*MON, 9, 0), berlin(*MON, 9, 1)]


def test_spread__slots_past_the_window_end_move_to_the_next_window_start():
    s = Schedule(BERLIN, 9 * 60, 9 * 60 + 5, frozenset({1, 2}))  # Mon and Tue, 09:00–09:05
    assert run(berlin(*MON, 9, 0), 6, gap_s=120, schedule=s) == [
        berlin(*MON, 9, 0),
        berlin(*MON, 9, 2),
        berlin(*MON, 9, 4),
        berlin(2025, 6, 3, 9, 0),
        berlin(2025, 6, 3, 9, 2),
        berlin(2025, 6, 3, 9, 4),
    ]
    assert run(berlin(*MON, 9, 0), 7, gap_s=120, schedule=s)[-1] == berlin(2025, 6, 9, 9, 0)


def test_spread__daily_cap_counts_what_was_sent_today_and_overflows_to_next_local_midnight():
    slots = run(utc(*MON, 10, 0), 5, gap_s=60, daily_cap=3, sent_today=1, day_tz=BERLIN)
    assert slots == [
        utc(*MON, 10, 0),
        utc(*MON, 10, 1),
        berlin(2025, 6, 3, 0, 0),
        berlin(2025, 6, 3, 0, 1),
        berlin(2025, 6, 3, 0, 2),
    ]


def test_spread__cap_already_used_today_starts_tomorrow():
    assert run(utc(*MON, 10, 0), 1, daily_cap=20, sent_today=25, day_tz=BERLIN) == [berlin(2025, 6, 3)]


def test_spread__cap_overflow_goes_to_the_next_days_window_start():
    s = Schedule(BERLIN, 9 * 60, 17 * 60, frozenset({1, 2, 3, 4, 5}))
    slots = run(berlin(2025, 6, 6, 16, 0), 4, gap_s=600, daily_cap=2, schedule=s, day_tz=BERLIN)
    assert slots == [
        berlin(2025, 6, 6, 16, 0),  # Friday
        berlin(2025, 6, 6, 16, 10),
        berlin(2025, 6, 9, 9, 0),  # Monday
        berlin(2025, 6, 9, 9, 10),
    ]


def test_spread__days_are_counted_in_day_tz_not_the_schedule_zone():
    s = Schedule(NEW_YORK, 18 * 60, 23 * 60, frozenset(range(7)))  # 22:00–03:00 UTC in June
    slots = run(utc(*MON, 22, 0), 6, gap_s=600, daily_cap=2, schedule=s, day_tz=UTC_ZONE)
    assert slots == [
        utc(*MON, 22, 0),
        utc(*MON, 22, 10),
        utc(2025, 6, 3, 0, 0),  # UTC midnight, 20:00 in New York: inside the window
        utc(2025, 6, 3, 0, 10),
        utc(2025, 6, 4, 0, 0),
        utc(2025, 6, 4, 0, 10),
    ]


def test_spread__no_cap_when_daily_cap_is_zero():
    slots = run(utc(*MON, 23, 0), 200, gap_s=60, daily_cap=0, sent_today=500)
    assert slots[-1] == utc(*MON, 23, 0) + timedelta(minutes=199)


def test_spread__moved_slots_get_jitter_inside_the_window():
    s = Schedule(BERLIN, 9 * 60, 17 * 60, frozenset(range(7)))
    slots = run(berlin(*MON, 20, 0), 3, gap_s=60, schedule=s, jitter_s=300)
    assert berlin(2025, 6, 3, 9, 0) <= slots[0] < berlin(2025, 6, 3, 9, 5)
    assert slots[1] - slots[0] == timedelta(seconds=60)  # only moved slots are jittered


def test_spread__gap_is_a_minimum_when_the_start_is_open():
    slots = run(utc(*MON, 10, 0), 3, gap_s=0)
    assert slots == [utc(*MON, 10, 0)] * 3


def test_spread__a_hundred_thousand_slots_in_one_pass():
    s = Schedule(BERLIN, 9 * 60 + 30, 18 * 60 + 30, frozenset({1, 2, 3, 4, 5}))
    slots = spread(
        utc(*MON, 0, 0),
        100_000,
        gap_s=90,
        daily_cap=300,
        sent_today=0,
        schedule=s,
        day_tz=BERLIN,
        rng=random.Random(1),
        jitter_s=120,
    )
    assert len(slots) == 100_000
    per_day = Counter(local_day(BERLIN, t) for t in slots)
    assert max(per_day.values()) == 300
    assert all(b - a >= timedelta(seconds=90) for a, b in zip(slots[-1000:], slots[-999:], strict=False))


# --- properties ------------------------------------------------------------------------------------


def first_allowed(schedule, day_tz, daily_cap, counts, t):
    """The first instant at or after ``t`` that is open and on a day with room."""
    while True:
        t = next_open(schedule, t)
        if daily_cap and counts[local_day(day_tz, t)] >= daily_cap:
            t = next_local_midnight(day_tz, t)
            continue
        return t


@st.composite
def spread_cases(draw):
    schedule = draw(st.one_of(st.none(), schedules()))
    day_tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    start = draw(instant_near_transitions(schedule.tz if schedule else day_tz))
    return {
        "start": start,
        "count": draw(st.integers(0, 40)),
        "gap_s": draw(st.sampled_from([0, 1, 59.5, 60, 360, 3600, 5 * 3600, 30 * 3600])),
        "daily_cap": draw(st.integers(0, 6)),
        "sent_today": draw(st.integers(0, 8)),
        "schedule": schedule,
        "day_tz": day_tz,
        "jitter_s": draw(st.sampled_from([0, 0, 1, 300, 7200])),
        "seed": draw(st.integers(0, 2**32)),
    }


@settings(max_examples=200, deadline=None)
@given(spread_cases())
def test_spread__each_slot_is_the_first_allowed_instant_after_the_gap_plus_jitter(case):
    seed = case.pop("seed")
    slots = spread(**case, rng=random.Random(seed))
    start, gap = case["start"], timedelta(seconds=case["gap_s"])
    schedule, day_tz, cap = case["schedule"], case["day_tz"], case["daily_cap"]
    jitter = timedelta(seconds=case["jitter_s"])
    assert len(slots) == case["count"]
    counts = Counter({local_day(day_tz, start): case["sent_today"]})
    for i, t in enumerate(slots):
        candidate = start if i == 0 else slots[i - 1] + gap
        allowed = first_allowed(schedule, day_tz, cap, counts, candidate)
        if allowed == candidate:
            assert t == candidate  # not moved: exactly at the gap
        else:
            assert allowed <= t <= allowed + jitter  # moved: to the next allowed instant, plus jitter
        assert is_open(schedule, t)
        if cap:
            assert counts[local_day(day_tz, t)] < cap
        counts[local_day(day_tz, t)] += 1
        assert t.tzinfo is UTC
