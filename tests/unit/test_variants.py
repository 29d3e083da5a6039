"""A/B variants (domain/variants.py): the deterministic, weighted assignment; the two-proportion test
against known values; the winner rule; a step's variant rendered by the claim's decision."""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections import Counter
from typing import Any

import attrs
import pytest

from campaignsvc.domain import variants as v
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.claims import Facts, SendText, SkipStep, decide

NOW = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)
CAMPAIGN = uuid.UUID(int=7)
CONTROL = v.Arm(None, uuid.UUID(int=100), v.CONTROL_WEIGHT)


def arms(*weights: int) -> tuple[v.Arm, ...]:
    return (
        CONTROL,
        *(v.Arm(uuid.UUID(int=200 + i), uuid.UUID(int=300 + i), w) for i, w in enumerate(weights)),
    )


def contacts(n: int) -> list[uuid.UUID]:
    rng = random.Random(42)
    return [uuid.UUID(int=rng.getrandbits(128)) for _ in range(n)]


def test_assignment__is_a_function_of_campaign_contact_and_step():
    group = arms(1, 3)
    for contact in contacts(200):
        first = v.assign(group, CAMPAIGN, contact, 5)
        rebuilt = arms(1, 3)  # equal arms built again: same answer, no state anywhere
        assert v.assign(rebuilt, CAMPAIGN, contact, 5) == first
        assert 0.0 <= v.bucket(CAMPAIGN, contact, 5) < 1.0
    picked = {v.assign(group, CAMPAIGN, c, 5).variant_id for c in contacts(200)}
    assert picked == {a.variant_id for a in group}  # every arm is used


def test_assignment__follows_the_weights():
    # Control 1, variants 1 and 2: shares 1/4, 1/4, 1/2. Over n = 20,000 contacts a share's standard error
    # is at most sqrt(0.25 · 0.75 / n) ≈ 0.0031; 0.015 is about five of them, so a correct mapping passes
    # and one that ignored the weights (1/3 each) fails by 0.08 or more.
    group = arms(1, 2)
    n = 20_000
    counts = Counter(v.assign(group, CAMPAIGN, c, 1).variant_id for c in contacts(n))
    total = sum(a.weight for a in group)
    for arm in group:
        assert abs(counts[arm.variant_id] / n - arm.weight / total) < 0.015, (arm, counts)


def test_pick__maps_the_unit_interval_onto_cumulative_weights():
    group = arms(1, 2)  # [0, .25) control, [.25, .5) first, [.5, 1) second
    assert v.pick(group, 0.0) == group[0]
    assert v.pick(group, 0.2499) == group[0]
    assert v.pick(group, 0.25) == group[1]
    assert v.pick(group, 0.4999) == group[1]
    assert v.pick(group, 0.5) == group[2]
    assert v.pick(group, 0.999999) == group[2]
    with pytest.raises(ValueError):
        v.pick((), 0.5)


def test_assignment__steps_are_independent():
    # Two equal arms on two steps: the same contact's arms agree about half the time, not always.
    group = arms(1)
    people = contacts(4000)
    same = sum(v.assign(group, CAMPAIGN, c, 1) == v.assign(group, CAMPAIGN, c, 2) for c in people)
    assert abs(same / len(people) - 0.5) < 0.04


def _row(key: int, variants: list[dict[str, Any]] | None, **extra: Any) -> dict[str, Any]:
    row = {
        "id": uuid.UUID(int=1000 + key),
        "order_index": key,
        "created_at": NOW,
        "trigger_type": "delay",
        "delay_hours": 0,
        "delay_minutes": 0,
        "is_hidden": False,
        "template_id": uuid.UUID(int=2000 + key),
        "conditions": {},
        "step_key": key,
        "content": f"control {key}",
        "variants": variants,
    }
    row.update(extra)
    return row


def _variant(n: int, weight: int = 1, content: str | None = None) -> dict[str, Any]:
    # As load_campaign's JSON gives them: ids as text.
    return {
        "id": str(uuid.UUID(int=5000 + n)),
        "template_id": str(uuid.UUID(int=6000 + n)),
        "weight": weight,
        "content": content if content is not None else f"variant {n}",
    }


def _plan(*rows: dict[str, Any]) -> CampaignPlan:
    campaign = {"id": CAMPAIGN, "organization_id": uuid.UUID(int=1)}
    return CampaignPlan.from_rows(campaign, list(rows), reply_wait_hours=168)


def test_plan__another_steps_variants_do_not_move_this_steps_assignment():
    one = _plan(_row(1, [_variant(1)]), _row(2, [_variant(2)]))
    other = _plan(_row(1, [_variant(1)]), _row(2, [_variant(2, 5), _variant(3, 2), _variant(4)]))
    without = _plan(_row(1, [_variant(1)]), _row(2, None))
    for contact in contacts(500):
        arm = one.arm_for(one.steps[0], contact)
        assert arm == other.arm_for(other.steps[0], contact) == without.arm_for(without.steps[0], contact)
    assert without.arm_for(without.steps[1], contacts(1)[0]) is None  # no variants: no arm


def test_plan__parses_variant_templates_and_keeps_a_foreign_one_out():
    plan = _plan(_row(1, [_variant(1), {**_variant(2), "content": None}]))
    arms_ = plan.arms[plan.steps[0].id]
    assert [a.variant_id for a in arms_] == [None, uuid.UUID(int=5001), uuid.UUID(int=5002)]
    assert arms_[0].weight == v.CONTROL_WEIGHT
    assert uuid.UUID(int=6001) in plan.templates
    assert uuid.UUID(int=6002) not in plan.templates


def _decide(plan: CampaignPlan, contact: uuid.UUID) -> SendText | SkipStep:
    facts = Facts(
        contact={},
        company_name=None,
        has_replied=False,
        sent_before=False,
        lead_stages={},
        contact_id=contact,
    )
    return decide(plan, 0, None, random.Random(1), NOW, "", facts)


def test_decide__renders_the_participants_arm_and_names_it():
    plan = _plan(_row(1, [_variant(1, 2), {**_variant(2), "content": "{{bad"}]))
    seen = set()
    for contact in contacts(300):
        arm = plan.arm_for(plan.steps[0], contact)
        assert arm is not None
        got = _decide(plan, contact)
        if arm.variant_id == uuid.UUID(int=5002):  # a broken variant template skips, as a broken step does
            assert isinstance(got, SkipStep) and got.reason == "invalid_template"
        elif arm.variant_id is None:
            assert got == SendText("control 1", variant_id=None)
        else:
            assert got == SendText("variant 1", variant_id=arm.variant_id)
        seen.add(arm.variant_id)
    assert len(seen) == 3


def test_decide__an_auto_winner_step_sends_the_winner_once_decided():
    rows = [_row(1, [_variant(1)], auto_winner=True)]
    plan = _plan(*rows)
    winner = plan.arms[plan.steps[0].id][1]
    decided = CampaignPlan.from_rows(
        {"id": CAMPAIGN, "organization_id": uuid.UUID(int=1)}, rows, reply_wait_hours=168
    )
    decided = attrs.evolve(decided, winners={plan.steps[0].id: winner})
    people = contacts(100)
    assert {_decide(plan, c).variant_id for c in people} == {None, winner.variant_id}  # type: ignore[union-attr]
    assert {_decide(decided, c).variant_id for c in people} == {winner.variant_id}  # type: ignore[union-attr]
    # Without autoWinner, a decided winner changes nothing.
    manual = attrs.evolve(_plan(_row(1, [_variant(1)])), winners={plan.steps[0].id: winner})
    assert {_decide(manual, c).variant_id for c in people} == {None, winner.variant_id}  # type: ignore[union-attr]


# --- the statistic -------------------------------------------------------------------------------------


def test_normal_cdf__known_values():
    assert v.normal_cdf(0.0) == pytest.approx(0.5)
    assert v.normal_cdf(1.96) == pytest.approx(0.9750021, abs=1e-6)
    assert v.normal_cdf(-1.0) == pytest.approx(0.1586553, abs=1e-6)
    assert v.normal_cdf(2.5758) == pytest.approx(0.995, abs=1e-5)


# The z statistics worked by hand from the pooled formula, the p-values from a normal table
# (Φ(2.54) = 0.99446, Φ(0.7152) ≈ 0.76276, Φ(2.1883) ≈ 0.98568), to the table's precision.
@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "p"),
    [
        # 30/100 vs 15/100: pooled 0.225, se 0.059055, z 2.5400 → p 0.011085
        (30, 100, 15, 100, 0.011085),
        # 45/100 vs 40/100: pooled 0.425, se 0.069911, z 0.71520 → p 0.47449
        (45, 100, 40, 100, 0.47449),
        # 120/1000 vs 90/1000: pooled 0.105, se 0.013710, z 2.18827 → p 0.02865
        (120, 1000, 90, 1000, 0.02865),
        # symmetric in its arms
        (15, 100, 30, 100, 0.011085),
    ],
)
def test_two_proportion_p__known_values(x1, n1, x2, n2, p):
    assert v.two_proportion_p(x1, n1, x2, n2) == pytest.approx(p, abs=1e-4)


def test_two_proportion_p__undefined_cases_are_not_significant():
    assert v.two_proportion_p(0, 0, 5, 10) == 1.0
    assert v.two_proportion_p(0, 50, 0, 50) == 1.0
    assert v.two_proportion_p(50, 50, 50, 50) == 1.0
    assert v.two_proportion_p(5, 50, 5, 50) == pytest.approx(1.0)


def outcome(arm: v.Arm, sent: int, positive: int) -> v.ArmOutcome:
    return v.ArmOutcome(arm=arm, sent=sent, positive=positive)


def test_winner__needs_every_arm_at_the_minimum_sample():
    a, b = arms(1)
    clear = [outcome(a, 100, 40), outcome(b, 100, 5)]
    assert v.winner(clear, min_sample=30) == a
    assert v.winner(clear, min_sample=101) is None
    assert v.winner([outcome(a, 100, 40), outcome(b, 29, 0)], min_sample=30) is None
    assert v.winner([outcome(a, 100, 40)], min_sample=30) is None  # one arm: nothing to compare


def test_winner__needs_significance_against_every_other_arm():
    a, b, c = arms(1, 1)
    assert v.winner([outcome(a, 100, 30), outcome(b, 100, 15), outcome(c, 100, 14)]) == a
    # b is close to a: not decided, though a beats c clearly
    assert v.winner([outcome(a, 100, 30), outcome(b, 100, 26), outcome(c, 100, 5)]) is None
    assert v.winner([outcome(a, 100, 20), outcome(b, 100, 20)]) is None  # a tie
    assert v.winner([outcome(a, 1000, 120), outcome(b, 1000, 90)]) == a  # p 0.028
    assert v.winner([outcome(a, 1000, 120), outcome(b, 1000, 90)], alpha=0.01) is None


def test_outcomes_of__reads_counts_by_variant_and_defaults_to_zero():
    a, b = arms(1)
    got = v.outcomes_of((a, b), {None: 40, b.variant_id: 3}, {None: 4})
    assert got == [outcome(a, 40, 4), outcome(b, 3, 0)]
    assert got[0].rate == pytest.approx(0.1)
    assert outcome(a, 0, 0).rate == 0.0
    assert math.isclose(v.two_proportion_p(4, 40, 0, 3), v.two_proportion_p(0, 3, 4, 40))
