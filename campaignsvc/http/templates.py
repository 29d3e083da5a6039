"""Templates and org-level presets (original-v1 §2.4 presets, §2.5; SPEC R-SEQ-5, R-TPL).

Template content is parsed when it is saved: unknown placeholders and unbalanced braces are a 400 with
the position, never a message sent mangled. Templates of an active campaign cannot be changed (pause it
first), and a template used by a step cannot be deleted.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from quart import Blueprint

from campaignsvc.domain.status import CampaignStatus
from campaignsvc.domain.templates import validate_template
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import conflict, not_found, validation
from campaignsvc.http.models.templates import (
    PresetCreate,
    PresetRow,
    TemplateCreate,
    TemplatePatch,
    TemplateRow,
)
from campaignsvc.http.scope import campaign_or_404, in_campaign
from campaignsvc.storage import templates as db

bp = Blueprint("templates", __name__, url_prefix="/api/campaigns")

TEMPLATE_NOT_FOUND = "Template not found"
PAUSE_FIRST = "Pause the campaign before editing its steps"


def check_content(content: str | None, path: str = "content") -> None:
    """400 VALIDATION when the template cannot be rendered as written (the message says where)."""
    if content is None:
        return
    problems = validate_template(content, path=path)
    if problems:
        raise validation("Validation failed", [p.as_json() for p in problems])


def refuse_if_active(campaign: asyncpg.Record) -> None:
    if campaign["status"] == CampaignStatus.ACTIVE:
        raise conflict(PAUSE_FIRST, {"status": campaign["status"]})


@endpoint(
    bp, "GET", "/presets", summary="Organization presets (templates of no campaign)", response=list[PresetRow]
)
async def list_presets() -> list[dict[str, Any]]:
    who = ident.current()
    rows = await services().store.run(db.list_presets, who.organization_id, transaction=False)
    return [dict(r.items()) for r in rows]


@endpoint(
    bp,
    "POST",
    "/presets",
    summary="Create an organization preset",
    body=PresetCreate,
    response=PresetRow,
    status=201,
)
async def create_preset(body: PresetCreate) -> dict[str, Any]:
    who = ident.current()
    check_content(body.content)
    row = await services().store.run(
        db.create_preset, who.organization_id, name=body.name, channel=body.channel, content=body.content
    )
    return dict(row.items())


@endpoint(
    bp,
    "GET",
    "/<id>/templates",
    summary="Templates of a campaign, oldest first",
    response=list[TemplateRow],
    errors=(404,),
)
async def list_templates(id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await in_campaign(id, lambda conn, org: db.list_for_campaign(conn, org, id))
    return [dict(r.items()) for r in rows]


@endpoint(
    bp,
    "POST",
    "/<id>/templates",
    summary="Create a template in a campaign that is not active",
    body=TemplateCreate,
    response=TemplateRow,
    status=201,
    errors=(404, 409),
)
async def create_template(id: uuid.UUID, body: TemplateCreate) -> dict[str, Any]:
    who = ident.current()
    check_content(body.content)

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        refuse_if_active(await campaign_or_404(conn, who.organization_id, id, lock=True))
        return await db.create(
            conn,
            who.organization_id,
            id,
            name=body.name,
            channel=body.channel,
            content=body.content,
            conditions=body.conditions or {},
        )

    return dict((await services().store.run(run)).items())


@endpoint(
    bp,
    "PATCH",
    "/<campaignId>/templates/<templateId>",
    summary="Update a template of a campaign that is not active",
    body=TemplatePatch,
    response=TemplateRow,
    errors=(404, 409),
)
async def patch_template(campaignId: uuid.UUID, templateId: uuid.UUID, body: TemplatePatch) -> dict[str, Any]:
    who = ident.current()
    check_content(body.content)
    fields: dict[str, Any] = {
        name: getattr(body, name) for name in ("name", "channel", "content") if name in body.model_fields_set
    }
    if "conditions" in body.model_fields_set:
        fields["conditions"] = body.conditions or {}

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        campaign = await campaign_or_404(conn, who.organization_id, campaignId, lock=True)
        current = await db.get(conn, who.organization_id, campaignId, templateId)
        if current is None:
            raise not_found(TEMPLATE_NOT_FOUND)
        if not fields:
            return current
        refuse_if_active(campaign)
        row = await db.update(conn, who.organization_id, campaignId, templateId, fields)
        assert row is not None, "locked campaign, template just read"
        return row

    return dict((await services().store.run(run)).items())


@endpoint(
    bp,
    "DELETE",
    "/<campaignId>/templates/<templateId>",
    summary="Delete a template no step uses, in a campaign that is not active",
    status=204,
    errors=(404, 409),
)
async def delete_template(campaignId: uuid.UUID, templateId: uuid.UUID) -> None:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> None:
        campaign = await campaign_or_404(conn, who.organization_id, campaignId, lock=True)
        if await db.get(conn, who.organization_id, campaignId, templateId) is None:
            raise not_found(TEMPLATE_NOT_FOUND)
        refuse_if_active(campaign)
        used = await db.steps_using(conn, templateId)
        if used:
            raise conflict("Template is used by a sequence step; remove the step first", {"steps": used})
        await db.delete(conn, who.organization_id, campaignId, templateId)

    await services().store.run(run)
