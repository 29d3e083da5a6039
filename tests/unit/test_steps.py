from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignsvc.domain.steps import (
    AFTER_REPLY,
    DELAY,
    Done,
    Due,
    Step,
    WaitReply,
    delay,
    on_reply,
    ordered,
    plan_after,
    plan_first,
    plan_skip,
    reply_stops_sequence,
    reposition,
    validate_step_timing,
    visible_count,
)
from campaignsvc.domain.validation import FieldError

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
TEMPLATE = UUID(int=999)


def step(
    n: int,
    trigger: str = DELAY,
    hours: int = 0,
    minutes: int = 0,
    *,
    hidden: bool = False,
    order: int | None = None,
    created: datetime = T0,
) -> Step:
    return Step(
        id=UUID(int=n),
        order_index=n if order is None else order,
        created_at=created,
        trigger_type=trigger,
        delay_hours=hours,
        delay_minutes=minutes,
        is_hidden=hidden,
        template_id=TEMPLATE,
        conditions={},
    )


def test_ordered__by_order_index_then_created_at_then_id():
    a = step(3, order=0, created=T0 + timedelta(seconds=2))
    b = step(2, order=0, created=T0 + timedelta(seconds=1))
    c = step(1, order=0, created=T0 + timedelta(seconds=1))
    d = step(4, order=-1)
    e = step(0, order=5)
    assert ordered([e, a, b, c, d]) == [d, c, b, a, e]


def test_delay__hours_and_minutes():
    assert delay(step(0, hours=2, minutes=30)) == timedelta(hours=2, minutes=30)
    assert delay(step(0)) == timedelta(0)


def test_delay__negative_stored_values_count_as_zero():
    assert delay(step(0, hours=-5)) == timedelta(0)


def test_step__conditions_do_not_break_hashing():
    s = Step(UUID(int=1), 0, T0, DELAY, 0, 0, False, TEMPLATE, {"contact": []})
    assert hash(s) == hash(Step(UUID(int=1), 0, T0, DELAY, 0, 0, False, TEMPLATE, {"other": 1}))


# --- plan_first --------------------------------------------------------------------------------------


def test_plan_first__first_step_fires_after_its_own_delay_from_enrolment():
    assert plan_first([step(0, hours=1), step(1, hours=24)], T0) == Due(0, T0 + timedelta(hours=1))


def test_plan_first__zero_delay_is_due_at_enrolment():
    assert plan_first([step(0)], T0) == Due(0, T0)


def test_plan_first__no_steps_is_done():
    assert plan_first([], T0) == Done()


def test_plan_first__all_hidden_is_done():
    assert plan_first([step(0, hidden=True), step(1, hidden=True)], T0) == Done()


def test_plan_first__hidden_first_step_is_skipped_as_if_absent():
    assert plan_first([step(0, hours=9, hidden=True), step(1, minutes=5)], T0) == Due(
        1, T0 + timedelta(minutes=5)
    )


def test_plan_first__after_reply_first_step_waits_for_the_contacts_message():
    assert plan_first([step(0, AFTER_REPLY)], T0) == WaitReply(0)


def test_plan_first__steps_given_out_of_order():
    steps = [step(1, hours=5, order=7), step(0, hours=1, order=3)]
    assert plan_first(steps, T0) == Due(0, T0 + timedelta(hours=1))  # a position in ordered(steps)


# --- plan_after / plan_skip --------------------------------------------------------------------------


def test_plan_after__uses_the_next_steps_own_delay_counted_from_the_send():
    steps = [step(0, hours=99), step(1, hours=2, minutes=15), step(2, hours=48)]
    sent_at = T0 + timedelta(hours=3)
    assert plan_after(steps, 0, sent_at) == Due(1, sent_at + timedelta(hours=2, minutes=15))
    assert plan_after(steps, 1, sent_at) == Due(2, sent_at + timedelta(hours=48))


def test_plan_after__last_step_sent_is_done():
    assert plan_after([step(0), step(1)], 1, T0) == Done()


def test_plan_after__next_after_reply_step_waits():
    assert plan_after([step(0), step(1, AFTER_REPLY, hours=1)], 0, T0) == WaitReply(1)


def test_plan_after__hidden_steps_are_skipped():
    steps = [step(0), step(1, hidden=True), step(2, hidden=True), step(3, hours=4)]
    assert plan_after(steps, 0, T0) == Due(3, T0 + timedelta(hours=4))
    assert plan_after([step(0), step(1, hidden=True)], 0, T0) == Done()


def test_plan_skip__moves_on_as_if_sent_at_the_skip():
    steps = [step(0), step(1, hours=1), step(2, hours=3)]
    skipped_at = T0 + timedelta(hours=10)
    assert plan_skip(steps, 1, skipped_at) == Due(2, skipped_at + timedelta(hours=3))
    assert plan_skip(steps, 2, skipped_at) == Done()


def test_plan_skip__skipped_step_before_after_reply_waits_for_a_reply():
    assert plan_skip([step(0), step(1, AFTER_REPLY)], 0, T0) == WaitReply(1)


# --- replies -----------------------------------------------------------------------------------------


def test_on_reply__releases_the_waiting_after_reply_step_after_its_delay():
    steps = [step(0), step(1, AFTER_REPLY, minutes=30)]
    replied = T0 + timedelta(days=2)
    assert on_reply(steps, 1, replied) == Due(1, replied + timedelta(minutes=30))


def test_on_reply__after_reply_without_delay_is_due_at_once():
    assert on_reply([step(0), step(1, AFTER_REPLY)], 1, T0) == Due(1, T0)


def test_on_reply__not_waiting_for_an_after_reply_step_means_stop():
    steps = [step(0), step(1, hours=24)]
    assert on_reply(steps, 1, T0) is None
    assert on_reply(steps, 2, T0) is None  # nothing left
    assert on_reply(steps, 0, T0) is None


def test_on_reply__hidden_waiting_step_is_skipped_to_the_next_visible_one():
    steps = [step(0), step(1, AFTER_REPLY, hidden=True), step(2, AFTER_REPLY, hours=1)]
    assert on_reply(steps, 1, T0) == Due(2, T0 + timedelta(hours=1))


def test_reply_stops_sequence__unless_the_next_step_is_after_reply():
    steps = [step(0), step(1, AFTER_REPLY), step(2, DELAY, hours=24)]
    assert not reply_stops_sequence(steps, 1)
    assert reply_stops_sequence(steps, 2)
    assert reply_stops_sequence(steps, 3)  # finished: nothing to release
    assert reply_stops_sequence(steps, 0)


def test_sequence__delay_then_after_reply_sends_the_second_step_on_reply():
    """The v1 bug: [s0 delay, s1 after_reply] never sent s1."""
    steps = [step(0), step(1, AFTER_REPLY, minutes=10), step(2, hours=24)]
    first = plan_first(steps, T0)
    assert first == Due(0, T0)
    waiting = plan_after(steps, 0, T0)
    assert waiting == WaitReply(1)
    assert not reply_stops_sequence(steps, waiting.index)
    released = on_reply(steps, waiting.index, T0 + timedelta(hours=5))
    assert released == Due(1, T0 + timedelta(hours=5, minutes=10))
    assert plan_after(steps, 1, released.at) == Due(2, released.at + timedelta(hours=24))
    assert reply_stops_sequence(steps, 2)


def test_visible_count():
    assert visible_count([step(0), step(1, hidden=True), step(2)]) == 2


@pytest.mark.parametrize(
    ("args", "paths"),
    [
        ((None, None, None), []),
        (("delay", 24, 0), []),
        (("after_reply", 0, 59), []),
        (("later", 1, 1), ["triggerType"]),
        (("delay", -1, 0), ["delayHours"]),
        (("delay", 1.5, 0), ["delayHours"]),
        (("delay", True, 0), ["delayHours"]),
        (("delay", 24 * 367, 0), ["delayHours"]),
        (("delay", 0, 60), ["delayMinutes"]),
        (("x", -1, -1), ["triggerType", "delayHours", "delayMinutes"]),
    ],
)
def test_validate_step_timing(args, paths):
    assert [e.path for e in validate_step_timing(*args)] == paths


def test_validate_step_timing__path_prefix():
    assert validate_step_timing("x", None, None, path="steps.2") == [
        FieldError("steps.2.triggerType", "must be 'delay' or 'after_reply'")
    ]


# --- properties --------------------------------------------------------------------------------------

step_lists = st.lists(
    st.builds(
        lambda n, trig, h, m, hid, order: step(n, trig, h, m, hidden=hid, order=order),
        st.integers(0, 10**6),
        st.sampled_from([DELAY, AFTER_REPLY]),
        st.integers(0, 100),
        st.integers(0, 59),
        st.booleans(),
        st.integers(0, 5),
    ),
    max_size=8,
    unique_by=lambda s: s.id,
)


@settings(max_examples=150, deadline=None)
@given(step_lists, st.randoms(use_true_random=False))
def test_walking_a_sequence_sends_each_visible_step_once_in_order(steps, rnd):
    """Following the plans (replying whenever a reply is awaited) visits exactly the visible steps, in
    order, with each due time the previous send plus the step's own delay."""
    seq = ordered(steps)
    steps = rnd.sample(steps, len(steps))  # any input order gives the same plans
    visited = []
    plan = plan_first(steps, T0)
    now = T0
    while not isinstance(plan, Done):
        if isinstance(plan, WaitReply):
            assert not reply_stops_sequence(steps, plan.index)
            now += timedelta(minutes=rnd.randint(1, 10_000))
            plan = on_reply(steps, plan.index, now)
            assert plan is not None
        assert plan.at == now + delay(seq[plan.index])
        assert not seq[plan.index].is_hidden
        visited.append(plan.index)
        now = plan.at
        plan = plan_after(steps, plan.index, now)
    assert visited == [i for i, s in enumerate(seq) if not s.is_hidden]


A, B, C, N = (UUID(int=n) for n in (1, 2, 3, 4))


def test_reposition__a_swap_moves_both_steps_and_keeps_the_end():
    change = reposition([A, B], [B, A])
    assert change.moved == {0: 1, 1: 0}
    assert change.orphaned is None and change.first_changed


def test_reposition__an_insert_moves_the_steps_after_it_and_the_end():
    change = reposition([A, B], [A, N, B])
    assert change.moved == {1: 2, 2: 3}
    assert change.orphaned is None and not change.first_changed


def test_reposition__a_deleted_step_sends_its_participants_to_the_next_survivor():
    change = reposition([A, B, C], [A, C])
    assert change.moved == {2: 1, 3: 2}
    assert (change.orphaned, change.resume_at) == (1, 1)


def test_reposition__deleting_the_last_step_sends_its_participants_to_the_end():
    change = reposition([A, B], [A])
    assert (change.orphaned, change.resume_at) == (1, 1)
    assert change.moved == {2: 1}


def test_reposition__deleting_the_first_step_changes_the_first():
    change = reposition([A, B], [B])
    assert (change.orphaned, change.resume_at, change.first_changed) == (0, 0, True)
    assert change.moved == {1: 0, 2: 1}


def test_reposition__no_change():
    change = reposition([A, B], [A, B])
    assert change.moved == {} and change.orphaned is None and not change.first_changed
