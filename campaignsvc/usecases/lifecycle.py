"""A campaign's lifecycle (SPEC R-LIFE-1, R-DEL-5): start, resume, pause, stop — and the checks and steps
they share with the participant and account changes (enrolment, reopening a completed campaign).

Each transition is one transaction (its event goes to the outbox in it) and returns the new campaign row
with the message the actors need; none of them ever resets a participant's progress.
"""

from __future__ import annotations

import uuid

import asyncpg

from campaignsvc.actors import enrolment
from campaignsvc.actors.messages import CampaignActivated, CampaignDeactivated
from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.status import CampaignStatus, ParticipantStatus
from campaignsvc.domain.templates import TemplateError
from campaignsvc.storage import dispatch
from campaignsvc.storage import enrolment as enrolment_db
from campaignsvc.storage import lifecycle as db
from campaignsvc.usecases.common import Caller, Context, Result, campaign, record_event
from campaignsvc.usecases.errors import Conflict, Invalid, NotFound, WrongState

FIRST_STEP_WAITS = "The first step cannot wait for a reply: nothing has been sent yet"
NO_AUDIENCE = (
    "No contacts found matching the audience criteria. Add contacts with Telegram data or check audience "
    "settings."
)
NOBODY_TO_SEND_TO = (
    "No participants could be enriched. Ensure contacts have Telegram ID or username and an active BD "
    "account is selected."
)


async def plan_of(conn: asyncpg.Connection, campaign_id: uuid.UUID, ctx: Context) -> CampaignPlan:
    row, steps = await dispatch.load_campaign(conn, campaign_id)
    assert row is not None
    return CampaignPlan.from_rows(row, steps, reply_wait_hours=ctx.settings.reply_wait_hours)


def first_step_sendable(plan: CampaignPlan, ctx: Context) -> bool:
    """Enrolment places each participant at the first step's due time; an ``after_reply`` first step
    has none (sequences may be edited so while the campaign is paused or completed)."""
    return isinstance(st.plan_first(plan.steps, ctx.now), st.Due)


def check_startable(plan: CampaignPlan, ctx: Context) -> None:
    if not st.visible_count(plan.steps):
        raise Invalid("Add at least one sequence step before starting the campaign")
    if not first_step_sendable(plan, ctx):
        raise Invalid(FIRST_STEP_WAITS)
    broken = [
        {"path": f"sequences.{i}", "message": str(plan.templates[s.template_id])}
        for i, s in enumerate(plan.steps)
        if not s.is_hidden and isinstance(plan.templates.get(s.template_id), TemplateError)
    ]
    if broken:
        raise Invalid("A step's template cannot be sent as written", broken)


async def enrol(conn: asyncpg.Connection, plan: CampaignPlan, ctx: Context) -> enrolment.Enrolled:
    """Schedule the participants never scheduled; Invalid when no account of the campaign can send."""
    try:
        return await enrolment.enrol(conn, plan, settings=ctx.settings, now=ctx.now, rng=ctx.rng)
    except enrolment.NoSendingAccount as exc:
        raise Invalid(str(exc)) from None


async def respread(
    conn: asyncpg.Connection, plan: CampaignPlan, ctx: Context, bd_account_id: uuid.UUID | None = None
) -> int:
    """Overdue participants spread over the window at the gap from now (R-DEL-5), not all due at once."""
    return await enrolment.respread_overdue(
        conn, plan, settings=ctx.settings, now=ctx.now, rng=ctx.rng, bd_account_id=bd_account_id
    )


async def reopen(conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID) -> CampaignActivated:
    """completed → active, because participants to send to were added or given another try."""
    await db.activate(conn, caller.organization_id, campaign_id, (CampaignStatus.COMPLETED,))
    await record_event(conn, caller, "campaign.resumed", campaign_id)
    return CampaignActivated(campaign_id)


async def start(
    conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID, ctx: Context
) -> Result[asyncpg.Record]:
    """draft → active with its audience enrolled; paused → active (a resume); completed → active with
    the participants not yet scheduled. Progress is never reset."""
    current = await campaign(conn, caller.organization_id, campaign_id, lock=True)
    if current["status"] not in (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED):
        raise WrongState("Campaign can be started only from draft, paused or completed")
    plan = await plan_of(conn, campaign_id, ctx)
    check_startable(plan, ctx)
    if current["status"] == CampaignStatus.PAUSED:
        return await _resume(conn, caller, plan, ctx)
    if not await enrolment_db.participant_count(conn, campaign_id):
        try:
            added = await enrolment.enrol_audience(
                conn, plan, settings=ctx.settings, now=ctx.now, rng=ctx.rng
            )
        except enrolment.NoSendingAccount as exc:
            raise Invalid(str(exc)) from None
        if not added.scheduled:
            raise Invalid(NO_AUDIENCE)
    else:
        await enrol(conn, plan, ctx)
    if not await db.open_participants(conn, campaign_id):
        raise Invalid(NOBODY_TO_SEND_TO)
    row = await db.activate(
        conn, caller.organization_id, campaign_id, (CampaignStatus.DRAFT, CampaignStatus.COMPLETED)
    )
    assert row is not None
    await record_event(conn, caller, "campaign.started", campaign_id)
    return Result(row, (CampaignActivated(campaign_id),))


async def resume(
    conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID, ctx: Context
) -> Result[asyncpg.Record]:
    """paused → active where it stopped; overdue sends are spread, not burst."""
    current = await campaign(conn, caller.organization_id, campaign_id, lock=True)
    if current["status"] != CampaignStatus.PAUSED:
        raise Conflict(f"Only a paused campaign can be resumed (it is {current['status']})")
    plan = await plan_of(conn, campaign_id, ctx)
    check_startable(plan, ctx)
    return await _resume(conn, caller, plan, ctx)


async def _resume(
    conn: asyncpg.Connection, caller: Caller, plan: CampaignPlan, ctx: Context
) -> Result[asyncpg.Record]:
    await enrol(conn, plan, ctx)
    await respread(conn, plan, ctx)
    row = await db.activate(conn, caller.organization_id, plan.id, (CampaignStatus.PAUSED,))
    assert row is not None
    await record_event(conn, caller, "campaign.resumed", plan.id)
    return Result(row, (CampaignActivated(plan.id),))


async def pause(conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID) -> Result[asyncpg.Record]:
    """active → paused: queued sends are dropped; a send already handed to Messaging finishes."""
    row = await db.pause(conn, caller.organization_id, campaign_id)
    if row is None:
        raise NotFound("Campaign not found or not active")
    await record_event(conn, caller, "campaign.paused", campaign_id)
    return Result(row, (CampaignDeactivated(campaign_id),))


async def stop(conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID) -> Result[asyncpg.Record]:
    """active|paused → completed (a completed campaign stays as it is)."""
    current = await campaign(conn, caller.organization_id, campaign_id, lock=True)
    if current["status"] == CampaignStatus.COMPLETED:
        return Result(current, (CampaignDeactivated(campaign_id),))
    row = await db.stop(conn, caller.organization_id, campaign_id, reason=ParticipantStatus.STOPPED)
    if row is None:
        raise Conflict("Only active or paused campaigns can be stopped")
    await record_event(conn, caller, "campaign.completed", campaign_id)
    return Result(row, (CampaignDeactivated(campaign_id),))
