"""A/B variants of a step (docs/semantics.md, "A/B variants"): which arm a participant gets, and when an
arm has won.

A step's arms are its own template (the control, ``variant_id`` None, weight :data:`CONTROL_WEIGHT`) and
its variants in creation order. A participant's arm is a pure function of (campaign, contact, step key) —
the participant is the campaign's only one for that contact — and of this step's arms only: a hash of the
three is a point in [0, 1), laid on the arms' cumulative weights. Nothing is stored or drawn, so a retry,
a restart, another process and the preview all find the same arm, and another step's variants cannot move
it.

The winner of a step is decided on positive replies (domain/replies.POSITIVE), not raw replies: an arm
that provokes "remove me" must not win. Only once every arm has at least ``min_sample`` sends, and the best
arm's positive rate beats every other arm's in a two-sided two-proportion z-test with p < ``alpha``.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence

import attrs

# The control's weight: a variant of weight 1 gets as many participants as the control.
CONTROL_WEIGHT = 1
MAX_VARIANTS = 4  # besides the control: a step has 2–5 arms
MIN_WEIGHT = 1
MAX_WEIGHT = 100
DEFAULT_MIN_SAMPLE = 30
ALPHA = 0.05


@attrs.frozen
class Arm:
    """One arm of a step: the control (``variant_id`` None) or a variant."""

    variant_id: uuid.UUID | None
    template_id: uuid.UUID
    weight: int


def bucket(campaign_id: uuid.UUID, contact_id: uuid.UUID, step_key: int) -> float:
    """A stable point in [0, 1) for this participant and step (the first 8 bytes of a SHA-256)."""
    digest = hashlib.sha256(f"{campaign_id}:{contact_id}:{step_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(arms: Sequence[Arm], point: float) -> Arm:
    """The arm whose share of the cumulative weights holds ``point`` (0 ≤ point < 1)."""
    if not arms:
        raise ValueError("a step has at least its control arm")
    total = sum(a.weight for a in arms)
    target = point * total
    running = 0
    for arm in arms:
        running += arm.weight
        if target < running:
            return arm
    return arms[-1]  # point rounding up to 1.0


def assign(arms: Sequence[Arm], campaign_id: uuid.UUID, contact_id: uuid.UUID, step_key: int) -> Arm:
    """This participant's arm of the step."""
    return pick(arms, bucket(campaign_id, contact_id, step_key))


# --- the winner ----------------------------------------------------------------------------------------


def normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of x1/n1 against x2/n2 (1.0 when it is
    undefined: an empty sample, or both proportions 0 or both 1)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return max(0.0, min(1.0, 2.0 * (1.0 - normal_cdf(abs(z)))))


@attrs.frozen
class ArmOutcome:
    """An arm's sends and the positive replies attributed to them."""

    arm: Arm
    sent: int
    positive: int

    @property
    def rate(self) -> float:
        return self.positive / self.sent if self.sent else 0.0


def winner(
    outcomes: Sequence[ArmOutcome], *, min_sample: int = DEFAULT_MIN_SAMPLE, alpha: float = ALPHA
) -> Arm | None:
    """The best arm by positive rate, if every arm has ``min_sample`` sends and the best beats each other
    arm with p < ``alpha``; None otherwise (also for a step with one arm: nothing to compare)."""
    if len(outcomes) < 2 or any(o.sent < min_sample for o in outcomes):
        return None
    best = max(outcomes, key=lambda o: o.rate)
    others = [o for o in outcomes if o is not best]
    if any(o.rate >= best.rate for o in others):
        return None  # a tie for the top
    if all(two_proportion_p(best.positive, best.sent, o.positive, o.sent) < alpha for o in others):
        return best.arm
    return None


def outcomes_of(
    arms: Sequence[Arm], sent: dict[uuid.UUID | None, int], positive: dict[uuid.UUID | None, int]
) -> list[ArmOutcome]:
    """Each of a step's current arms with its sends and positive replies (keyed by variant id, None: the
    control); sends of a variant since removed are not among them."""
    return [
        ArmOutcome(arm=a, sent=sent.get(a.variant_id, 0), positive=positive.get(a.variant_id, 0))
        for a in arms
    ]
