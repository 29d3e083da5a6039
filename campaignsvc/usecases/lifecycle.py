"""A campaign's lifecycle (SPEC R-LIFE-1, R-DEL-5): start, resume, pause, stop — and the checks and steps
they share with the participant and account changes (enrolment, reopening a completed campaign).

Each transition is one transaction (its event goes to the outbox in it) and returns the new campaign row
with the message the actors need; none of them ever resets a participant's progress. A start from a draft
with a large audience is the exception: it activates the campaign with the participants due first, and
:func:`finish_start` writes the rest in a second transaction (actors/enrolment.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import asyncpg
import attrs

from campaignsvc.actors import enrolment
from campaignsvc.actors.messages import CampaignActivated, CampaignDeactivated, ParticipantsChanged
from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.status import CampaignStatus, ParticipantStatus
from campaignsvc.domain.templates import TemplateError
from campaignsvc.storage import campaigns as campaigns_db
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


@attrs.frozen
class Started:
    """A started campaign's row, and the participants its start placed but left to :func:`finish_start`."""

    row: asyncpg.Record
    pending: enrolment.Pending | None = None


async def start(
    conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID, ctx: Context
) -> Result[Started]:
    """draft → active with its audience enrolled; paused → active (a resume); completed → active with
    the participants not yet scheduled. Progress is never reset. A large audience is only partly written
    here: the rest is ``pending``, for :func:`finish_start` once this transaction has committed."""
    current = await campaign(conn, caller.organization_id, campaign_id, lock=True)
    if current["status"] not in (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED):
        raise WrongState("Campaign can be started only from draft, paused or completed")
    plan = await plan_of(conn, campaign_id, ctx)
    check_startable(plan, ctx)
    if current["status"] == CampaignStatus.PAUSED:
        resumed = await _resume(conn, caller, plan, ctx)
        return Result(Started(resumed.value), resumed.messages)
    pending = None
    if not await enrolment_db.participant_count(conn, campaign_id):
        try:
            added = await enrolment.enrol_audience(
                conn, plan, settings=ctx.settings, now=ctx.now, rng=ctx.rng
            )
        except enrolment.NoSendingAccount as exc:
            raise Invalid(str(exc)) from None
        if not added.scheduled:
            raise Invalid(NO_AUDIENCE)
        pending = added.pending
    else:
        await enrol(conn, plan, ctx)
    if not await db.open_participants(conn, campaign_id):
        raise Invalid(NOBODY_TO_SEND_TO)
    row = await db.activate(
        conn, caller.organization_id, campaign_id, (CampaignStatus.DRAFT, CampaignStatus.COMPLETED)
    )
    assert row is not None
    await record_event(conn, caller, "campaign.started", campaign_id)
    if pending is not None:
        pending = attrs.evolve(pending, version=row["updated_at"])
    return Result(Started(row, pending), (CampaignActivated(campaign_id),))


async def finish_start(
    conn: asyncpg.Connection,
    caller: Caller,
    pending: enrolment.Pending,
    ctx: Context,
    held: Callable[[], None] = lambda: None,
) -> Result[int]:
    """The second transaction of a large start: the participants it placed and did not write, written;
    the campaign's enrolment ends. Returns how many were written (0 when someone else finished it).

    It holds the campaign's enrolment while it writes, so changes to the campaign wait for it, and calls
    ``held`` once it does: the start's messages go out then, so the campaign's actor, which finishes any
    enrolment nobody holds, finds this one held. A change that came in between the two transactions (the
    campaign's ``updated_at`` moved: its accounts or audience may differ) makes it place the audience's
    missing contacts again from what the campaign is now."""
    campaign_id = pending.campaign_id
    mine = await enrolment_db.hold_enrolment(conn, campaign_id, wait=True)
    held()
    if not mine:
        return Result(0)
    current = await campaigns_db.get(conn, caller.organization_id, campaign_id)
    if current is None:  # deleted meanwhile
        await enrolment_db.end_enrolment(conn, campaign_id)
        return Result(0)
    if current["updated_at"] == pending.version:
        written = await enrolment.write_pending(conn, pending)
        await enrolment_db.end_enrolment(conn, campaign_id)
    else:
        plan = await plan_of(conn, campaign_id, ctx)
        try:
            written = await enrolment.finish_audience(
                conn, plan, settings=ctx.settings, now=ctx.now, rng=ctx.rng
            )
        except enrolment.NoSendingAccount as exc:
            raise Invalid(str(exc)) from None
    return Result(written, (ParticipantsChanged(campaign_id),))


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
