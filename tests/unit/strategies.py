"""Hypothesis strategies shared by the schedule tests."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from campaignsvc.domain.schedule import Schedule

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
