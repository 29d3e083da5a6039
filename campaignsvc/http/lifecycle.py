"""Lifecycle endpoints (SPEC R-LIFE-1, R-DEL-4/5, R-API-3): start, resume, pause, stop, participants/add,
retry-failed, and per-account pause/resume/remove.

The transitions are use cases (usecases/lifecycle.py); each handler runs one in a transaction and publishes
its messages after the commit; the response is the new state. None of them ever resets a participant's
progress.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, Field
from quart import Blueprint

from campaignsvc.actors.messages import (
    ControlMessage,
    ParticipantsChanged,
)
from campaignsvc.domain import steps as st
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import bad_request, conflict, not_found, validation
from campaignsvc.http.models.campaigns import CampaignRow
from campaignsvc.http.models.common import Body
from campaignsvc.http.presenters import audience_account_ids
from campaignsvc.http.scope import campaign_or_404, require_contacts
from campaignsvc.storage import campaigns as campaigns_db
from campaignsvc.storage import enrolment as enrolment_db
from campaignsvc.storage import lifecycle as db
from campaignsvc.usecases import lifecycle as uc
from campaignsvc.usecases.common import Caller, Context

bp = Blueprint("lifecycle", __name__, url_prefix="/api/campaigns")

MAX_ADD = 2000


class ParticipantsAdd(Body):
    contactIds: Annotated[list[uuid.UUID], Field(min_length=1, max_length=10_000)]


class ParticipantsAdded(BaseModel):
    inserted: int
    requested: int
    eligibleWithTelegram: int
    campaignStatus: str


class AccountPause(Body):
    hours: float | None = Field(
        None, gt=0, le=720, description="How long; 2 hours by default, as the original"
    )


class AccountPaused(BaseModel):
    ok: bool
    sendBlockedUntil: dt.datetime


class Ok(BaseModel):
    ok: bool


class AccountRemoved(BaseModel):
    ok: bool
    reassignedParticipants: int
    remainingBdAccountIds: list[str]


class Retried(BaseModel):
    retried: int
    campaignStatus: str


def _caller() -> Caller:
    who = ident.current()
    return Caller(who.organization_id, who.user_id)


def _ctx() -> Context:
    return Context.current(services().settings)


def _after_change(*messages: ControlMessage) -> None:
    for message in messages:
        services().bus.publish(message)


async def _run(use_case: Any, *args: Any) -> dict[str, Any]:
    """A lifecycle use case in one transaction; its messages published after the commit."""
    result = await services().store.run(use_case, *args)
    _after_change(*result.messages)
    return dict(result.value.items())


@endpoint(
    bp,
    "POST",
    "/<id>/start",
    summary="Start a draft campaign, or resume a paused or completed one (progress is never reset)",
    response=CampaignRow,
    errors=(404,),
)
async def start_campaign(id: uuid.UUID) -> dict[str, Any]:
    return await _run(uc.start, _caller(), id, _ctx())


@endpoint(
    bp,
    "POST",
    "/<id>/resume",
    summary="Resume a paused campaign where it stopped; overdue sends are spread, not burst",
    response=CampaignRow,
    errors=(404, 409),
)
async def resume_campaign(id: uuid.UUID) -> dict[str, Any]:
    return await _run(uc.resume, _caller(), id, _ctx())


@endpoint(bp, "POST", "/<id>/pause", summary="Pause an active campaign", response=CampaignRow, errors=(404,))
async def pause_campaign(id: uuid.UUID) -> dict[str, Any]:
    return await _run(uc.pause, _caller(), id)


async def stop_campaign(id: uuid.UUID) -> dict[str, Any]:
    """active|paused → completed. Used by ``POST /:id/stop`` and ``PATCH {status: "completed"}``."""
    return await _run(uc.stop, _caller(), id)


@endpoint(
    bp,
    "POST",
    "/<id>/stop",
    summary="Stop an active or paused campaign (→ completed)",
    response=CampaignRow,
    errors=(404, 409),
)
async def stop_campaign_endpoint(id: uuid.UUID) -> dict[str, Any]:
    return await stop_campaign(id)


@endpoint(
    bp,
    "POST",
    "/<id>/participants/add",
    summary="Add contacts of the organization to a campaign (scheduled at once unless it is a draft)",
    body=ParticipantsAdd,
    response=ParticipantsAdded,
    errors=(404,),
)
async def add_participants(id: uuid.UUID, body: ParticipantsAdd) -> dict[str, Any]:
    who = ident.current()
    ctx = _ctx()
    requested = list(dict.fromkeys(body.contactIds))[:MAX_ADD]

    async def run(conn: asyncpg.Connection) -> tuple[dict[str, Any], ControlMessage | None]:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        await require_contacts(conn, who.organization_id, body.contactIds, used=requested)
        plan = await uc.plan_of(conn, id, ctx)
        if not st.visible_count(plan.steps):
            raise validation("Add at least one sequence step first")
        if current["status"] != "draft" and not uc.first_step_sendable(plan, ctx):
            # Added contacts are scheduled at once (and a completed campaign reopens), so refuse before
            # inserting rather than leave participants that can never be sent to.
            raise validation(uc.FIRST_STEP_WAITS + "; change the first step before adding contacts")
        inserted, eligible = await enrolment_db.add_contacts(conn, id, who.organization_id, requested)
        status = current["status"]
        message: ControlMessage | None = None
        if status != "draft" and inserted:
            await uc.enrol(conn, plan, ctx)
            message = ParticipantsChanged(id)
            if status == "completed":
                status, message = "active", await uc.reopen(conn, _caller(), id)
        return (
            {
                "inserted": inserted,
                "requested": len(requested),
                "eligibleWithTelegram": eligible,
                "campaignStatus": status,
            },
            message,
        )

    result, message = await services().store.run(run)
    if message is not None:
        _after_change(message)
    return result


@endpoint(
    bp,
    "POST",
    "/<id>/participants/retry-failed",
    summary="Give failed participants their failed step again (same idempotency key)",
    response=Retried,
    errors=(404, 409),
)
async def retry_failed(id: uuid.UUID) -> dict[str, Any]:
    who = ident.current()
    ctx = _ctx()

    async def run(conn: asyncpg.Connection) -> tuple[dict[str, Any], ControlMessage | None]:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        if current["status"] == "draft":
            raise conflict("A draft campaign has nothing to retry")
        count = await db.retry_failed(conn, id)
        status = current["status"]
        message: ControlMessage | None = None
        if count:
            await uc.respread(conn, await uc.plan_of(conn, id, ctx), ctx)
            message = ParticipantsChanged(id)
            if status == "completed":
                status, message = "active", await uc.reopen(conn, _caller(), id)
        return {"retried": count, "campaignStatus": status}, message

    result, message = await services().store.run(run)
    if message is not None:
        _after_change(message)
    return result


async def _campaign_and_account(
    conn: asyncpg.Connection, who: ident.Identity, campaign_id: uuid.UUID, account_id: uuid.UUID
) -> tuple[asyncpg.Record, list[str]]:
    current = await campaign_or_404(conn, who.organization_id, campaign_id, lock=True)
    if (await campaigns_db.foreign_ids(conn, who.organization_id, {"bd_accounts": [account_id]})).get(
        "bd_accounts"
    ):
        raise not_found("BD account not found")
    accounts = audience_account_ids(current["target_audience"])
    if str(account_id) not in accounts:
        raise bad_request("BD account is not part of this campaign audience")
    return current, accounts


@endpoint(
    bp,
    "POST",
    "/<id>/accounts/<accountId>/pause",
    summary="Pause one BD account in this campaign only (other campaigns keep using it)",
    body=AccountPause,
    response=AccountPaused,
    errors=(404,),
)
async def pause_account(id: uuid.UUID, accountId: uuid.UUID, body: AccountPause) -> dict[str, Any]:
    who = ident.current()
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=body.hours or 2)

    async def run(conn: asyncpg.Connection) -> None:
        await _campaign_and_account(conn, who, id, accountId)
        await db.pause_account(conn, id, accountId, until)

    await services().store.run(run)
    _after_change(ParticipantsChanged(id))
    return {"ok": True, "sendBlockedUntil": until}


@endpoint(
    bp,
    "POST",
    "/<id>/accounts/<accountId>/resume",
    summary="Resume a BD account paused in this campaign; its overdue sends are spread",
    response=Ok,
    errors=(404,),
)
async def resume_account(id: uuid.UUID, accountId: uuid.UUID) -> dict[str, Any]:
    who = ident.current()
    ctx = _ctx()

    async def run(conn: asyncpg.Connection) -> None:
        await _campaign_and_account(conn, who, id, accountId)
        await db.resume_account(conn, id, accountId)
        await uc.respread(conn, await uc.plan_of(conn, id, ctx), ctx, accountId)

    await services().store.run(run)
    _after_change(ParticipantsChanged(id))
    return {"ok": True}


@endpoint(
    bp,
    "DELETE",
    "/<id>/accounts/<accountId>",
    summary="Remove a BD account from the audience; participants not yet contacted move to the others",
    response=AccountRemoved,
    errors=(404,),
)
async def remove_account(id: uuid.UUID, accountId: uuid.UUID) -> dict[str, Any]:
    who = ident.current()
    ctx = _ctx()

    async def run(conn: asyncpg.Connection) -> dict[str, Any]:
        current, accounts = await _campaign_and_account(conn, who, id, accountId)
        remaining = [a for a in accounts if a != str(accountId)]
        if not remaining:
            raise bad_request(
                "Cannot remove the only sending account. Add another account first or pause the campaign."
            )
        audience = dict(current["target_audience"] or {})
        audience.pop("bdAccountId", None)
        audience["bdAccountIds"] = remaining
        await db.set_audience(conn, id, audience)
        moved = await db.detach_unstarted(conn, id, accountId)
        if moved and current["status"] != "draft":
            plan = await uc.plan_of(conn, id, ctx)
            # Without a sendable first step the moved participants stay unassigned; resuming requires
            # one and places them then.
            if uc.first_step_sendable(plan, ctx):
                await uc.enrol(conn, plan, ctx)
        return {"ok": True, "reassignedParticipants": moved, "remainingBdAccountIds": remaining}

    result = await services().store.run(run)
    _after_change(ParticipantsChanged(id))
    return result
