"""Sequence step timing (SPEC R-SEQ-1, R-SEQ-2).

Step k's own trigger says when step k fires, counted from the send of step k−1 (step 0 from enrolment):
``delay`` fires after its delay; ``after_reply`` fires when the contact replies after step k−1 was sent,
plus its delay. Hidden steps are skipped as if absent. A step skipped without a send (conditions false,
missing data) moves the participant on as if it had been sent at the moment of the skip.

Indices are positions in :func:`ordered` — the participant's ``current_step`` — never ``order_index``
values, which may have gaps and duplicates. Every function orders the steps itself, so callers may pass
them in any order. Results say *when a step is due*; moving that instant into a working window is the
schedule's job (:func:`campaignsvc.domain.schedule.place`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import attrs

from campaignsvc.domain.validation import FieldError, is_int

DELAY = "delay"
AFTER_REPLY = "after_reply"
TRIGGER_TYPES = frozenset({DELAY, AFTER_REPLY})
# A year; a longer delay is an input mistake.
MAX_DELAY_HOURS = 24 * 366


@attrs.frozen
class Step:
    id: UUID
    order_index: int
    created_at: datetime
    trigger_type: str
    delay_hours: int
    delay_minutes: int
    is_hidden: bool
    template_id: UUID
    conditions: dict[str, Any] = attrs.field(factory=dict, hash=False)
    # The step's number in its campaign, given once and never reused (migration 0005): the ledger's
    # ``sequence_step`` and the idempotency key use it, so editing the sequence never re-keys a sent step.
    key: int | None = None


@attrs.frozen
class Due:
    """Step ``index`` is due at ``at`` (before any working-window adjustment)."""

    index: int
    at: datetime


@attrs.frozen
class WaitReply:
    """Step ``index`` waits for the contact's reply (``after_reply``)."""

    index: int


@attrs.frozen
class Done:
    """No step is left: the participant has completed the sequence."""


Plan = Due | WaitReply | Done


def ordered(steps: Iterable[Step]) -> list[Step]:
    """Steps in sequence order: ``order_index``, then creation time, then id (ties are common: the
    original defaulted ``orderIndex`` to 0)."""
    return sorted(steps, key=lambda s: (s.order_index, s.created_at, s.id))


def delay(step: Step) -> timedelta:
    """The step's own delay; negative stored values count as zero."""
    return max(timedelta(0), timedelta(hours=step.delay_hours, minutes=step.delay_minutes))


def _next_visible(seq: Sequence[Step], index: int) -> int | None:
    """The first visible step at or after ``index``."""
    for i in range(max(index, 0), len(seq)):
        if not seq[i].is_hidden:
            return i
    return None


def _plan_from(seq: Sequence[Step], index: int, since: datetime) -> Plan:
    nxt = _next_visible(seq, index)
    if nxt is None:
        return Done()
    step = seq[nxt]
    if step.trigger_type == AFTER_REPLY:
        return WaitReply(nxt)
    return Due(nxt, since + delay(step))


def plan_first(steps: Iterable[Step], enrolled_at: datetime) -> Plan:
    """What happens first after enrolment: the first visible step, after its delay (or on the contact's
    first message if it is ``after_reply``)."""
    return _plan_from(ordered(steps), 0, enrolled_at)


def plan_after(steps: Iterable[Step], sent_index: int, sent_at: datetime) -> Plan:
    """What happens after step ``sent_index`` was sent at ``sent_at``: the next visible step."""
    return _plan_from(ordered(steps), sent_index + 1, sent_at)


def plan_skip(steps: Iterable[Step], skipped_index: int, at: datetime) -> Plan:
    """Step ``skipped_index`` was skipped without a send at ``at``; move on as if it had been sent."""
    return plan_after(steps, skipped_index, at)


def on_reply(steps: Iterable[Step], waiting_index: int, replied_at: datetime) -> Due | None:
    """A participant waiting for step ``waiting_index`` got a reply at ``replied_at``: the step is due
    after its delay. None when that step (or the first visible one after it, if it was hidden) is not
    an ``after_reply`` step — the reply then stops the sequence."""
    seq = ordered(steps)
    nxt = _next_visible(seq, waiting_index)
    if nxt is None or seq[nxt].trigger_type != AFTER_REPLY:
        return None
    return Due(nxt, replied_at + delay(seq[nxt]))


def reply_stops_sequence(steps: Iterable[Step], next_index: int) -> bool:
    """A reply stops the sequence (participant ``replied``) unless the participant's next step is an
    ``after_reply`` step (R-SEQ-2). A participant with nothing left is stopped too."""
    seq = ordered(steps)
    nxt = _next_visible(seq, next_index)
    return nxt is None or seq[nxt].trigger_type != AFTER_REPLY


@attrs.frozen
class Reposition:
    """How participants follow their step through an edit of the sequence (docs/semantics.md).

    ``moved`` maps old positions to new positions of the same step (only those that change, plus the
    end: participants past the last step stay past it). ``orphaned`` is the old position of a deleted
    step and ``resume_at`` the new position of the first step that came after it (``len(after)`` when
    none did). ``first_changed``: the first step is another one than before.
    """

    moved: dict[int, int]
    orphaned: int | None
    resume_at: int | None
    first_changed: bool


def reposition(before: Sequence[UUID], after: Sequence[UUID]) -> Reposition:
    """Compare the step ids in sequence order before and after an edit (one step added, moved or
    deleted). A participant's position is the step it waits for, so it follows that step's id."""
    new_index = {step_id: i for i, step_id in enumerate(after)}
    moved: dict[int, int] = {}
    orphaned: int | None = None
    resume_at: int | None = None
    for old, step_id in enumerate(before):
        if step_id not in new_index:
            orphaned = old
            survivors = [new_index[s] for s in before[old + 1 :] if s in new_index]
            resume_at = survivors[0] if survivors else len(after)
        elif new_index[step_id] != old:
            moved[old] = new_index[step_id]
    if len(before) != len(after):
        moved[len(before)] = len(after)
    first_changed = (before[:1] != after[:1]) and bool(after)
    return Reposition(moved, orphaned, resume_at, first_changed)


def plan_from(steps: Iterable[Step], index: int, since: datetime) -> Plan:
    """What happens to a participant placed at position ``index`` at ``since``: the first visible step
    from there, after its own delay (or a reply, or nothing left)."""
    return _plan_from(ordered(steps), index, since)


def visible_count(steps: Iterable[Step]) -> int:
    return sum(1 for s in steps if not s.is_hidden)


def validate_step_timing(
    trigger_type: Any, delay_hours: Any, delay_minutes: Any, *, path: str = ""
) -> list[FieldError]:
    """Checks for a step body's ``triggerType``, ``delayHours`` and ``delayMinutes`` (None = absent)."""
    errors: list[FieldError] = []
    prefix = f"{path}." if path else ""
    if trigger_type is not None and trigger_type not in TRIGGER_TYPES:
        errors.append(FieldError(f"{prefix}triggerType", "must be 'delay' or 'after_reply'"))
    if delay_hours is not None and not (is_int(delay_hours) and 0 <= delay_hours <= MAX_DELAY_HOURS):
        errors.append(FieldError(f"{prefix}delayHours", f"must be an integer 0..{MAX_DELAY_HOURS}"))
    if delay_minutes is not None and not (is_int(delay_minutes) and 0 <= delay_minutes <= 59):
        errors.append(FieldError(f"{prefix}delayMinutes", "must be an integer 0..59"))
    return errors
