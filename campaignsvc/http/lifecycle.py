"""Lifecycle endpoints (SPEC R-LIFE-1, R-DEL-4/5, R-API-3): start, resume, pause, stop, participants/add,
retry-failed, and per-account pause/resume/remove.

Each handler runs one use case (usecases/lifecycle.py, participants.py, accounts.py) in a transaction and
publishes its messages after the commit; the response is the new state. None of them ever resets a participant's
progress.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field
from quart import Blueprint

from campaignsvc.actors.messages import ParticipantsChanged
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.models.campaigns import CampaignRow
from campaignsvc.http.models.common import Body
from campaignsvc.usecases import accounts, participants
from campaignsvc.usecases import lifecycle as uc
from campaignsvc.usecases.common import Caller, Context, Result

T = TypeVar("T")

bp = Blueprint("lifecycle", __name__, url_prefix="/api/campaigns")


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


def _publish(result: Result[T]) -> T:
    """A committed use case's value, once its messages are on the bus."""
    for message in result.messages:
        services().bus.publish(message)
    return result.value


async def _run(use_case: Any, *args: Any) -> dict[str, Any]:
    """A lifecycle use case in one transaction; its messages published after the commit."""
    return dict((_publish(await services().store.run(use_case, *args))).items())


@endpoint(
    bp,
    "POST",
    "/<id>/start",
    summary="Start a draft campaign, or resume a paused or completed one (progress is never reset)",
    response=CampaignRow,
    errors=(404,),
)
async def start_campaign(id: uuid.UUID) -> dict[str, Any]:
    """Answers once every participant is scheduled. A large audience takes two transactions: the second
    writes the rest while the campaign, active since the first, already sends — its actor is told once
    the second holds the campaign's enrolment. Should the second fail, the actor finishes the audience."""
    caller, ctx, svc = _caller(), _ctx(), services()
    started = await svc.store.run(uc.start, caller, id, ctx)
    pending = started.value.pending
    if pending is None:
        return dict(_publish(started).row.items())
    told = False

    def tell() -> None:
        nonlocal told
        if not told:
            told = True
            _publish(started)

    try:
        finished = await svc.store.run(uc.finish_start, caller, pending, ctx, tell)
    except BaseException:
        tell()
        svc.bus.publish(ParticipantsChanged(id))
        raise
    tell()
    _publish(finished)
    return dict(started.value.row.items())


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
    added = _publish(await services().store.run(participants.add, _caller(), id, body.contactIds, _ctx()))
    return {
        "inserted": added.inserted,
        "requested": added.requested,
        "eligibleWithTelegram": added.eligible_with_telegram,
        "campaignStatus": added.campaign_status,
    }


@endpoint(
    bp,
    "POST",
    "/<id>/participants/retry-failed",
    summary="Give failed participants their failed step again (same idempotency key)",
    response=Retried,
    errors=(404, 409),
)
async def retry_failed(id: uuid.UUID) -> dict[str, Any]:
    retried = _publish(await services().store.run(participants.retry_failed, _caller(), id, _ctx()))
    return {"retried": retried.retried, "campaignStatus": retried.campaign_status}


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
    result = await services().store.run(accounts.pause, _caller(), id, accountId, _ctx(), body.hours)
    return {"ok": True, "sendBlockedUntil": _publish(result)}


@endpoint(
    bp,
    "POST",
    "/<id>/accounts/<accountId>/resume",
    summary="Resume a BD account paused in this campaign; its overdue sends are spread",
    response=Ok,
    errors=(404,),
)
async def resume_account(id: uuid.UUID, accountId: uuid.UUID) -> dict[str, Any]:
    _publish(await services().store.run(accounts.resume, _caller(), id, accountId, _ctx()))
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
    removed = _publish(await services().store.run(accounts.remove, _caller(), id, accountId, _ctx()))
    return {
        "ok": True,
        "reassignedParticipants": removed.reassigned,
        "remainingBdAccountIds": [str(a) for a in removed.remaining],
    }
