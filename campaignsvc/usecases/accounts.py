"""One BD account within one campaign (SPEC R-DEL-5, original-v1 §2.6): pause it there only, resume it
(its overdue sends spread, not burst), or take it out of the audience (its participants not yet contacted
move to the campaign's other accounts). Other campaigns keep using the account."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import attrs

from campaignsvc.actors.messages import ParticipantsChanged
from campaignsvc.domain.audience import Audience
from campaignsvc.domain.status import CampaignStatus
from campaignsvc.storage import campaigns as campaigns_db
from campaignsvc.storage import lifecycle as db
from campaignsvc.usecases import lifecycle
from campaignsvc.usecases.common import Caller, Context, Result, campaign
from campaignsvc.usecases.errors import NotFound, WrongState

DEFAULT_PAUSE = dt.timedelta(hours=2)  # as the original


@attrs.frozen
class Removed:
    reassigned: int
    remaining: tuple[uuid.UUID, ...]


async def _campaign_and_account(
    conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID, account_id: uuid.UUID
) -> tuple[asyncpg.Record, Audience]:
    current = await campaign(conn, caller.organization_id, campaign_id, lock=True)
    foreign = await campaigns_db.foreign_ids(conn, caller.organization_id, {"bd_accounts": [account_id]})
    if foreign.get("bd_accounts"):
        raise NotFound("BD account not found")
    audience = Audience.parse(current["target_audience"])
    if account_id not in audience.account_ids:
        raise WrongState("BD account is not part of this campaign audience")
    return current, audience


async def pause(
    conn: asyncpg.Connection,
    caller: Caller,
    campaign_id: uuid.UUID,
    account_id: uuid.UUID,
    ctx: Context,
    hours: float | None = None,
) -> Result[dt.datetime]:
    """The account sends nothing for this campaign until the returned time."""
    await _campaign_and_account(conn, caller, campaign_id, account_id)
    until = ctx.now + (DEFAULT_PAUSE if hours is None else dt.timedelta(hours=hours))
    await db.pause_account(conn, campaign_id, account_id, until)
    return Result(until, (ParticipantsChanged(campaign_id),))


async def resume(
    conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID, account_id: uuid.UUID, ctx: Context
) -> Result[None]:
    await _campaign_and_account(conn, caller, campaign_id, account_id)
    await db.resume_account(conn, campaign_id, account_id)
    await lifecycle.respread(conn, await lifecycle.plan_of(conn, campaign_id, ctx), ctx, account_id)
    return Result(None, (ParticipantsChanged(campaign_id),))


async def remove(
    conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID, account_id: uuid.UUID, ctx: Context
) -> Result[Removed]:
    """The account leaves the audience; WrongState when it is the only one."""
    current, audience = await _campaign_and_account(conn, caller, campaign_id, account_id)
    remaining = tuple(a for a in audience.account_ids if a != account_id)
    if not remaining:
        raise WrongState(
            "Cannot remove the only sending account. Add another account first or pause the campaign."
        )
    await db.set_audience(conn, campaign_id, audience.without_account(account_id))
    moved = await db.detach_unstarted(conn, campaign_id, account_id)
    if moved and current["status"] != CampaignStatus.DRAFT:
        plan = await lifecycle.plan_of(conn, campaign_id, ctx)
        # Without a sendable first step the moved participants stay unassigned; resuming requires one and
        # places them then.
        if lifecycle.first_step_sendable(plan, ctx):
            await lifecycle.enrol(conn, plan, ctx)
    return Result(Removed(moved, remaining), (ParticipantsChanged(campaign_id),))
