"""Step conditions (SPEC R-SEQ-3, seed §3.5): when false, the step is skipped without a send.

Shape (every group optional, all ANDed; unknown keys are ignored, as the original stored any object)::

    {"stopIfReplied": true,
     "contact": [{"field": "email", "op": "not_empty"}, {"field": "first_name", "op": "equals", "value": "Ann"}],
     "inPipelineStage": {"pipelineId": "<uuid>", "stageIds": ["<uuid>", ...]},
     "notInPipelineStage": {"pipelineId": "<uuid>", "stageIds": ["<uuid>", ...]}}

Contact values and rule values are compared trimmed and case-insensitively. A condition that cannot be
understood (stored before validation existed) is *not* satisfied: a cold message that should not have
gone out cannot be taken back, a skipped step can be re-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import attrs

from campaignsvc.domain.validation import FieldError, is_int, join, parse_uuid

CONTACT_FIELDS = frozenset({"first_name", "last_name", "email", "phone", "telegram_id", "company_name"})
CONTACT_OPS = frozenset({"equals", "not_equals", "contains", "empty", "not_empty"})
MAX_VALUE_LENGTH = 1000


@attrs.frozen
class Facts:
    """What the conditions are evaluated against, loaded fresh right before the send.

    ``contact`` holds the fields of :data:`CONTACT_FIELDS`; ``lead_stages`` maps pipeline id → stage id
    of the contact's lead in that pipeline (deleted leads excluded)."""

    contact: Mapping[str, str | None]
    has_replied: bool
    lead_stages: Mapping[UUID, UUID] = attrs.field(factory=dict)


def _norm(value: Any) -> str:
    return "" if value is None else str(value).strip().casefold()


def _rule_holds(rule: Any, contact: Mapping[str, str | None]) -> bool:
    if not isinstance(rule, Mapping):
        return False
    field, op = rule.get("field"), rule.get("op")
    if field not in CONTACT_FIELDS:
        return False
    actual = _norm(contact.get(field))
    expected = _norm(rule.get("value"))
    if op == "equals":
        return actual == expected
    if op == "not_equals":
        return actual != expected
    if op == "contains":
        return expected in actual
    if op == "empty":
        return actual == ""
    if op == "not_empty":
        return actual != ""
    return False


def _stage_rule(obj: Any) -> tuple[UUID, frozenset[UUID]] | None:
    if not isinstance(obj, Mapping):
        return None
    pipeline = parse_uuid(obj.get("pipelineId"))
    raw_stages = obj.get("stageIds")
    if pipeline is None or not isinstance(raw_stages, list):
        return None
    stages = [parse_uuid(s) for s in raw_stages]
    if any(s is None for s in stages):
        return None
    return pipeline, frozenset(s for s in stages if s is not None)


def evaluate(conditions: Mapping[str, Any] | None, facts: Facts) -> bool:
    """True when the step may be sent; empty or absent conditions always hold."""
    if not conditions:
        return True
    if not isinstance(conditions, Mapping):
        return False
    if conditions.get("stopIfReplied") is True and facts.has_replied:
        return False
    rules = conditions.get("contact")
    if rules is not None:
        if not isinstance(rules, list):
            return False
        if not all(_rule_holds(rule, facts.contact) for rule in rules):
            return False
    if (raw := conditions.get("inPipelineStage")) is not None:
        rule = _stage_rule(raw)
        if rule is None or facts.lead_stages.get(rule[0]) not in rule[1]:
            return False
    if (raw := conditions.get("notInPipelineStage")) is not None:
        rule = _stage_rule(raw)
        if rule is None or facts.lead_stages.get(rule[0]) in rule[1]:
            return False
    return True


def pipelines_referenced(conditions: Mapping[str, Any] | None) -> set[UUID]:
    """Pipelines whose leads :func:`evaluate` needs in ``Facts.lead_stages``."""
    found: set[UUID] = set()
    if not isinstance(conditions, Mapping):
        return found
    for key in ("inPipelineStage", "notInPipelineStage"):
        raw = conditions.get(key)
        if isinstance(raw, Mapping) and (pipeline := parse_uuid(raw.get("pipelineId"))) is not None:
            found.add(pipeline)
    return found


def stages_referenced(conditions: Mapping[str, Any] | None) -> set[UUID]:
    """Stage ids named by the conditions, so the caller can check they belong to the organization."""
    found: set[UUID] = set()
    if not isinstance(conditions, Mapping):
        return found
    for key in ("inPipelineStage", "notInPipelineStage"):
        raw = conditions.get(key)
        if isinstance(raw, Mapping) and isinstance(raw.get("stageIds"), list):
            found.update(s for s in map(parse_uuid, raw["stageIds"]) if s is not None)
    return found


def _validate_rule(rule: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(rule, Mapping):
        errors.append(FieldError(path, "must be an object {field, op, value?}"))
        return
    field, op, value = rule.get("field"), rule.get("op"), rule.get("value")
    if field not in CONTACT_FIELDS:
        errors.append(FieldError(join(path, "field"), f"must be one of {', '.join(sorted(CONTACT_FIELDS))}"))
    if op not in CONTACT_OPS:
        errors.append(FieldError(join(path, "op"), f"must be one of {', '.join(sorted(CONTACT_OPS))}"))
    if value is not None and op not in ("empty", "not_empty"):
        if not (isinstance(value, str) or is_int(value)):
            errors.append(FieldError(join(path, "value"), "must be a string"))
        elif len(str(value)) > MAX_VALUE_LENGTH:
            errors.append(FieldError(join(path, "value"), f"must be at most {MAX_VALUE_LENGTH} characters"))


def _validate_stage_rule(obj: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(obj, Mapping):
        errors.append(FieldError(path, "must be an object {pipelineId, stageIds}"))
        return
    if parse_uuid(obj.get("pipelineId")) is None:
        errors.append(FieldError(join(path, "pipelineId"), "must be a UUID"))
    stages = obj.get("stageIds")
    stages_path = join(path, "stageIds")
    if not isinstance(stages, list) or not stages:
        errors.append(FieldError(stages_path, "must be a non-empty list of stage UUIDs"))
        return
    for i, stage in enumerate(stages):
        if parse_uuid(stage) is None:
            errors.append(FieldError(join(stages_path, i), "must be a UUID"))


def validate_conditions(obj: Any, *, path: str = "conditions") -> list[FieldError]:
    """Every problem of a ``conditions`` object; empty when it is valid. None counts as ``{}``."""
    if obj is None:
        return []
    if not isinstance(obj, Mapping):
        return [FieldError(path, "must be an object")]
    errors: list[FieldError] = []
    stop = obj.get("stopIfReplied")
    if stop is not None and not isinstance(stop, bool):
        errors.append(FieldError(join(path, "stopIfReplied"), "must be true or false"))
    rules = obj.get("contact")
    if rules is not None:
        if isinstance(rules, list):
            for i, rule in enumerate(rules):
                _validate_rule(rule, join(join(path, "contact"), i), errors)
        else:
            errors.append(FieldError(join(path, "contact"), "must be a list of rules {field, op, value?}"))
    for key in ("inPipelineStage", "notInPipelineStage"):
        if (raw := obj.get(key)) is not None:
            _validate_stage_rule(raw, join(path, key), errors)
    return errors
