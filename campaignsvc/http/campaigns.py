"""Campaign CRUD: list, detail, create, patch, delete, duplicate, reset-progress (original-v1 §2.3)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from quart import Blueprint

from campaignsvc.domain.audience import Audience
from campaignsvc.domain.status import CampaignStatus
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import ApiError, bad_request, conflict, not_found
from campaignsvc.http.lifecycle import stop_campaign
from campaignsvc.http.models.campaigns import (
    CampaignCreate,
    CampaignDetail,
    CampaignList,
    CampaignListQuery,
    CampaignPatch,
    CampaignRow,
    TargetAudience,
    audience_json,
)
from campaignsvc.http.presenters import (
    account_display_name,
    bd_account_object,
    visible_accounts,
)
from campaignsvc.http.scope import campaign_or_404, raise_references
from campaignsvc.storage import campaigns as db
from campaignsvc.storage import outbox
from campaignsvc.usecases.common import CAMPAIGN_NOT_FOUND

bp = Blueprint("campaigns", __name__, url_prefix="/api/campaigns")


async def _with_accounts(
    conn: asyncpg.Connection, who: ident.Identity, rows: list[Any]
) -> list[dict[str, Any]]:
    """Rows as dicts with ``bd_accounts`` (audience order, role-scoped) and ``bd_account_name``."""
    audiences = [Audience.parse(r["target_audience"]).account_ids for r in rows]
    wanted = {i for ids in audiences for i in ids}
    accounts = await db.bd_accounts_by_id(conn, who.organization_id, list(wanted))
    out = []
    for r, ids in zip(rows, audiences, strict=True):
        ordered = [accounts[i] for i in ids if i in accounts]
        shown = visible_accounts(who, ordered)
        item = dict(r.items())
        item["bd_account_name"] = account_display_name(shown[0]) if shown else None
        item["bd_accounts"] = [bd_account_object(a) for a in shown]
        out.append(item)
    return out


async def check_references(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    *,
    company_id: uuid.UUID | None = None,
    pipeline_id: uuid.UUID | None = None,
    audience: TargetAudience | None = None,
    stage_id: uuid.UUID | None = None,
    responsible_id: uuid.UUID | None = None,
    prefix: str = "",
) -> list[dict[str, str]]:
    """Every id a campaign body refers to must be a row of this organization (R-API-4)."""
    fields: list[tuple[str, str, uuid.UUID]] = []
    if company_id:
        fields.append((f"{prefix}companyId", "companies", company_id))
    if pipeline_id:
        fields.append((f"{prefix}pipelineId", "pipelines", pipeline_id))
    if stage_id:
        fields.append(("leadCreationSettings.default_stage_id", "stages", stage_id))
    if responsible_id:
        fields.append(("leadCreationSettings.default_responsible_id", "users", responsible_id))
    if audience is not None:
        a = "targetAudience"
        if audience.bdAccountId:
            fields.append((f"{a}.bdAccountId", "bd_accounts", audience.bdAccountId))
        fields += [
            (f"{a}.bdAccountIds.{i}", "bd_accounts", v) for i, v in enumerate(audience.bdAccountIds or [])
        ]
        fields += [(f"{a}.contactIds.{i}", "contacts", v) for i, v in enumerate(audience.contactIds or [])]
        if audience.filters and audience.filters.companyId:
            fields.append((f"{a}.filters.companyId", "companies", audience.filters.companyId))
        if audience.filters and audience.filters.pipelineId:
            fields.append((f"{a}.filters.pipelineId", "pipelines", audience.filters.pipelineId))
        if audience.dynamicPipelineId:
            fields.append((f"{a}.dynamicPipelineId", "pipelines", audience.dynamicPipelineId))
        fields += [
            (f"{a}.dynamicStageIds.{i}", "stages", v) for i, v in enumerate(audience.dynamicStageIds or [])
        ]
    wanted: dict[str, list[uuid.UUID]] = {}
    for _, table, value in fields:
        wanted.setdefault(table, []).append(value)
    missing = await db.foreign_ids(conn, org, wanted)
    noun = {
        "companies": "company",
        "pipelines": "pipeline",
        "stages": "stage",
        "bd_accounts": "BD account",
        "contacts": "contact",
        "users": "user",
    }
    return [
        {"path": path, "message": f"{noun[table]} not found in this organization"}
        for path, table, value in fields
        if value in missing.get(table, ())
    ]


@endpoint(bp, "GET", "", summary="List campaigns with KPIs", query=CampaignListQuery, response=CampaignList)
async def list_campaigns(query: CampaignListQuery) -> dict[str, Any]:
    who = ident.current()
    limit, offset = query.window(default=20, maximum=100)

    async def run(conn: asyncpg.Connection) -> dict[str, Any]:
        rows, total, totals = await db.list_with_kpis(conn, who.organization_id, query.status, limit, offset)
        return {
            "data": await _with_accounts(conn, who, rows),
            "total": total,
            "page": query.page,
            "limit": limit,
            "summary": {k: totals[k] for k in ("total_sent", "total_replied", "total_won")},
        }

    return await services().store.run(run)


@endpoint(
    bp,
    "GET",
    "/<id>",
    summary="Campaign detail with templates, steps and accounts",
    response=CampaignDetail,
    errors=(404,),
)
async def get_campaign(id: uuid.UUID) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> dict[str, Any] | None:
        row = await db.get_with_kpis(conn, who.organization_id, id)
        if row is None:
            return None
        (detail,) = await _with_accounts(conn, who, [row])
        detail["templates"] = [dict(r.items()) for r in await db.templates_of(conn, who.organization_id, id)]
        detail["sequences"] = [dict(r.items()) for r in await db.sequences_of(conn, who.organization_id, id)]
        if row["status"] in (CampaignStatus.DRAFT, CampaignStatus.PAUSED):
            contacts = await db.selected_contacts(conn, who.organization_id, id)
            if contacts:
                detail["selected_contacts"] = [dict(r.items()) for r in contacts]
        return detail

    detail = await services().store.run(run)
    if detail is None:
        raise not_found(CAMPAIGN_NOT_FOUND)
    return detail


@endpoint(
    bp, "POST", "", summary="Create a draft campaign", body=CampaignCreate, response=CampaignRow, status=201
)
async def create_campaign(body: CampaignCreate) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        raise_references(
            await check_references(
                conn,
                who.organization_id,
                company_id=body.companyId,
                pipeline_id=body.pipelineId,
                audience=body.targetAudience,
            )
        )
        row = await db.create(
            conn,
            who.organization_id,
            user_id=who.user_id,
            name=body.name,
            company_id=body.companyId,
            pipeline_id=body.pipelineId,
            target_audience=audience_json(body.targetAudience),
            schedule=body.schedule.model_dump(mode="json", exclude_unset=True) if body.schedule else None,
        )
        await outbox.enqueue(
            conn,
            event_type="campaign.created",
            organization_id=who.organization_id,
            user_id=who.user_id,
            data={"campaignId": str(row["id"])},
        )
        return row

    row = await services().store.run(run)
    return dict(row.items())


@endpoint(
    bp,
    "PATCH",
    "/<id>",
    summary="Update, rename or stop a campaign",
    body=CampaignPatch,
    response=CampaignRow,
    errors=(403, 404, 409),
)
async def patch_campaign(id: uuid.UUID, body: CampaignPatch) -> dict[str, Any]:
    who = ident.current()
    given = body.model_fields_set
    if body.status == CampaignStatus.COMPLETED:
        # Stopping belongs to the lifecycle (paused campaigns stop too); on a draft the status is ignored.
        current = await services().store.run(db.get, who.organization_id, id)
        if current is not None and current["status"] in (
            CampaignStatus.ACTIVE,
            CampaignStatus.PAUSED,
            CampaignStatus.COMPLETED,
        ):
            return await stop_campaign(id)

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        if given == {"name"}:
            if not body.name:
                raise bad_request("Name is required")
            who.require_manage(current["created_by_user_id"])
            row = await db.update(conn, who.organization_id, id, {"name": body.name})
            assert row is not None
            return row
        if current["status"] not in (CampaignStatus.DRAFT, CampaignStatus.PAUSED):
            raise bad_request("Only draft or paused campaigns can be updated")
        if "name" in given and not body.name:
            raise bad_request("Name is required")
        lead = body.leadCreationSettings
        raise_references(
            await check_references(
                conn,
                who.organization_id,
                company_id=body.companyId,
                pipeline_id=body.pipelineId,
                audience=body.targetAudience,
                stage_id=lead.default_stage_id if lead else None,
                responsible_id=lead.default_responsible_id if lead else None,
            )
        )
        fields: dict[str, Any] = {}
        if "name" in given:
            fields["name"] = body.name
        if "companyId" in given:
            fields["company_id"] = body.companyId
        if "pipelineId" in given:
            fields["pipeline_id"] = body.pipelineId
        if "targetAudience" in given:
            fields["target_audience"] = audience_json(body.targetAudience)
        if "schedule" in given:
            fields["schedule"] = (
                body.schedule.model_dump(mode="json", exclude_unset=True) if body.schedule else None
            )
        if "leadCreationSettings" in given:
            fields["lead_creation_settings"] = (
                lead.model_dump(mode="json", exclude_unset=True) if lead else None
            )
        if body.status in (CampaignStatus.DRAFT, CampaignStatus.PAUSED):
            # Only between the editable states; starting and stopping go through the lifecycle.
            fields["status"] = body.status
        if not fields:
            return current
        row = await db.update(conn, who.organization_id, id, fields)
        assert row is not None
        return row

    return dict((await services().store.run(run)).items())


@endpoint(
    bp,
    "DELETE",
    "/<id>",
    summary="Delete (soft) a campaign that is not active",
    status=204,
    errors=(403, 404),
)
async def delete_campaign(id: uuid.UUID) -> None:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> None:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        who.require_manage(current["created_by_user_id"])
        if current["status"] == CampaignStatus.ACTIVE:
            raise bad_request("Cannot delete active campaign; pause it first")
        await db.soft_delete(conn, who.organization_id, id)

    await services().store.run(run)


@endpoint(
    bp,
    "POST",
    "/<id>/duplicate",
    summary="Copy a campaign as a new draft",
    response=CampaignRow,
    status=201,
    errors=(403, 404),
)
async def duplicate_campaign(id: uuid.UUID) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        source = await campaign_or_404(conn, who.organization_id, id)
        who.require_manage(source["created_by_user_id"])
        name = f"Copy of {source['name']}"
        if len(name) > 255:
            name = name[:252] + "..."
        return await db.duplicate(conn, who.organization_id, source, name=name, user_id=who.user_id)

    return dict((await services().store.run(run)).items())


@endpoint(
    bp,
    "POST",
    "/<id>/reset-progress",
    summary="Back to draft keeping the audience; all progress is cleared",
    response=CampaignRow,
    errors=(403, 404, 409),
)
async def reset_progress(id: uuid.UUID) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        who.require_manage(current["created_by_user_id"])
        if current["status"] == CampaignStatus.ACTIVE:
            raise conflict("Pause the campaign before resetting its progress")
        # Resetting deletes the ledger; a send in flight or in doubt would lose its outcome (and an
        # in-doubt message could go out again under a new key), as participant removal guards too.
        unfinished = await db.unfinished_sends(conn, id)
        if unfinished:
            raise conflict(
                f"{unfinished} send(s) of this campaign are unfinished (sending or in doubt); "
                "reset its progress once their outcome is known"
            )
        row = await db.reset_progress(conn, who.organization_id, id)
        if row is None:  # pragma: no cover - the row is locked above
            raise ApiError(409, "CONFLICT", "Campaign changed meanwhile, try again")
        return row

    return dict((await services().store.run(run)).items())
