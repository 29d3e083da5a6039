"""Lifecycle endpoints (SPEC R-LIFE-1, R-DEL-4/5, R-API-3): start, resume, pause, stop, participants/add,
retry-failed, and per-account pause/resume/remove.

Each writes the state change (and its event, through the outbox) in one transaction, then tells the
supervisor; the response is the new state. None of them ever resets a participant's progress.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, Field
from quart import Blueprint

from campaignsvc.actors import enrolment
from campaignsvc.actors.messages import (
    CampaignActivated,
    CampaignDeactivated,
    ControlMessage,
    ParticipantsChanged,
)
from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.templates import TemplateError
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import bad_request, conflict, not_found, validation
from campaignsvc.http.models.campaigns import CampaignRow
from campaignsvc.http.models.common import Body
from campaignsvc.http.presenters import audience_account_ids
from campaignsvc.http.scope import campaign_or_404, require_contacts
from campaignsvc.storage import campaigns as campaigns_db
from campaignsvc.storage import dispatch, outbox
from campaignsvc.storage import enrolment as enrolment_db
from campaignsvc.storage import lifecycle as db

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


async def _event(
    conn: asyncpg.Connection, who: ident.Identity, event_type: str, campaign_id: uuid.UUID
) -> None:
    await outbox.enqueue(
        conn,
        event_type=event_type,
        organization_id=who.organization_id,
        user_id=who.user_id,
        data={"campaignId": str(campaign_id)},
    )


def _after_change(*messages: ControlMessage) -> None:
    for message in messages:
        services().bus.publish(message)


async def _plan(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> CampaignPlan:
    campaign, steps = await dispatch.load_campaign(conn, campaign_id)
    assert campaign is not None
    return CampaignPlan.from_rows(campaign, steps, reply_wait_hours=services().settings.reply_wait_hours)


_FIRST_WAITS = "The first step cannot wait for a reply: nothing has been sent yet"


def _first_step_sendable(plan: CampaignPlan) -> bool:
    """Enrolment places each participant at the first step's due time; an ``after_reply`` first step
    has none (sequences may be edited so while the campaign is paused or completed)."""
    return isinstance(st.plan_first(plan.steps, dt.datetime.now(dt.UTC)), st.Due)


def _check_startable(plan: CampaignPlan) -> None:
    if not st.visible_count(plan.steps):
        raise validation("Add at least one sequence step before starting the campaign")
    if not _first_step_sendable(plan):
        raise validation(_FIRST_WAITS)
    broken = [
        {"path": f"sequences.{i}", "message": str(plan.templates[s.template_id])}
        for i, s in enumerate(plan.steps)
        if not s.is_hidden and isinstance(plan.templates.get(s.template_id), TemplateError)
    ]
    if broken:
        raise validation("A step's template cannot be sent as written", broken)


def _kw() -> dict[str, Any]:
    return {"settings": services().settings, "now": dt.datetime.now(dt.UTC), "rng": random.Random()}


async def _enrol(conn: asyncpg.Connection, plan: CampaignPlan) -> enrolment.Enrolled:
    try:
        return await enrolment.enrol(conn, plan, **_kw())
    except enrolment.NoSendingAccount as exc:
        raise validation(str(exc)) from None


@endpoint(
    bp,
    "POST",
    "/<id>/start",
    summary="Start a draft campaign, or resume a paused or completed one (progress is never reset)",
    response=CampaignRow,
    errors=(404,),
)
async def start_campaign(id: uuid.UUID) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> tuple[asyncpg.Record, str]:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        if current["status"] not in ("draft", "paused", "completed"):
            raise bad_request("Campaign can be started only from draft, paused or completed")
        plan = await _plan(conn, id)
        _check_startable(plan)
        if current["status"] == "paused":
            return await _resume(conn, who, plan), "campaign.resumed"
        if not await enrolment_db.participant_count(conn, id):
            try:
                added = await enrolment.enrol_audience(conn, plan, current["target_audience"] or {}, **_kw())
            except enrolment.NoSendingAccount as exc:
                raise validation(str(exc)) from None
            if not added.scheduled:
                raise validation(
                    "No contacts found matching the audience criteria. Add contacts with Telegram data or check audience settings."
                )
        else:
            await _enrol(conn, plan)
        if not await db.open_participants(conn, id):
            raise validation(
                "No participants could be enriched. Ensure contacts have Telegram ID or username and an active BD account is selected."
            )
        row = await db.activate(conn, who.organization_id, id, ("draft", "completed"))
        assert row is not None
        await _event(conn, who, "campaign.started", id)
        return row, "campaign.started"

    row, _ = await services().store.run(run)
    _after_change(CampaignActivated(id))
    return dict(row.items())


async def _reopen(
    conn: asyncpg.Connection, who: ident.Identity, campaign_id: uuid.UUID
) -> tuple[str, CampaignActivated]:
    """completed → active, because participants to send to were added or given another try."""
    await db.activate(conn, who.organization_id, campaign_id, ("completed",))
    await _event(conn, who, "campaign.resumed", campaign_id)
    return "active", CampaignActivated(campaign_id)


async def _resume(conn: asyncpg.Connection, who: ident.Identity, plan: CampaignPlan) -> asyncpg.Record:
    await _enrol(conn, plan)
    await enrolment.respread_overdue(conn, plan, **_kw())
    row = await db.activate(conn, who.organization_id, plan.id, ("paused",))
    assert row is not None
    await _event(conn, who, "campaign.resumed", plan.id)
    return row


@endpoint(
    bp,
    "POST",
    "/<id>/resume",
    summary="Resume a paused campaign where it stopped; overdue sends are spread, not burst",
    response=CampaignRow,
    errors=(404, 409),
)
async def resume_campaign(id: uuid.UUID) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        if current["status"] != "paused":
            raise conflict(f"Only a paused campaign can be resumed (it is {current['status']})")
        plan = await _plan(conn, id)
        _check_startable(plan)
        return await _resume(conn, who, plan)

    row = await services().store.run(run)
    _after_change(CampaignActivated(id))
    return dict(row.items())


@endpoint(bp, "POST", "/<id>/pause", summary="Pause an active campaign", response=CampaignRow, errors=(404,))
async def pause_campaign(id: uuid.UUID) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record | None:
        row = await db.pause(conn, who.organization_id, id)
        if row is not None:
            await _event(conn, who, "campaign.paused", id)
        return row

    row = await services().store.run(run)
    if row is None:
        raise not_found("Campaign not found or not active")
    _after_change(CampaignDeactivated(id))
    return dict(row.items())


async def stop_campaign(id: uuid.UUID) -> dict[str, Any]:
    """active|paused → completed. Used by ``POST /:id/stop`` and ``PATCH {status: "completed"}``."""
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        if current["status"] == "completed":
            return current
        row = await db.stop(conn, who.organization_id, id, reason="stopped")
        if row is None:
            raise conflict("Only active or paused campaigns can be stopped")
        await _event(conn, who, "campaign.completed", id)
        return row

    row = await services().store.run(run)
    _after_change(CampaignDeactivated(id))
    return dict(row.items())


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
    requested = list(dict.fromkeys(body.contactIds))[:MAX_ADD]

    async def run(conn: asyncpg.Connection) -> tuple[dict[str, Any], ControlMessage | None]:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        await require_contacts(conn, who.organization_id, body.contactIds, used=requested)
        plan = await _plan(conn, id)
        if not st.visible_count(plan.steps):
            raise validation("Add at least one sequence step first")
        if current["status"] != "draft" and not _first_step_sendable(plan):
            # Added contacts are scheduled at once (and a completed campaign reopens), so refuse before
            # inserting rather than leave participants that can never be sent to.
            raise validation(_FIRST_WAITS + "; change the first step before adding contacts")
        inserted, eligible = await enrolment_db.add_contacts(conn, id, who.organization_id, requested)
        status = current["status"]
        message: ControlMessage | None = None
        if status != "draft" and inserted:
            await _enrol(conn, plan)
            message = ParticipantsChanged(id)
            if status == "completed":
                status, message = await _reopen(conn, who, id)
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

    async def run(conn: asyncpg.Connection) -> tuple[dict[str, Any], ControlMessage | None]:
        current = await campaign_or_404(conn, who.organization_id, id, lock=True)
        if current["status"] == "draft":
            raise conflict("A draft campaign has nothing to retry")
        count = await db.retry_failed(conn, id)
        status = current["status"]
        message: ControlMessage | None = None
        if count:
            plan = await _plan(conn, id)
            await enrolment.respread_overdue(conn, plan, **_kw())
            message = ParticipantsChanged(id)
            if status == "completed":
                status, message = await _reopen(conn, who, id)
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

    async def run(conn: asyncpg.Connection) -> None:
        await _campaign_and_account(conn, who, id, accountId)
        await db.resume_account(conn, id, accountId)
        plan = await _plan(conn, id)
        await enrolment.respread_overdue(conn, plan, bd_account_id=accountId, **_kw())

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
            plan = await _plan(conn, id)
            # Without a sendable first step the moved participants stay unassigned; resuming requires
            # one and places them then.
            if _first_step_sendable(plan):
                await _enrol(conn, plan)
        return {"ok": True, "reassignedParticipants": moved, "remainingBdAccountIds": remaining}

    result = await services().store.run(run)
    _after_change(ParticipantsChanged(id))
    return result
