from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaignsvc.domain.schedule import (
    Schedule,
    ScheduleError,
    is_open,
    local_day,
    next_local_midnight,
    next_open,
    place,
    validate_schedule_json,
    window_end,
)
from campaignsvc.domain.validation import FieldError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
EVERY_DAY = frozenset(range(7))
US = timedelta(microseconds=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)


def hm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def sched(tz: ZoneInfo, start: str, end: str, days: frozenset[int] = EVERY_DAY) -> Schedule:
    return Schedule(tz, hm(start), hm(end), days)


# --- parsing ---------------------------------------------------------------------------------------


def test_from_json__complete_schedule():
    s = Schedule.from_json(
        {
            "timezone": "Europe/Berlin",
            "workingHours": {"start": "09:30", "end": "18:30"},
            "daysOfWeek": [1, 2, 3, 4, 5, 5],
        }
    )
    assert s == Schedule(BERLIN, 570, 1110, WEEKDAYS)


@pytest.mark.parametrize("tz", [None, "", "UTC"])
def test_from_json__timezone_defaults_to_utc(tz):
    obj = {"workingHours": {"start": "09:00", "end": "17:00"}, "daysOfWeek": [1]}
    if tz is not None:
        obj["timezone"] = tz
    s = Schedule.from_json(obj)
    assert s is not None and s.tz.key == "UTC"


@pytest.mark.parametrize(
    "obj",
    [
        None,
        {},
        {"timezone": "Europe/Berlin"},
        {"workingHours": {"start": "09:00"}, "daysOfWeek": [1]},
        {"workingHours": {"end": "17:00"}, "daysOfWeek": [1]},
        {"workingHours": {"start": "", "end": "17:00"}, "daysOfWeek": [1]},
        {"workingHours": {"start": "09:00", "end": "17:00"}},
        {"workingHours": {"start": "09:00", "end": "17:00"}, "daysOfWeek": []},
        {"workingHours": None, "daysOfWeek": [1]},
    ],
)
def test_from_json__incomplete_means_no_restriction(obj):
    assert Schedule.from_json(obj) is None
    assert validate_schedule_json(obj) == []


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        ({"workingHours": {"start": "9h", "end": "17:00"}, "daysOfWeek": [1]}, "schedule.workingHours.start"),
        (
            {"workingHours": {"start": "24:00", "end": "17:00"}, "daysOfWeek": [1]},
            "schedule.workingHours.start",
        ),
        (
            {"workingHours": {"start": "09:60", "end": "17:00"}, "daysOfWeek": [1]},
            "schedule.workingHours.start",
        ),
        (
            {"workingHours": {"start": "09:00", "end": "25:00"}, "daysOfWeek": [1]},
            "schedule.workingHours.end",
        ),
        ({"workingHours": {"start": "09:00", "end": 1700}, "daysOfWeek": [1]}, "schedule.workingHours.end"),
        (
            {"workingHours": {"start": "09:00", "end": "17:00:00"}, "daysOfWeek": [1]},
            "schedule.workingHours.end",
        ),
        ({"workingHours": "09:00-17:00", "daysOfWeek": [1]}, "schedule.workingHours"),
        ({"timezone": "Mars/Olympus", "daysOfWeek": [1]}, "schedule.timezone"),
        ({"timezone": "localtime"}, "schedule.timezone"),
        ({"timezone": "../../etc/passwd"}, "schedule.timezone"),
        ({"timezone": 3}, "schedule.timezone"),
        ({"timezone": "x" * 65}, "schedule.timezone"),
        ({"daysOfWeek": [1, 7]}, "schedule.daysOfWeek.1"),
        ({"daysOfWeek": [-1]}, "schedule.daysOfWeek.0"),
        ({"daysOfWeek": [True]}, "schedule.daysOfWeek.0"),
        ({"daysOfWeek": ["1"]}, "schedule.daysOfWeek.0"),
        ({"daysOfWeek": 1}, "schedule.daysOfWeek"),
        ("weekdays", "schedule"),
    ],
)
def test_from_json__present_but_invalid_value_is_an_error_at_its_path(obj, path):
    with pytest.raises(ScheduleError) as info:
        Schedule.from_json(obj)
    assert info.value.path == path
    assert info.value.field_errors() == [FieldError(path, info.value.message)]
    assert [e.path for e in validate_schedule_json(obj)] == [path]


def test_validate_schedule_json__reports_every_problem():
    errors = validate_schedule_json(
        {"timezone": "Nowhere", "workingHours": {"start": "7", "end": "9:99"}, "daysOfWeek": [0, 9]}
    )
    assert [e.path for e in errors] == [
        "schedule.timezone",
        "schedule.workingHours.start",
        "schedule.workingHours.end",
        "schedule.daysOfWeek.1",
    ]


def test_from_json__end_24_00_means_until_midnight():
    s = Schedule.from_json({"workingHours": {"start": "18:00", "end": "24:00"}, "daysOfWeek": [1]})
    assert s == Schedule(ZoneInfo("UTC"), 18 * 60, 0, frozenset({1}))
    assert is_open(s, utc(2025, 6, 2, 23, 59))  # Monday
    assert not is_open(s, utc(2025, 6, 3, 0, 0))


def test_from_json__single_digit_hour_and_zone_name_in_any_case():
    s = Schedule.from_json(
        {"timezone": "europe/berlin", "workingHours": {"start": "9:05", "end": " 17:00 "}, "daysOfWeek": [0]}
    )
    assert s == Schedule(BERLIN, 545, 1020, frozenset({0}))


def test_from_json__custom_path_prefix():
    with pytest.raises(ScheduleError) as info:
        Schedule.from_json({"timezone": "Nope"}, path="body.schedule")
    assert info.value.path == "body.schedule.timezone"


def test_from_account__reads_the_bd_account_columns():
    s = Schedule.from_account("America/New_York", "08:00", "20:00", [1, 2, 3])
    assert s == Schedule(NEW_YORK, 480, 1200, frozenset({1, 2, 3}))
    assert Schedule.from_account(None, "08:00", "20:00", [1]) == Schedule(ZoneInfo("UTC"), 480, 1200, {1})


@pytest.mark.parametrize(
    "cols", [(None, None, None, None), ("UTC", "08:00", None, [1]), ("UTC", "08:00", "20:00", [])]
)
def test_from_account__incomplete_columns_mean_no_schedule(cols):
    assert Schedule.from_account(*cols) is None


def test_from_account__invalid_stored_value_names_the_column():
    with pytest.raises(ScheduleError) as info:
        Schedule.from_account("Bad/Zone", "08:00", "20:00", [1])
    assert info.value.path == "bd_account.timezone"


def test_to_json__round_trips():
    s = sched(BERLIN, "22:00", "06:15", frozenset({5, 6}))
    assert s.to_json() == {
        "timezone": "Europe/Berlin",
        "workingHours": {"start": "22:00", "end": "06:15"},
        "daysOfWeek": [5, 6],
    }
    assert Schedule.from_json(s.to_json()) == s


@pytest.mark.parametrize(
    ("start", "end", "days"), [(-1, 10, {1}), (0, 1440, {1}), (0, 10, set()), (0, 10, {7}), (0.5, 10, {1})]
)
def test_schedule__constructor_rejects_impossible_values(start, end, days):
    with pytest.raises(ValueError):
        Schedule(BERLIN, start, end, frozenset(days))


# --- is_open ---------------------------------------------------------------------------------------


def test_is_open__no_schedule_means_always():
    assert is_open(None, utc(2025, 1, 1, 3, 0))


def test_is_open__requires_an_aware_datetime():
    with pytest.raises(ValueError):
        is_open(None, datetime(2025, 1, 1))


def test_is_open__minutes_count_09_30_to_18_30():
    s = sched(BERLIN, "09:30", "18:30", WEEKDAYS)
    monday = (2025, 6, 2)
    assert not is_open(s, local(BERLIN, *monday, 9, 29, 59))
    assert is_open(s, local(BERLIN, *monday, 9, 30))
    assert is_open(s, local(BERLIN, *monday, 18, 29, 59, 999999))
    assert not is_open(s, local(BERLIN, *monday, 18, 30))
    assert not is_open(s, local(BERLIN, *monday, 18, 45))  # v1 allowed the end hour while minute == 0


def test_is_open__only_on_listed_days():
    s = sched(BERLIN, "09:00", "17:00", WEEKDAYS)
    assert is_open(s, local(BERLIN, 2025, 6, 6, 12, 0))  # Friday
    assert not is_open(s, local(BERLIN, 2025, 6, 7, 12, 0))  # Saturday
    assert not is_open(s, local(BERLIN, 2025, 6, 8, 12, 0))  # Sunday


def test_is_open__evaluated_in_the_schedule_zone_not_utc():
    s = sched(NEW_YORK, "09:00", "17:00", WEEKDAYS)
    assert not is_open(s, utc(2025, 6, 2, 12, 59))  # 08:59 EDT
    assert is_open(s, utc(2025, 6, 2, 13, 0))
    assert is_open(s, utc(2025, 6, 2, 20, 59))
    assert not is_open(s, utc(2025, 6, 2, 21, 0))


def test_is_open__overnight_window_spans_midnight_and_belongs_to_its_start_day():
    s = sched(BERLIN, "22:00", "06:00", frozenset({5}))  # Friday night only
    assert not is_open(s, local(BERLIN, 2025, 6, 6, 21, 59))  # Fri
    assert is_open(s, local(BERLIN, 2025, 6, 6, 22, 0))
    assert is_open(s, local(BERLIN, 2025, 6, 7, 0, 0))  # Sat, still Friday's window
    assert is_open(s, local(BERLIN, 2025, 6, 7, 5, 59))
    assert not is_open(s, local(BERLIN, 2025, 6, 7, 6, 0))
    assert not is_open(s, local(BERLIN, 2025, 6, 7, 23, 0))  # Saturday's window: not a listed day
    assert not is_open(s, local(BERLIN, 2025, 6, 6, 3, 0))  # Thursday's window


def test_is_open__midnight_hour_is_not_hour_24():
    s = sched(BERLIN, "00:00", "01:00", EVERY_DAY)
    assert is_open(s, local(BERLIN, 2025, 6, 2, 0, 30))
    assert not is_open(s, local(BERLIN, 2025, 6, 2, 1, 0))


def test_is_open__equal_start_and_end_opens_the_whole_day():
    s = sched(BERLIN, "09:00", "09:00", frozenset({1}))
    assert is_open(s, local(BERLIN, 2025, 6, 2, 0, 0))
    assert is_open(s, local(BERLIN, 2025, 6, 2, 23, 59, 59))
    assert not is_open(s, local(BERLIN, 2025, 6, 3, 0, 0))
    assert not is_open(s, local(BERLIN, 2025, 6, 1, 23, 59))


# --- next_open / window_end --------------------------------------------------------------------------


def test_next_open__returns_at_itself_when_open():
    s = sched(BERLIN, "09:00", "17:00")
    at = local(BERLIN, 2025, 6, 2, 12, 0, 7)
    assert next_open(s, at) == at
    assert next_open(s, at).tzinfo is UTC
    assert next_open(None, at) == at


def test_next_open__before_the_window_is_todays_start():
    s = sched(BERLIN, "09:30", "18:30", WEEKDAYS)
    assert next_open(s, local(BERLIN, 2025, 6, 2, 7, 0)) == local(BERLIN, 2025, 6, 2, 9, 30)


def test_next_open__friday_evening_goes_to_monday_start():
    s = sched(BERLIN, "09:30", "18:30", WEEKDAYS)
    assert next_open(s, local(BERLIN, 2025, 6, 6, 18, 30)) == local(BERLIN, 2025, 6, 9, 9, 30)


def test_next_open__overnight_window_next_week():
    s = sched(BERLIN, "22:00", "06:00", frozenset({5}))
    assert next_open(s, local(BERLIN, 2025, 6, 7, 6, 0)) == local(BERLIN, 2025, 6, 13, 22, 0)


def test_window_end__end_of_the_containing_window():
    s = sched(BERLIN, "22:00", "06:00", frozenset({5}))
    assert window_end(s, local(BERLIN, 2025, 6, 6, 23, 0)) == local(BERLIN, 2025, 6, 7, 6, 0)


def test_window_end__outside_a_window_is_the_end_of_the_next_one():
    s = sched(BERLIN, "09:00", "17:00", WEEKDAYS)
    assert window_end(s, local(BERLIN, 2025, 6, 7, 12, 0)) == local(BERLIN, 2025, 6, 9, 17, 0)


def test_window_end__whole_days_in_a_row_are_one_window():
    s = sched(BERLIN, "00:00", "00:00", WEEKDAYS)
    assert window_end(s, local(BERLIN, 2025, 6, 2, 8, 0)) == local(BERLIN, 2025, 6, 7, 0, 0)


def test_window_end__none_without_schedule_or_when_never_closed():
    assert window_end(None, utc(2025, 6, 2)) is None
    assert window_end(sched(BERLIN, "10:00", "10:00", EVERY_DAY), utc(2025, 6, 2)) is None
    assert next_open(sched(BERLIN, "10:00", "10:00", EVERY_DAY), utc(2025, 6, 2)) == utc(2025, 6, 2)


# --- DST ---------------------------------------------------------------------------------------------
# Europe/Berlin: 2025-03-30 02:00 CET → 03:00 CEST (01:00 UTC); 2025-10-26 03:00 CEST → 02:00 CET (01:00 UTC).
# America/New_York: 2025-03-09 02:00 EST → 03:00 EDT (07:00 UTC); 2025-11-02 02:00 EDT → 01:00 EST (06:00 UTC).


def test_dst__berlin_spring_forward_start_in_the_gap_moves_to_03_00():
    s = sched(BERLIN, "02:30", "05:00")
    assert next_open(s, utc(2025, 3, 30, 0, 0)) == utc(2025, 3, 30, 1, 0)  # 03:00 CEST
    assert window_end(s, utc(2025, 3, 30, 1, 0)) == utc(2025, 3, 30, 3, 0)  # 05:00 CEST
    assert not is_open(s, utc(2025, 3, 30, 0, 59, 59))
    assert next_open(s, utc(2025, 3, 30, 4, 0)) == utc(2025, 3, 31, 0, 30)  # 02:30 CEST next day


def test_dst__berlin_spring_forward_window_inside_the_gap_is_closed_that_day():
    s = sched(BERLIN, "02:00", "02:45")
    assert next_open(s, utc(2025, 3, 29, 23, 0)) == utc(2025, 3, 31, 0, 0)  # Mon 02:00 CEST


def test_dst__berlin_spring_forward_keeps_the_wall_clock_start():
    s = sched(BERLIN, "09:00", "17:00")
    assert next_open(s, utc(2025, 3, 29, 16, 0)) == utc(2025, 3, 30, 7, 0)  # Sun 09:00 CEST
    assert next_open(s, utc(2025, 3, 28, 16, 0)) == utc(2025, 3, 29, 8, 0)  # Sat 09:00 CET


def test_dst__berlin_fall_back_ambiguous_start_uses_first_occurrence():
    s = sched(BERLIN, "02:30", "04:00")
    assert next_open(s, utc(2025, 10, 26, 0, 0)) == utc(2025, 10, 26, 0, 30)  # first 02:30 (CEST)
    assert window_end(s, utc(2025, 10, 26, 0, 30)) == utc(2025, 10, 26, 3, 0)  # 04:00 CET
    assert is_open(s, local(BERLIN, 2025, 10, 26, 2, 10, fold=1))  # second 02:10, after the start


def test_dst__berlin_fall_back_overnight_window_is_an_hour_longer():
    s = sched(BERLIN, "22:00", "06:00", frozenset({6}))
    start = next_open(s, utc(2025, 10, 25, 12, 0))
    assert start == utc(2025, 10, 25, 20, 0)  # Sat 22:00 CEST
    assert window_end(s, start) == utc(2025, 10, 26, 5, 0)  # Sun 06:00 CET: 9 hours


def test_dst__new_york_spring_forward_overnight_window_is_an_hour_shorter():
    s = sched(NEW_YORK, "22:00", "06:00", frozenset({6}))
    start = next_open(s, utc(2025, 3, 8, 12, 0))
    assert start == utc(2025, 3, 9, 3, 0)  # Sat 22:00 EST
    assert window_end(s, start) == utc(2025, 3, 9, 10, 0)  # Sun 06:00 EDT: 7 hours


def test_dst__new_york_weekday_start_shifts_by_an_hour_in_utc():
    s = sched(NEW_YORK, "09:00", "17:00", WEEKDAYS)
    assert next_open(s, local(NEW_YORK, 2025, 3, 7, 18, 0)) == utc(2025, 3, 10, 13, 0)  # Mon 09:00 EDT
    assert next_open(s, local(NEW_YORK, 2025, 10, 31, 18, 0)) == utc(2025, 11, 3, 14, 0)  # Mon 09:00 EST


def test_dst__new_york_spring_forward_gap_start():
    s = sched(NEW_YORK, "02:15", "04:00")
    assert next_open(s, utc(2025, 3, 9, 6, 0)) == utc(2025, 3, 9, 7, 0)  # 03:00 EDT
    empty = sched(NEW_YORK, "02:00", "03:00")  # 02:00 and 03:00 are the same instant that day
    assert next_open(empty, utc(2025, 3, 9, 6, 0)) == utc(2025, 3, 10, 6, 0)


def test_dst__new_york_fall_back_repeated_hour():
    s = sched(NEW_YORK, "01:30", "09:00")
    assert next_open(s, utc(2025, 11, 2, 4, 0)) == utc(2025, 11, 2, 5, 30)  # first 01:30 (EDT)
    assert is_open(s, utc(2025, 11, 2, 6, 10))  # second 01:10 (EST)
    assert window_end(s, utc(2025, 11, 2, 6, 10)) == utc(2025, 11, 2, 14, 0)  # 09:00 EST


def test_dst__half_hour_shift_lord_howe():
    tz = ZoneInfo("Australia/Lord_Howe")  # 2025-10-05 02:00 → 02:30 (+10:30 → +11)
    s = sched(tz, "02:10", "03:00")
    assert next_open(s, utc(2025, 10, 4, 12, 0)) == utc(2025, 10, 4, 15, 30)  # 02:30 +11


def test_dst__midnight_in_the_gap_santiago():
    tz = ZoneInfo("America/Santiago")  # 2024-09-08 00:00 → 01:00 (-04 → -03)
    s = sched(tz, "00:00", "00:00", frozenset({0}))
    assert next_open(s, utc(2024, 9, 7, 12, 0)) == utc(2024, 9, 8, 4, 0)  # Sun 01:00 -03
    assert next_local_midnight(tz, utc(2024, 9, 7, 12, 0)) == utc(2024, 9, 8, 4, 0)


def test_next_open__zone_with_45_minute_offset():
    s = sched(ZoneInfo("Asia/Kathmandu"), "09:30", "17:00")
    assert next_open(s, utc(2025, 6, 2, 0, 0)) == utc(2025, 6, 2, 3, 45)


# --- place ---------------------------------------------------------------------------------------------


def test_place__open_returns_earliest_unchanged():
    s = sched(BERLIN, "09:00", "17:00")
    at = local(BERLIN, 2025, 6, 2, 10, 0)
    assert place(s, at, random.Random(1), 600) == at
    assert place(None, at, random.Random(1), 600) == at


def test_place__closed_goes_to_next_start_plus_jitter_inside_the_window():
    s = sched(BERLIN, "09:00", "09:05")  # a five-minute window
    start = local(BERLIN, 2025, 6, 3, 9, 0)
    end = local(BERLIN, 2025, 6, 3, 9, 5)
    results = {place(s, local(BERLIN, 2025, 6, 2, 20, 0), random.Random(seed), 3600) for seed in range(300)}
    assert all(start <= r < end for r in results)
    assert len(results) > 250  # jitter actually spreads
    assert max(results) - min(results) > timedelta(minutes=4)


def test_place__jitter_is_bounded_by_jitter_s():
    s = sched(BERLIN, "09:00", "17:00")
    start = local(BERLIN, 2025, 6, 3, 9, 0)
    for seed in range(100):
        r = place(s, local(BERLIN, 2025, 6, 2, 20, 0), random.Random(seed), 30)
        assert start <= r < start + timedelta(seconds=30)


def test_place__zero_jitter_is_the_exact_start():
    s = sched(BERLIN, "09:00", "17:00")
    assert place(s, local(BERLIN, 2025, 6, 2, 20, 0), random.Random(0), 0) == local(BERLIN, 2025, 6, 3, 9, 0)


def test_place__rejects_negative_jitter():
    with pytest.raises(ValueError):
        place(sched(BERLIN, "09:00", "17:00"), local(BERLIN, 2025, 6, 2, 20, 0), random.Random(0), -1)


# --- local days ----------------------------------------------------------------------------------------


def test_local_day__is_the_calendar_day_in_the_zone():
    assert local_day(BERLIN, utc(2025, 6, 2, 22, 30)) == date(2025, 6, 3)
    assert local_day(NEW_YORK, utc(2025, 6, 2, 2, 30)) == date(2025, 6, 1)


def test_next_local_midnight__dst_days_are_23_and_25_hours_long():
    assert next_local_midnight(BERLIN, utc(2025, 3, 29, 23, 0)) == utc(2025, 3, 30, 22, 0)
    assert next_local_midnight(BERLIN, utc(2025, 3, 30, 22, 0)) == utc(2025, 3, 31, 22, 0)
    assert next_local_midnight(BERLIN, utc(2025, 10, 25, 22, 0)) == utc(2025, 10, 26, 23, 0)
    assert next_local_midnight(BERLIN, utc(2025, 3, 29, 22, 59, 59)) == utc(2025, 3, 29, 23, 0)
