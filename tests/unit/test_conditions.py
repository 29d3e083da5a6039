from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignsvc.domain.conditions import (
    CONTACT_FIELDS,
    CONTACT_OPS,
    Facts,
    evaluate,
    pipelines_referenced,
    stages_referenced,
    validate_conditions,
)

PIPE = UUID("11111111-1111-4111-8111-111111111111")
OTHER_PIPE = UUID("22222222-2222-4222-8222-222222222222")
LEAD = UUID("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
QUALIFIED = UUID("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb")
WON = UUID("cccccccc-cccc-4ccc-8ccc-cccccccccccc")

CONTACT = {
    "first_name": "  Anna ",
    "last_name": None,
    "email": "Anna@Example.COM",
    "phone": "",
    "telegram_id": "12345",
    "company_name": "Acme Ltd",
}


def facts(*, replied: bool = False, stages: dict[UUID, UUID] | None = None, **contact) -> Facts:
    return Facts(contact={**CONTACT, **contact}, has_replied=replied, lead_stages=stages or {})


def rule(field: str, op: str, value=None) -> dict:
    r = {"field": field, "op": op}
    if value is not None:
        r["value"] = value
    return r


@pytest.mark.parametrize("conditions", [None, {}, {"contact": []}, {"unknownKey": 1}])
def test_evaluate__no_conditions_hold(conditions):
    assert evaluate(conditions, facts())


def test_evaluate__stop_if_replied_blocks_a_participant_who_ever_replied():
    assert not evaluate({"stopIfReplied": True}, facts(replied=True))
    assert evaluate({"stopIfReplied": True}, facts(replied=False))
    assert evaluate({"stopIfReplied": False}, facts(replied=True))


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        (rule("first_name", "equals", "anna"), True),  # trimmed, case-insensitive
        (rule("first_name", "equals", " ANNA  "), True),
        (rule("first_name", "equals", "Ann"), False),
        (rule("email", "equals", "anna@example.com"), True),
        (rule("first_name", "not_equals", "Bob"), True),
        (rule("first_name", "not_equals", "aNNa"), False),
        (rule("email", "contains", "EXAMPLE"), True),
        (rule("email", "contains", "gmail"), False),
        (rule("email", "contains", ""), True),
        (rule("company_name", "contains", "acme"), True),
        (rule("phone", "empty"), True),  # ""
        (rule("last_name", "empty"), True),  # None
        (rule("first_name", "empty"), False),
        (rule("phone", "not_empty"), False),
        (rule("last_name", "not_empty"), False),
        (rule("telegram_id", "not_empty"), True),
        (rule("telegram_id", "equals", 12345), True),  # numbers compare as text
        (rule("last_name", "equals"), True),  # missing value is ""
        (rule("last_name", "not_equals", "x"), True),
    ],
)
def test_evaluate__contact_rule_each_op(r, expected):
    assert evaluate({"contact": [r]}, facts()) is expected


def test_evaluate__contact_field_absent_from_facts_is_empty():
    assert evaluate({"contact": [rule("email", "empty")]}, Facts(contact={}, has_replied=False))


def test_evaluate__contact_rules_are_anded():
    ok, bad = rule("email", "not_empty"), rule("phone", "not_empty")
    assert evaluate({"contact": [ok, ok]}, facts())
    assert not evaluate({"contact": [ok, bad]}, facts())


def test_evaluate__unicode_case_folding():
    assert evaluate({"contact": [rule("last_name", "equals", "STRASSE")]}, facts(last_name="Straße"))


def test_evaluate__in_pipeline_stage():
    cond = {"inPipelineStage": {"pipelineId": str(PIPE), "stageIds": [str(LEAD), str(QUALIFIED)]}}
    assert evaluate(cond, facts(stages={PIPE: QUALIFIED}))
    assert not evaluate(cond, facts(stages={PIPE: WON}))
    assert not evaluate(cond, facts(stages={OTHER_PIPE: LEAD}))  # no lead in that pipeline
    assert not evaluate(cond, facts())


def test_evaluate__not_in_pipeline_stage():
    cond = {"notInPipelineStage": {"pipelineId": str(PIPE), "stageIds": [str(WON)]}}
    assert not evaluate(cond, facts(stages={PIPE: WON}))
    assert evaluate(cond, facts(stages={PIPE: LEAD}))
    assert evaluate(cond, facts())  # not in the pipeline at all


def test_evaluate__all_groups_are_anded():
    cond = {
        "stopIfReplied": True,
        "contact": [rule("email", "not_empty")],
        "inPipelineStage": {"pipelineId": str(PIPE), "stageIds": [str(LEAD)]},
        "notInPipelineStage": {"pipelineId": str(OTHER_PIPE), "stageIds": [str(WON)]},
    }
    assert evaluate(cond, facts(stages={PIPE: LEAD}))
    assert not evaluate(cond, facts(stages={PIPE: LEAD}, replied=True))
    assert not evaluate(cond, facts(stages={PIPE: LEAD}, email=" "))
    assert not evaluate(cond, facts(stages={PIPE: QUALIFIED}))
    assert not evaluate(cond, facts(stages={PIPE: LEAD, OTHER_PIPE: WON}))


@pytest.mark.parametrize(
    "cond",
    [
        {"contact": [rule("email", "matches", "x")]},
        {"contact": [rule("birthday", "empty")]},
        {"contact": ["email not empty"]},
        {"contact": {"field": "email", "op": "empty"}},
        {"inPipelineStage": {"pipelineId": "nope", "stageIds": [str(LEAD)]}},
        {"inPipelineStage": {"pipelineId": str(PIPE), "stageIds": str(LEAD)}},
        {"notInPipelineStage": {"pipelineId": str(PIPE), "stageIds": ["bad"]}},
        {"notInPipelineStage": "yes"},
        ["not", "an", "object"],
    ],
)
def test_evaluate__a_condition_that_cannot_be_understood_does_not_hold(cond):
    assert not evaluate(cond, facts(stages={PIPE: LEAD}))


def test_pipelines_referenced__both_groups_and_nothing_else():
    cond = {
        "inPipelineStage": {"pipelineId": str(PIPE), "stageIds": [str(LEAD)]},
        "notInPipelineStage": {"pipelineId": str(OTHER_PIPE), "stageIds": [str(WON)]},
        "contact": [rule("email", "empty")],
    }
    assert pipelines_referenced(cond) == {PIPE, OTHER_PIPE}
    assert stages_referenced(cond) == {LEAD, WON}
    assert pipelines_referenced({}) == set() == pipelines_referenced(None)
    assert pipelines_referenced({"inPipelineStage": {"pipelineId": "x"}}) == set()
    assert stages_referenced({"inPipelineStage": {"stageIds": ["x", str(LEAD)]}}) == {LEAD}


# --- validation --------------------------------------------------------------------------------------


def test_validate_conditions__valid_schema_has_no_errors():
    cond = {
        "stopIfReplied": True,
        "contact": [rule(f, op, "x") for f in sorted(CONTACT_FIELDS) for op in sorted(CONTACT_OPS)],
        "inPipelineStage": {"pipelineId": str(PIPE), "stageIds": [str(LEAD)]},
        "notInPipelineStage": None,
    }
    assert validate_conditions(cond) == []
    assert validate_conditions(None) == []
    assert validate_conditions({}) == []


@pytest.mark.parametrize(
    ("cond", "paths"),
    [
        ([], ["conditions"]),
        ({"stopIfReplied": "yes"}, ["conditions.stopIfReplied"]),
        ({"contact": "email"}, ["conditions.contact"]),
        ({"contact": [42]}, ["conditions.contact.0"]),
        ({"contact": [rule("email", "empty"), rule("email", "like")]}, ["conditions.contact.1.op"]),
        ({"contact": [rule("birthday", "empty")]}, ["conditions.contact.0.field"]),
        ({"contact": [{"op": "empty"}]}, ["conditions.contact.0.field"]),
        ({"contact": [rule("email", "equals", ["a"])]}, ["conditions.contact.0.value"]),
        ({"contact": [rule("email", "equals", True)]}, ["conditions.contact.0.value"]),
        ({"contact": [rule("email", "contains", "x" * 1001)]}, ["conditions.contact.0.value"]),
        ({"contact": [{"field": "x", "op": "y"}]}, ["conditions.contact.0.field", "conditions.contact.0.op"]),
        ({"inPipelineStage": {"stageIds": [str(LEAD)]}}, ["conditions.inPipelineStage.pipelineId"]),
        (
            {"inPipelineStage": {"pipelineId": "{" + str(PIPE) + "}", "stageIds": [str(LEAD)]}},
            ["conditions.inPipelineStage.pipelineId"],
        ),
        (
            {"inPipelineStage": {"pipelineId": str(PIPE), "stageIds": []}},
            ["conditions.inPipelineStage.stageIds"],
        ),
        (
            {"notInPipelineStage": {"pipelineId": str(PIPE), "stageIds": [str(LEAD), "oops", 3]}},
            ["conditions.notInPipelineStage.stageIds.1", "conditions.notInPipelineStage.stageIds.2"],
        ),
        ({"notInPipelineStage": [str(PIPE)]}, ["conditions.notInPipelineStage"]),
    ],
)
def test_validate_conditions__errors_name_the_offending_path(cond, paths):
    assert [e.path for e in validate_conditions(cond)] == paths


def test_validate_conditions__value_is_ignored_for_empty_ops():
    assert validate_conditions({"contact": [rule("email", "empty", ["ignored"])]}) == []


def test_validate_conditions__custom_path():
    assert [e.path for e in validate_conditions({"stopIfReplied": 1}, path="steps.0.conditions")] == [
        "steps.0.conditions.stopIfReplied"
    ]


# --- properties --------------------------------------------------------------------------------------

text = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["", " ", "Anna", "ANNA ", "x"]))
valid_rules = st.builds(
    rule, st.sampled_from(sorted(CONTACT_FIELDS)), st.sampled_from(sorted(CONTACT_OPS)), text
)


@settings(max_examples=150, deadline=None)
@given(st.lists(valid_rules, max_size=5), st.dictionaries(st.sampled_from(sorted(CONTACT_FIELDS)), text))
def test_evaluate__valid_rules_are_the_conjunction_of_each_rule(rules, contact):
    f = Facts(contact=contact, has_replied=False)
    assert validate_conditions({"contact": rules}) == []
    assert evaluate({"contact": rules}, f) == all(evaluate({"contact": [r]}, f) for r in rules)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(CONTACT_FIELDS)), text, text)
def test_evaluate__equals_and_not_equals_are_opposites_and_empty_matches_not_empty(field, value, actual):
    f = Facts(contact={field: actual}, has_replied=False)

    def ev(op):
        return evaluate({"contact": [rule(field, op, value)]}, f)

    assert ev("equals") != ev("not_equals")
    assert ev("empty") != ev("not_empty")
