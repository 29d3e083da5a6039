"""Changing who a running campaign sends to (SPEC R-DEL-4): adding contacts and giving failed participants
another try. Each is one transaction; participants it makes due are announced with
:class:`ParticipantsChanged`, and a completed campaign with someone to send to again reopens.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
import attrs

from campaignsvc.actors.messages import ControlMessage, ParticipantsChanged
from campaignsvc.domain import steps as st
from campaignsvc.domain.status import CampaignStatus
from campaignsvc.storage import enrolment as enrolment_db
from campaignsvc.storage import lifecycle as db
from campaignsvc.usecases import lifecycle
from campaignsvc.usecases.common import Caller, Context, Result, campaign, require_contacts
from campaignsvc.usecases.errors import Conflict, Invalid

MAX_ADD = 2000


@attrs.frozen
class Added:
    inserted: int
    requested: int
    eligible_with_telegram: int
    campaign_status: str


@attrs.frozen
class Retried:
    retried: int
    campaign_status: str


async def _announce(
    conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID, status: str
) -> tuple[str, ControlMessage]:
    """The campaign's new status and the message for participants made due: a completed campaign reopens."""
    if status == CampaignStatus.COMPLETED:
        return CampaignStatus.ACTIVE, await lifecycle.reopen(conn, caller, campaign_id)
    return status, ParticipantsChanged(campaign_id)


async def add(
    conn: asyncpg.Connection,
    caller: Caller,
    campaign_id: uuid.UUID,
    contact_ids: Sequence[uuid.UUID],
    ctx: Context,
) -> Result[Added]:
    """Contacts of the organization join the campaign (the first ``MAX_ADD`` distinct ones); scheduled at
    once unless the campaign is a draft."""
    current = await campaign(conn, caller.organization_id, campaign_id, lock=True)
    requested = list(dict.fromkeys(contact_ids))[:MAX_ADD]
    await require_contacts(conn, caller.organization_id, contact_ids, used=requested)
    plan = await lifecycle.plan_of(conn, campaign_id, ctx)
    if not st.visible_count(plan.steps):
        raise Invalid("Add at least one sequence step first")
    status = current["status"]
    if status != CampaignStatus.DRAFT and not lifecycle.first_step_sendable(plan, ctx):
        # Added contacts are scheduled at once (and a completed campaign reopens), so refuse before
        # inserting rather than leave participants that can never be sent to.
        raise Invalid(lifecycle.FIRST_STEP_WAITS + "; change the first step before adding contacts")
    inserted, eligible = await enrolment_db.add_contacts(conn, campaign_id, caller.organization_id, requested)
    messages: tuple[ControlMessage, ...] = ()
    if status != CampaignStatus.DRAFT and inserted:
        await lifecycle.enrol(conn, plan, ctx)
        status, message = await _announce(conn, caller, campaign_id, status)
        messages = (message,)
    return Result(Added(inserted, len(requested), eligible, status), messages)


async def retry_failed(
    conn: asyncpg.Connection, caller: Caller, campaign_id: uuid.UUID, ctx: Context
) -> Result[Retried]:
    """Failed participants get their failed step again (same ledger row, same idempotency key), spread
    over the window rather than all at once."""
    current = await campaign(conn, caller.organization_id, campaign_id, lock=True)
    if current["status"] == CampaignStatus.DRAFT:
        raise Conflict("A draft campaign has nothing to retry")
    count = await db.retry_failed(conn, campaign_id)
    status = current["status"]
    messages: tuple[ControlMessage, ...] = ()
    if count:
        await lifecycle.respread(conn, await lifecycle.plan_of(conn, campaign_id, ctx), ctx)
        status, message = await _announce(conn, caller, campaign_id, status)
        messages = (message,)
    return Result(Retried(count, status), messages)
