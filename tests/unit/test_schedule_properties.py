"""Schedule functions checked against each other and against a wall-clock oracle, on random schedules,
zones and instants — many of them within a couple of days of a DST transition."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from campaignsvc.domain.schedule import Schedule, is_open, next_open, place, window_end
from tests.unit.strategies import US, schedule_and_instant, transitions


def oracle_is_open(s: Schedule, at: datetime) -> bool:
    """Plain wall-clock reading of the rules; exact when no offset change is near."""
    wall = at.astimezone(s.tz)
    second = wall.hour * 3600 + wall.minute * 60 + wall.second + wall.microsecond / 1e6
    today = wall.date().isoweekday() % 7 in s.days
    yesterday = (wall.date() - timedelta(days=1)).isoweekday() % 7 in s.days
    start, end = s.start_min * 60, s.end_min * 60
    if start == end:
        return today
    if start < end:
        return today and start <= second < end
    return (today and second >= start) or (yesterday and second < end)


def no_offset_change_near(tz: ZoneInfo, at: datetime) -> bool:
    ts = at.timestamp()
    return not any(abs(t - ts) < 2 * 86400 for t in transitions(tz.key))


@settings(max_examples=200, deadline=None)
@given(schedule_and_instant())
def test_is_open__matches_the_wall_clock_rules_away_from_dst(case):
    s, at = case
    if no_offset_change_near(s.tz, at):
        assert is_open(s, at) == oracle_is_open(s, at)


@settings(max_examples=200, deadline=None)
@given(schedule_and_instant(), st.lists(st.floats(0, 1), max_size=8))
def test_next_open__is_the_first_open_instant(case, fractions):
    s, at = case
    n = next_open(s, at)
    assert n >= at
    assert is_open(s, n)
    if n > at:
        assert not is_open(s, at)
        assert not is_open(s, n - US)
        for f in fractions:
            probe = at + (n - at) * f
            assert probe >= n or not is_open(s, probe)
        assert n.astimezone(s.tz).date().isoweekday() % 7 in s.days  # windows start on listed days
        # The exact start: the start wall time, or the end of a DST gap it fell into (or midnight).
        wall = n.astimezone(s.tz)
        start_min = s.start_min if s.start_min != s.end_min else 0
        at_wall_start = (wall.hour * 60 + wall.minute, wall.second, wall.microsecond) == (start_min, 0, 0)
        after_gap = (n - timedelta(seconds=1)).astimezone(s.tz).utcoffset() != wall.utcoffset()
        assert at_wall_start or after_gap


@settings(max_examples=200, deadline=None)
@given(schedule_and_instant())
def test_window_end__is_where_the_window_closes(case):
    s, at = case
    n = next_open(s, at)
    end = window_end(s, at)
    if s.always_open:
        assert end is None
        return
    assert end is not None and end > n
    assert window_end(s, n) == end
    assert is_open(s, end - US)
    assert not is_open(s, end)
    assert next_open(s, end) > end


@settings(max_examples=200, deadline=None)
@given(schedule_and_instant(), st.integers(0, 2**32), st.floats(0, 3 * 86400))
def test_place__lands_inside_the_window_within_the_jitter(case, seed, jitter_s):
    s, at = case
    placed = place(s, at, random.Random(seed), jitter_s)
    assert is_open(s, placed)
    if is_open(s, at):
        assert placed == at
    else:
        start = next_open(s, at)
        assert start <= placed <= start + timedelta(seconds=jitter_s)
        end = window_end(s, start)
        assert end is None or placed < end
