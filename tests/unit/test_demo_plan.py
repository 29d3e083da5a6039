"""The demo's time scale, scenario and terminal helpers (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from campaignsvc.demo import plan
from campaignsvc.demo.display import CampaignProgress, Display, account_state, table


def test_speed__one_real_day_is_one_demo_minute_at_the_default_scale():
    speed = plan.Speed(plan.DEFAULT_SPEED)
    assert speed.seconds(plan.DAY) == 60
    assert speed.step_delay(plan.DAY) == (0, 1)
    assert speed.step_delay(30 * plan.MINUTE) == (0, 0)
    assert speed.seconds(plan.FLOOD_WAIT_S) == 5
    assert speed.describe() == "×1440: one demo minute is 1 real day(s)"


@pytest.mark.parametrize(
    ("factor", "real_s", "expected"),
    [(1, 90 * 60, (1, 30)), (60, plan.DAY, (0, 24)), (3600, plan.DAY, (0, 0))],
)
def test_speed__step_delays_are_whole_minutes(factor, real_s, expected):
    assert plan.Speed(factor).step_delay(real_s) == expected


@pytest.mark.parametrize("factor", [0, 0.5, 2_000_000])
def test_speed__rejects_factors_out_of_range(factor):
    with pytest.raises(ValueError, match="speed"):
        plan.Speed(factor)


def test_plan__the_flooding_campaign_is_faster_than_telegram_and_the_others_slower():
    blitz = next(c for c in plan.CAMPAIGNS if c.key == "blitz")
    assert max(plan.ACCOUNT_FLOOR_S, blitz.gap_s[1]) < plan.TELEGRAM_MIN_GAP_S
    for campaign in plan.CAMPAIGNS:
        if campaign is not blitz:
            assert campaign.gap_s[0] > plan.TELEGRAM_MIN_GAP_S
    # No contact is used by two campaigns of one run, and failing contacts belong to their campaign.
    used = [i for c in plan.CAMPAIGNS for i in c.contacts]
    assert len(used) == len(set(used)) and max(used) < plan.CONTACTS
    assert all(i in c.contacts for c in plan.CAMPAIGNS for i in c.failing)


def test_plan__contacts_are_deterministic_and_two_cannot_be_written_to():
    rows = plan.contact_rows()
    assert rows == plan.contact_rows() and len(rows) == plan.CONTACTS
    assert sum(1 for r in rows if not r["telegram_id"] and not r["username"]) == 2
    assert len({r["telegram_id"] for r in rows if r["telegram_id"]}) == plan.CONTACTS - 2


def test_plan__working_window_is_open_now_and_wraps_midnight():
    late = dt.datetime(2026, 3, 2, 22, 30, tzinfo=dt.UTC)  # 23:30 in Berlin
    assert plan.working_window(late)["workingHours"] == {"start": "21:00", "end": "03:00"}
    assert plan.working_window(late)["daysOfWeek"] == list(range(7))


def test_progress__segments_add_up_to_the_participants():
    stats = {"total": 20, "contactsSent": 12, "totalSends": 15,
             "byPhase": {"waiting": 5, "sent": 4, "read": 1, "replied": 3, "completed": 2, "skipped": 1, "failed": 2}}  # fmt: skip
    progress = CampaignProgress.from_stats("c", "C", "active", stats)
    assert progress.segments() == (3, 9, 2, 1, 5)
    assert sum(progress.segments()) == 20
    fallback = CampaignProgress.from_detail(
        {
            "id": "c",
            "name": "C",
            "status": "active",
            "total_participants": 10,
            "total_sent": 6,
            "total_replied": 2,
        },
        7,
    )
    assert fallback.segments() == (2, 4, 0, 0, 4) and fallback.messages == 7


def test_account_state__labels_for_people():
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    blocked = {"state": "flood_blocked", "blockedUntil": "2026-01-01T12:00:05Z"}
    assert account_state(blocked, now)[0] == "flood" and "5.0s left" in account_state(blocked, now)[1]
    assert account_state({"state": "idle", "dailyCap": 5, "sentToday": 5}, now) == (
        "cap",
        "daily cap reached",
    )
    assert account_state({"state": "idle", "dailyCap": 0, "sentToday": 50}, now) == ("idle", "idle")
    assert account_state({"state": "restricted"}, now) == ("restricted", "restricted")
    gap = {"state": "waiting_gap", "nextAllowedAt": "2026-01-01T12:00:00.500Z"}
    assert account_state(gap, now) == ("gap", "waiting for gap (next in 0.5s)")


def test_table__aligns_columns_and_shows_missing_values():
    lines = table(["name", "n"], [["a", 1], ["long name", None]])
    assert lines == ["name       n", "---------  -", "a          1", "long name  —"]


def test_display__plain_output_has_no_escape_codes(tmp_path):
    path = tmp_path / "out.txt"
    with path.open("w") as out:
        display = Display(out, live=False)
        display.line(display.paint("hello", "bold"))
        display.progress(
            0.0,
            [CampaignProgress("c", "C", "active", participants=2, contacted=1)],
            [],
            dt.datetime.now(dt.UTC),
        )
    text = path.read_text()
    assert "\x1b" not in text and "hello" in text and "C: 1/2 contacted" in text
