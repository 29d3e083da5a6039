"""Working windows (SPEC R-SEQ-4) and the placement of sends inside them.

A schedule is a daily window in wall-clock time of an IANA zone, on chosen days of the week. A window
belongs to the day it starts: Friday 22:00–06:00 runs from Friday 22:00 to Saturday 06:00, and is open
only if Friday is one of the days. ``start == end`` opens the whole day (local midnight to midnight).

Wall-clock times become instants as follows, so DST never produces a wrong or looping answer:

- a time that does not exist (spring-forward gap) is the first instant after it: 02:30 on a day the
  clocks jump 02:00 → 03:00 is 03:00;
- a time that happens twice (fall-back) is its first occurrence;
- a window that resolves to nothing (02:00–02:30 inside a gap) is closed that day.

Every function takes and returns aware datetimes; results are in UTC. Nothing here reads the clock.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from campaignsvc.domain.validation import DomainInputError, FieldError, is_int, join, parse_zone

MINUTES_PER_DAY = 24 * 60
_ONE_DAY = timedelta(days=1)
_EPSILON = timedelta(microseconds=1)
# Days of windows examined when looking for the next one. Days are never empty, so an open window
# exists within 7 days, unless DST erases that day's only window (then the next week's).
_SEARCH_DAYS = 16


class ScheduleError(DomainInputError):
    """A schedule value is present but invalid (bad ``HH:MM``, unknown zone, day outside 0..6)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    def field_errors(self) -> list[FieldError]:
        return [FieldError(self.path, self.message)]


def _check_minute(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not is_int(value) or not 0 <= value < MINUTES_PER_DAY:
        raise ValueError(f"{attribute.name} must be a minute of the day (0..1439), got {value!r}")


def _check_days(_: object, __: object, value: frozenset[int]) -> None:
    if not value or not value <= frozenset(range(7)):
        raise ValueError(f"days must be a non-empty subset of 0..6, got {sorted(value)!r}")


def _day_set(days: Iterable[int]) -> frozenset[int]:
    return frozenset(days)


@attrs.frozen
class Schedule:
    """``start_min``/``end_min`` count minutes from local midnight; ``days`` are 0=Sunday..6=Saturday."""

    tz: ZoneInfo
    start_min: int = attrs.field(validator=_check_minute)
    end_min: int = attrs.field(validator=_check_minute)
    days: frozenset[int] = attrs.field(converter=_day_set, validator=_check_days)

    @property
    def always_open(self) -> bool:
        return self.start_min == self.end_min and len(self.days) == 7

    @classmethod
    def from_json(cls, obj: Any, *, path: str = "schedule") -> Schedule | None:
        """The campaign's ``schedule`` column/body field. None when it is absent or incomplete (no start,
        no end, or no days: no restriction, as the original). Raises ScheduleError for a value that is
        present but invalid."""
        schedule, errors = _parse_json(obj, path)
        if errors:
            raise ScheduleError(errors[0].path, errors[0].message)
        return schedule

    @classmethod
    def from_account(
        cls,
        timezone: str | None,
        working_hours_start: str | None,
        working_hours_end: str | None,
        working_days: Sequence[int] | None,
        *,
        path: str = "bd_account",
    ) -> Schedule | None:
        """The BD account's own working hours (``bd_accounts`` columns); None when incomplete. Raises
        ScheduleError for a stored value that is invalid, so the caller can log it and decide."""
        obj = {
            "timezone": timezone,
            "workingHours": {"start": working_hours_start, "end": working_hours_end},
            "daysOfWeek": list(working_days) if working_days is not None else None,
        }
        return cls.from_json(obj, path=path)

    def to_json(self) -> dict[str, Any]:
        return {
            "timezone": self.tz.key,
            "workingHours": {"start": _fmt_hhmm(self.start_min), "end": _fmt_hhmm(self.end_min)},
            "daysOfWeek": sorted(self.days),
        }


def validate_schedule_json(obj: Any, *, path: str = "schedule") -> list[FieldError]:
    """Every problem of a ``schedule`` body field; empty when it is valid (complete or not)."""
    return _parse_json(obj, path)[1]


# --- parsing ---------------------------------------------------------------------------------------

_HHMM_RE = re.compile(r"(\d{1,2}):(\d{2})")


def _fmt_hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _parse_hhmm(value: Any, path: str, *, is_end: bool, errors: list[FieldError]) -> int | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 16:
        errors.append(FieldError(path, 'must be a time "HH:MM"'))
        return None
    m = _HHMM_RE.fullmatch(value.strip())
    hour, minute = (int(m.group(1)), int(m.group(2))) if m else (-1, -1)
    if is_end and (hour, minute) == (24, 0):
        return 0  # "24:00" ends at the next midnight, which is how an end of 0 is read.
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        allowed = "00:00..23:59 or 24:00" if is_end else "00:00..23:59"
        errors.append(FieldError(path, f'must be a time "HH:MM" ({allowed}), got {value[:16]!r}'))
        return None
    return hour * 60 + minute


def _parse_json(obj: Any, path: str) -> tuple[Schedule | None, list[FieldError]]:
    errors: list[FieldError] = []
    if obj is None:
        return None, errors
    if not isinstance(obj, Mapping):
        return None, [FieldError(path, "must be an object or null")]

    tz: ZoneInfo | None = ZoneInfo("UTC")
    raw_tz = obj.get("timezone")
    if raw_tz is not None and raw_tz != "":
        tz = parse_zone(raw_tz) if isinstance(raw_tz, str) and len(raw_tz) <= 64 else None
        if tz is None:
            shown = repr(raw_tz[:64]) if isinstance(raw_tz, str) else "a non-string"
            errors.append(FieldError(join(path, "timezone"), f"must be an IANA time zone, got {shown}"))

    start = end = None
    hours = obj.get("workingHours")
    if hours is not None:
        hours_path = join(path, "workingHours")
        if isinstance(hours, Mapping):
            start = _parse_hhmm(hours.get("start"), join(hours_path, "start"), is_end=False, errors=errors)
            end = _parse_hhmm(hours.get("end"), join(hours_path, "end"), is_end=True, errors=errors)
        else:
            errors.append(FieldError(hours_path, "must be an object {start, end}"))

    days: set[int] = set()
    raw_days = obj.get("daysOfWeek")
    if raw_days is not None:
        days_path = join(path, "daysOfWeek")
        if isinstance(raw_days, list | tuple):
            for i, day in enumerate(raw_days):
                if is_int(day) and 0 <= day <= 6:
                    days.add(day)
                else:
                    errors.append(FieldError(join(days_path, i), "must be a day 0..6 (0 = Sunday)"))
        else:
            errors.append(FieldError(days_path, "must be a list of days 0..6 (0 = Sunday)"))

    if errors or tz is None or start is None or end is None or not days:
        return None, errors
    return Schedule(tz, start, end, frozenset(days)), errors


# --- wall clock → instants --------------------------------------------------------------------------


def _weekday(d: date) -> int:
    return d.isoweekday() % 7  # 0 = Sunday


@functools.lru_cache(maxsize=16384)
def _resolve(tz: ZoneInfo, d: date, minute: int) -> datetime:
    """The instant (UTC) of wall-clock ``d`` + ``minute`` in ``tz``: the first occurrence when it is
    ambiguous, the first instant after it when it does not exist."""
    wall = datetime(d.year, d.month, d.day, minute // 60, minute % 60)
    first = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0: offset before a transition
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap: the transition lies in (wall - offset after, wall - offset before]; it is the first
    # instant whose wall clock is at or past ``wall``. Offsets change on whole seconds.
    lo = int(wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    hi = int(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


@functools.lru_cache(maxsize=16384)
def _window_on(schedule: Schedule, d: date) -> tuple[datetime, datetime] | None:
    """The window that starts on local day ``d``, if any."""
    if _weekday(d) not in schedule.days:
        return None
    tz, start_min, end_min = schedule.tz, schedule.start_min, schedule.end_min
    start = _resolve(tz, d, start_min if start_min != end_min else 0)
    if start_min < end_min:
        end = _resolve(tz, d, end_min)
    else:
        end = _resolve(tz, d + _ONE_DAY, end_min if start_min != end_min else 0)
    return (start, end) if start < end else None


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"an aware datetime is required, got {at!r}")
    return at.astimezone(UTC)


def _window_after(schedule: Schedule, at: datetime) -> tuple[datetime, datetime | None]:
    """The first window that ends after ``at`` (UTC), joined with the windows that follow it without a
    gap (all-day windows on consecutive days). The end is None when the schedule never closes."""
    if schedule.always_open:
        return at, None
    first_day = at.astimezone(schedule.tz).date() - _ONE_DAY
    for k in range(_SEARCH_DAYS):
        window = _window_on(schedule, first_day + k * _ONE_DAY)
        if window is None or window[1] <= at:
            continue
        start, end = window
        for j in range(k + 1, k + 1 + _SEARCH_DAYS):
            following = _window_on(schedule, first_day + j * _ONE_DAY)
            if following is None or following[0] != end:
                break
            end = following[1]
        return start, end
    raise AssertionError(f"no window within {_SEARCH_DAYS} days for {schedule!r}")  # pragma: no cover


# --- public queries ----------------------------------------------------------------------------------


def is_open(schedule: Schedule | None, at: datetime) -> bool:
    """Whether a send may start at ``at``. No schedule means any time."""
    at = _utc(at)
    if schedule is None:
        return True
    return _window_after(schedule, at)[0] <= at


def next_open(schedule: Schedule | None, at: datetime) -> datetime:
    """``at`` if the window is open then, else the exact start of the next window."""
    at = _utc(at)
    if schedule is None:
        return at
    return max(at, _window_after(schedule, at)[0])


def window_end(schedule: Schedule | None, at: datetime) -> datetime | None:
    """When the window containing ``at`` closes (windows that touch count as one). If ``at`` is outside,
    the end of the next window. None when there is no schedule or it never closes."""
    at = _utc(at)
    if schedule is None:
        return None
    return _window_after(schedule, at)[1]


def _jitter(rng: random.Random, jitter_s: float, start: datetime, end: datetime | None) -> datetime:
    """``start`` plus uniform jitter in [0, min(jitter_s, end - start))."""
    if jitter_s < 0:
        raise ValueError(f"jitter_s must be >= 0, got {jitter_s}")
    span = jitter_s if end is None else min(jitter_s, (end - start).total_seconds())
    if span <= 0:
        return start
    placed = start + timedelta(seconds=rng.random() * span)
    if end is not None and placed >= end:  # microsecond rounding at the very edge
        placed = end - _EPSILON
    return placed


def place(schedule: Schedule | None, earliest: datetime, rng: random.Random, jitter_s: float) -> datetime:
    """When to send something due at ``earliest``: then, if the window is open; else at the start of the
    next window plus uniform jitter in [0, min(jitter_s, window length)), so sends moved out of the
    night do not all start on the same second."""
    earliest = _utc(earliest)
    if schedule is None:
        return earliest
    start, end = _window_after(schedule, earliest)
    if start <= earliest:
        return earliest
    return _jitter(rng, jitter_s, start, end)


def local_day(tz: ZoneInfo, at: datetime) -> date:
    """The calendar day of ``at`` in ``tz`` (daily caps count in the account's zone)."""
    return _utc(at).astimezone(tz).date()


def previous_local_midnight(tz: ZoneInfo, at: datetime) -> datetime:
    """The first instant of ``at``'s local day (01:00 where midnight falls in a DST gap)."""
    return _resolve(tz, local_day(tz, at), 0)


def next_local_midnight(tz: ZoneInfo, at: datetime) -> datetime:
    """The first instant of the local day after ``at``'s (01:00 where midnight falls in a DST gap)."""
    return _resolve(tz, local_day(tz, at) + _ONE_DAY, 0)


# --- spreading first sends ---------------------------------------------------------------------------


def spread(
    start: datetime,
    count: int,
    *,
    gap_s: float,
    daily_cap: int,
    sent_today: int,
    schedule: Schedule | None,
    day_tz: ZoneInfo,
    rng: random.Random,
    jitter_s: float,
) -> list[datetime]:
    """Due times for ``count`` first sends of one account, in order.

    Each slot is at least ``gap_s`` after the previous one (the first at ``start`` or later), inside the
    window, and at most ``daily_cap`` fall on one local day of ``day_tz`` (``sent_today`` of them are
    already used on ``start``'s day; 0 = no cap). A slot that falls outside the window or on a full day
    moves to the next open instant (the next window start, or the next day's first open instant) plus
    jitter as in :func:`place`; the slots after it follow at the gap. O(count).
    """
    if count < 0 or gap_s < 0 or daily_cap < 0 or sent_today < 0 or jitter_s < 0:
        raise ValueError("count, gap_s, daily_cap, sent_today and jitter_s must be >= 0")
    t = _utc(start)
    gap = timedelta(seconds=gap_s)
    day_end = next_local_midnight(day_tz, t)
    used = sent_today
    # The open window currently known to contain t: [win_start, win_end); win_end None = never closes.
    win_start: datetime | None = None
    win_end: datetime | None = None
    slots: list[datetime] = []
    for i in range(count):
        if i:
            t = slots[-1] + gap
        moved = False
        while True:
            if t >= day_end:
                day_end = next_local_midnight(day_tz, t)
                used = 0
            if daily_cap and used >= daily_cap:
                t, moved = day_end, True
                continue
            if schedule is None:
                win_start, win_end = t, None
            elif win_start is None or t < win_start or (win_end is not None and t >= win_end):
                win_start, win_end = _window_after(schedule, t)
            if win_start > t:
                t, moved = win_start, True
                continue
            if moved:
                moved = False
                t = _jitter(rng, jitter_s, t, win_end)
                continue  # jitter may cross midnight: check the day again
            break
        slots.append(t)
        used += 1
    return slots
