"""Sequence steps (original-v1 §2.6; SPEC R-SEQ-1, R-SEQ-3, R-SEQ-5).

A step's template must be a template of the same campaign; its conditions are validated and every
pipeline and stage they name must belong to the organization (a stage must also be in the rule's
pipeline). Steps of an active campaign cannot be changed: pause it first.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from quart import Blueprint

from campaignsvc.domain.conditions import validate_conditions
from campaignsvc.domain.validation import join, parse_uuid
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import bad_request, conflict, not_found, validation
from campaignsvc.http.models.sequences import SequenceRow, StepCreate, StepPatch
from campaignsvc.http.scope import campaign_or_404, in_campaign, raise_references
from campaignsvc.http.templates import refuse_if_active
from campaignsvc.storage import sequences as db

bp = Blueprint("sequences", __name__, url_prefix="/api/campaigns")

STEP_NOT_FOUND = "Sequence step not found"
FOREIGN_TEMPLATE = "Template not found or does not belong to this campaign"
_STAGE_RULES = ("inPipelineStage", "notInPipelineStage")
# Body field → column.
_COLUMNS = {
    "orderIndex": "order_index",
    "templateId": "template_id",
    "delayHours": "delay_hours",
    "delayMinutes": "delay_minutes",
    "conditions": "conditions",
    "triggerType": "trigger_type",
    "isHidden": "is_hidden",
    "autoWinner": "auto_winner",
}


def check_conditions(conditions: Mapping[str, Any] | None) -> None:
    problems = validate_conditions(conditions)
    if problems:
        raise validation("Validation failed", [p.as_json() for p in problems])


async def condition_reference_errors(
    conn: asyncpg.Connection, org: uuid.UUID, conditions: Mapping[str, Any] | None, path: str = "conditions"
) -> list[dict[str, str]]:
    """Pipelines and stages named by (valid) conditions that are not the organization's."""
    rules = [
        (key, conditions[key])
        for key in _STAGE_RULES
        if conditions and isinstance(conditions.get(key), Mapping)
    ]
    pipelines = {parse_uuid(rule["pipelineId"]) for _, rule in rules}
    stages = {parse_uuid(s) for _, rule in rules for s in rule["stageIds"]}
    owned_pipelines = await db.pipelines_of(conn, org, [p for p in pipelines if p])
    stage_pipeline = await db.stage_pipelines(conn, org, [s for s in stages if s])
    problems = []
    for key, rule in rules:
        rule_path = join(path, key)
        pipeline = parse_uuid(rule["pipelineId"])
        if pipeline not in owned_pipelines:
            problems.append(
                {"path": join(rule_path, "pipelineId"), "message": "pipeline not found in this organization"}
            )
        for i, raw in enumerate(rule["stageIds"]):
            stage = parse_uuid(raw)
            owner = stage_pipeline.get(stage) if stage is not None else None
            if owner is None:
                message = "stage not found in this organization"
            elif owner != pipeline:
                message = "stage is not a stage of this pipeline"
            else:
                continue
            problems.append({"path": join(join(rule_path, "stageIds"), i), "message": message})
    return problems


async def _check_references(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    template_id: uuid.UUID | None,
    conditions: Mapping[str, Any] | None,
) -> None:
    if template_id is not None and not await db.template_of_campaign(conn, org, campaign_id, template_id):
        raise bad_request(FOREIGN_TEMPLATE, [{"path": "templateId", "message": FOREIGN_TEMPLATE}])
    raise_references(await condition_reference_errors(conn, org, conditions))


SEND_UNDER_WAY = "A send of this campaign is still under way; try the edit again in a few seconds"


def _settle_s() -> float:
    """How long an edit waits for a send under way: the Messaging timeout, and a margin to record it."""
    return services().settings.messaging_timeout_s + 2.0


async def _settle(conn: asyncpg.Connection, campaign_id: uuid.UUID, timeout_s: float) -> None:
    """Before an edit that moves positions: the sends claimed before the pause have their outcomes (they
    are recorded at the positions they were claimed with). 409 if one is still out after ``timeout_s``."""
    if not await db.wait_for_sends_in_flight(conn, campaign_id, timeout_s):
        raise conflict(SEND_UNDER_WAY)


@endpoint(
    bp,
    "GET",
    "/<id>/sequences",
    summary="Steps of a campaign in sequence order, with their template",
    response=list[SequenceRow],
    errors=(404,),
)
async def list_steps(id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await in_campaign(id, lambda conn, org: db.list_for_campaign(conn, org, id))
    return [dict(r.items()) for r in rows]


@endpoint(
    bp,
    "POST",
    "/<id>/sequences",
    summary="Add a step to a campaign that is not active",
    body=StepCreate,
    response=SequenceRow,
    status=201,
    errors=(404, 409),
)
async def create_step(id: uuid.UUID, body: StepCreate) -> dict[str, Any]:
    who = ident.current()
    check_conditions(body.conditions)
    fields = {column: getattr(body, name) for name, column in _COLUMNS.items()}
    fields["conditions"] = body.conditions or {}

    settle_s = _settle_s()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        refuse_if_active(await campaign_or_404(conn, who.organization_id, id, lock=True))
        await _check_references(conn, who.organization_id, id, body.templateId, body.conditions)
        await _settle(conn, id, settle_s)
        return await db.create(conn, who.organization_id, id, fields)

    return dict((await services().store.run(run)).items())


@endpoint(
    bp,
    "PATCH",
    "/<campaignId>/sequences/<stepId>",
    summary="Update a step of a campaign that is not active",
    body=StepPatch,
    response=SequenceRow,
    errors=(404, 409),
)
async def patch_step(campaignId: uuid.UUID, stepId: uuid.UUID, body: StepPatch) -> dict[str, Any]:
    who = ident.current()
    check_conditions(body.conditions)
    fields = {
        column: getattr(body, name) for name, column in _COLUMNS.items() if name in body.model_fields_set
    }
    if "conditions" in fields:
        fields["conditions"] = body.conditions or {}

    settle_s = _settle_s()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        campaign = await campaign_or_404(conn, who.organization_id, campaignId, lock=True)
        if not await db.exists(conn, who.organization_id, campaignId, stepId):
            raise not_found(STEP_NOT_FOUND)
        current = await db.get(conn, who.organization_id, campaignId, stepId)
        if not fields and current is not None:
            return current
        refuse_if_active(campaign)
        if current is None and "template_id" not in fields:
            # A step stored with another organization's template: only a new templateId can fix it.
            raise bad_request(FOREIGN_TEMPLATE, [{"path": "templateId", "message": FOREIGN_TEMPLATE}])
        await _check_references(conn, who.organization_id, campaignId, body.templateId, body.conditions)
        if "order_index" in fields:
            await _settle(conn, campaignId, settle_s)
        row = await db.update(conn, who.organization_id, campaignId, stepId, fields)
        assert row is not None, "locked campaign, step exists, template checked"
        return row

    return dict((await services().store.run(run)).items())


@endpoint(
    bp,
    "DELETE",
    "/<campaignId>/sequences/<stepId>",
    summary="Delete a step of a campaign that is not active",
    status=204,
    errors=(404, 409),
)
async def delete_step(campaignId: uuid.UUID, stepId: uuid.UUID) -> None:
    who = ident.current()

    settle_s = _settle_s()

    async def run(conn: asyncpg.Connection) -> None:
        campaign = await campaign_or_404(conn, who.organization_id, campaignId, lock=True)
        if not await db.exists(conn, who.organization_id, campaignId, stepId):
            raise not_found(STEP_NOT_FOUND)
        refuse_if_active(campaign)
        await _settle(conn, campaignId, settle_s)
        await db.delete(conn, who.organization_id, campaignId, stepId)

    await services().store.run(run)
