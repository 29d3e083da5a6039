"""domain/reporting: the phase rule, the original's rounding, the rates and the KPIs of the stats endpoint."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignsvc.domain.reporting import (
    DONE,
    PHASES,
    TERMINAL,
    Outcomes,
    ParticipantCounts,
    contact_name,
    is_read,
    js_round,
    kpis,
    per,
    phase_counts,
    phase_of,
    rate,
)

STATUSES = ("pending", "queued", "sent", "replied", "completed", "stopped", "skipped", "failed")

# --- js_round -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (0.5, 0, 1.0),
        (1.5, 0, 2.0),
        (2.5, 0, 3.0),  # Python's round gives 2 (to even)
        (-0.5, 0, 0.0),  # Math.round(-0.5) is -0: halves go towards +∞, not away from zero
        (-1.5, 0, -1.0),
        (-2.5, 0, -2.0),
        (-2.6, 0, -3.0),
        (2.4999, 0, 2.0),
        (66.66666666666667, 1, 66.7),
        (33.33333333333333, 1, 33.3),
        (12.25, 1, 12.3),  # exact in binary: a true half, up
        (-12.25, 1, -12.2),
        (1.005, 2, 1.0),  # 1.005 is 1.00499999… in binary, as in JS
        (2.675, 2, 2.68),  # 2.67499… in binary, but ×100 gives 267.5: up, as Math.round(x * 100) / 100 does
        (1234.5, 0, 1235.0),
        (7.0, 3, 7.0),
    ],
)
def test_js_round_rounds_halves_up_like_math_round(value: float, digits: int, expected: float) -> None:
    assert js_round(value, digits) == expected


def test_js_round_is_a_float_and_keeps_minus_zero_out_of_sight() -> None:
    assert isinstance(js_round(3, 0), float)
    # floor(-0.5 + 0.5) is 0.0, not -0.0 (JSON would show "-0.0"); Math.round gives -0, which JSON shows as 0.
    assert math.copysign(1, js_round(-0.5)) == 1


def test_js_round_of_the_largest_double_below_a_half_follows_the_float_sum() -> None:
    # 0.49999999999999994 + 0.5 rounds to 1.0 in double arithmetic: pinned as the code is (modern
    # Math.round answers 0 here); rates never land there.
    assert js_round(0.49999999999999994) == 1.0


@settings(max_examples=300)
@given(st.floats(-1e9, 1e9, allow_nan=False), st.integers(0, 3))
def test_js_round_is_within_half_a_unit(value: float, digits: int) -> None:
    unit = 10.0**-digits
    assert abs(js_round(value, digits) - value) <= unit / 2 + abs(value) * 1e-12


@settings(max_examples=300)
@given(st.integers(-(10**9), 10**9))
def test_js_round_of_n_and_a_half_is_n_plus_one(n: int) -> None:
    assert js_round(n + 0.5) == n + 1
    assert js_round(float(n)) == n


# --- rate, per ----------------------------------------------------------------------------------------


def test_rate_over_nothing_is_the_int_zero() -> None:
    # The JSON shows 0, not 0.0, as the service always answered.
    for value in (rate(0, 0), rate(5, 0), rate(5, 0, 0), per(100.0, 0), per(0.0, 0)):
        assert value == 0
        assert type(value) is int


def test_rate_rounds_the_percentage() -> None:
    assert rate(1, 3) == 33.3
    assert rate(2, 3) == 66.7
    assert rate(1, 8) == 12.5
    assert rate(1, 3, 0) == 33.0
    assert rate(1, 1) == 100.0
    assert rate(0, 7) == 0.0
    assert type(rate(0, 7)) is float


def test_per_rounds_to_cents() -> None:
    assert per(100.0, 3) == 33.33
    assert per(200.0, 3) == 66.67
    assert per(1.0, 8) == 0.13  # 0.125 → up
    assert per(0.0, 4) == 0.0


@settings(max_examples=500)
@given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 3))
def test_a_part_of_a_whole_is_within_0_and_100_percent(a: int, b: int, digits: int) -> None:
    part, whole = min(a, b), max(a, b)
    assert 0 <= rate(part, whole, digits) <= 100
    if whole:
        assert rate(whole, whole, digits) == 100


# --- phases -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "sent", "read", "phase"),
    [
        ("pending", False, False, "waiting"),
        ("pending", True, False, "sent"),
        ("sent", True, True, "read"),
        ("queued", False, True, "waiting"),  # a read mark without a send does not count
        ("replied", False, False, "replied"),
        ("replied", True, True, "replied"),
        ("failed", True, True, "failed"),
        ("failed", False, False, "failed"),
        ("completed", True, False, "completed"),
        ("stopped", True, True, "completed"),
        ("skipped", False, False, "skipped"),
        ("completed", False, False, "skipped"),
        ("stopped", False, True, "skipped"),
    ],
)
def test_phase_of(status: str, sent: bool, read: bool, phase: str) -> None:
    assert phase_of(status, sent, read) == phase


@given(st.sampled_from(STATUSES), st.booleans(), st.booleans())
def test_every_participant_has_one_of_the_phases(status: str, sent: bool, read: bool) -> None:
    assert phase_of(status, sent, read) in PHASES


def test_done_statuses_are_terminal() -> None:
    assert set(DONE) < set(TERMINAL)


def test_a_reply_counts_as_read_once_sent() -> None:
    assert is_read("replied", True, False)
    assert not is_read("replied", False, False)
    assert is_read("pending", False, True)
    assert not is_read("sent", True, False)


def test_contact_name_falls_back_in_order() -> None:
    assert contact_name(" Boss ", "Ann", "Lee", "ann", "42") == "Boss"
    assert contact_name("  ", " Ann ", " Lee ", "ann", "42") == "Ann Lee"
    assert contact_name(None, None, "Lee", "ann", "42") == "Lee"
    assert contact_name(None, "", "", "ann", "42") == "ann"
    assert contact_name(None, None, None, None, "42") == "42"
    assert contact_name(None, None, None, "", None) == ""


# --- the KPIs -----------------------------------------------------------------------------------------


def test_counts_of_rows() -> None:
    counts = ParticipantCounts.of([("all", "sent", 3), ("sent", "sent", 2), ("read", "sent", 1)])
    assert counts == ParticipantCounts(all={"sent": 3}, sent={"sent": 2}, read={"sent": 1})


def test_an_empty_campaign_is_all_zeros() -> None:
    k = kpis(ParticipantCounts(), Outcomes())
    assert (k.total, k.sent, k.read, k.replied, k.failed) == (0, 0, 0, 0, 0)
    assert k.by_phase == dict.fromkeys(PHASES, 0)
    assert list(k.by_phase) == list(PHASES)
    for value in (
        k.replied_percent,
        k.read_rate,
        k.reply_rate,
        k.conversion_rate,
        k.win_rate,
        k.revenue_per_sent,
        k.revenue_per_reply,
        k.revenue_per_won,
    ):
        assert value == 0
        assert type(value) is int
    assert (k.hours_to_shared, k.hours_to_won) == (None, None)


def test_kpis_of_a_campaign() -> None:
    counts = ParticipantCounts(
        all={"pending": 4, "sent": 3, "replied": 2, "completed": 2, "skipped": 1, "failed": 1},
        sent={"sent": 3, "replied": 2, "completed": 1, "failed": 1},
        read={"sent": 1, "replied": 1, "completed": 1},
    )
    k = kpis(
        counts,
        Outcomes(shared=1, won=1, lost=1, revenue=250.0, hours_to_shared=2.25, hours_to_won=None),
    )
    assert k.total == 13
    assert k.by_status == counts.all
    assert k.by_phase == {
        "waiting": 4,
        "sent": 2,
        "read": 1,
        "replied": 2,
        "completed": 1,
        "skipped": 2,  # the completed one never sent to, and the skipped one
        "failed": 1,
    }
    assert (k.sent, k.read, k.replied, k.failed) == (7, 4, 2, 1)  # read: 1 sent + 1 completed + 2 replied
    assert k.replied_percent == 15  # 2 / 13 = 15.38…
    assert k.read_rate == 57.1  # 4 / 7
    assert k.reply_rate == 50.0  # 2 / 4
    assert k.conversion_rate == 50.0  # 1 / 2
    assert k.win_rate == 50.0
    assert (k.revenue_per_sent, k.revenue_per_reply, k.revenue_per_won) == (35.71, 125.0, 250.0)
    assert (k.hours_to_shared, k.hours_to_won) == (2.3, None)
    assert (k.shared, k.won, k.lost, k.revenue) == (1, 1, 1, 250.0)


def test_a_read_mark_beyond_the_sent_counts_only_up_to_the_sent_in_the_phases() -> None:
    counts = ParticipantCounts(all={"sent": 5}, sent={"sent": 2}, read={"sent": 4})
    assert phase_counts(counts) == dict.fromkeys(PHASES, 0) | {"waiting": 3, "read": 2}


@st.composite
def campaigns(draw: st.DrawFn) -> ParticipantCounts:
    """Consistent counts: per status, those sent to are some of all, those read some of those sent to."""
    all_: dict[str, int] = {}
    sent: dict[str, int] = {}
    read: dict[str, int] = {}
    for status in draw(st.lists(st.sampled_from(STATUSES), unique=True)):
        all_[status] = draw(st.integers(0, 10_000))
        sent[status] = draw(st.integers(0, all_[status]))
        read[status] = draw(st.integers(0, sent[status]))
    return ParticipantCounts(all=all_, sent=sent, read=read)


@settings(max_examples=300)
@given(campaigns())
def test_the_phases_add_up_to_the_participants(counts: ParticipantCounts) -> None:
    phases = phase_counts(counts)
    assert list(phases) == list(PHASES)
    assert all(n >= 0 for n in phases.values())
    assert sum(phases.values()) == sum(counts.all.values())
    assert phases["failed"] == counts.all.get("failed", 0)
    assert phases["replied"] == counts.all.get("replied", 0)
    assert phases["completed"] + phases["skipped"] == sum(counts.all.get(s, 0) for s in DONE)


@settings(max_examples=300)
@given(
    campaigns(),
    st.integers(0, 100),
    st.floats(0, 1e9, allow_nan=False),
    st.one_of(st.none(), st.floats(0, 1e5, allow_nan=False)),
)
def test_the_kpis_stay_in_range(
    counts: ParticipantCounts, won: int, revenue: float, hours: float | None
) -> None:
    k = kpis(counts, Outcomes(won=won, revenue=revenue, hours_to_shared=hours))
    assert k.total == sum(counts.all.values())
    assert k.read <= k.sent <= k.total
    assert k.replied <= k.total
    assert 0 <= k.replied_percent <= 100
    assert 0 <= k.read_rate <= 100
    assert k.revenue_per_sent >= 0 and k.revenue_per_reply >= 0 and k.revenue_per_won >= 0
    if counts.sent.get("replied", 0) == counts.all.get("replied", 0):  # every reply to a message sent
        assert 0 <= k.reply_rate <= 100
    if hours is None:
        assert k.hours_to_shared is None
    else:
        assert k.hours_to_shared is not None and abs(k.hours_to_shared - hours) <= 0.05 + hours * 1e-12
