"""``GET /api/campaigns/agents/throttle``: each BD account's pace, live from its limiter (SPEC R-API-3,
R-UI-1). Accounts without a running limiter are described from the database."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint

from campaignsvc.actors.accounts import account_policy
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.lookups import agents_sent_today
from campaignsvc.http.presenters import account_display_name
from campaignsvc.storage import leases, ramps

bp = Blueprint("throttle", __name__, url_prefix="/api/campaigns")


class AccountThrottle(BaseModel):
    bdAccountId: uuid.UUID
    displayName: str
    state: str
    blockedUntil: dt.datetime | None
    blockReason: str | None
    sentToday: int
    dailyCap: int
    lastSendAt: dt.datetime | None
    nextAllowedAt: dt.datetime | None = Field(
        description="Earliest next send with the gap, a flood block and the day's cap taken together; "
        "null: at once"
    )
    floorSeconds: float
    queueDepth: dict[str, int] = Field(description="Participants due per campaign id")
    queued: list[uuid.UUID] = Field(
        description="Campaigns with a send waiting for this account, in turn order"
    )
    sendingParticipantId: str | None
    sendsPerMinute: list[int]
    capReachedUntil: dt.datetime | None
    windowOpensAt: dt.datetime | None
    rampCap: int | None = Field(
        description="Today's budget of the account's ramp-up in its time zone (the cap is the lower of it "
        "and dailyCap); null: no ramp"
    )
    rampNextStepAt: dt.datetime | None = Field(
        description="When the ramp's budget next grows (a local midnight); null: no ramp, or it no longer grows"
    )
    ownerInstance: str | None = Field(
        description="The instance holding the account's lease (it sends for the account); null: none yet. "
        "Live pacing figures are this instance's own; an account another instance holds is described "
        "from the database"
    )


def _from_database(
    account: Mapping[str, Any], ramp: Mapping[str, Any] | None, sent_today: int, now: dt.datetime
) -> dict[str, Any]:
    """An account without a running limiter, by its rules alone (domain.pacing, as its limiter would)."""
    policy = account_policy(account, services().settings, now, ramp=ramp)
    return {
        "bdAccountId": account["id"],
        "state": policy.state(now, sent_today=sent_today),
        "blockedUntil": policy.blocked_until,
        "blockReason": policy.block_reason,
        "sentToday": sent_today,
        "dailyCap": policy.daily_cap,
        "lastSendAt": None,
        "nextAllowedAt": policy.next_start(now, sent_today=sent_today),
        "floorSeconds": policy.floor_s,
        "queueDepth": {},
        "queued": [],
        "sendingParticipantId": None,
        "sendsPerMinute": [0] * 60,
        "capReachedUntil": None,
        "windowOpensAt": None,
        "rampCap": policy.ramp_cap(now),
        "rampNextStepAt": policy.ramp_next_step_at(now),
    }


@endpoint(
    bp,
    "GET",
    "/agents/throttle",
    summary="Live pace of every BD account: state, sends today / cap, next allowed send, queue per campaign",
    response=list[AccountThrottle],
)
async def throttle() -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    accounts, sent = await agents_sent_today(ident.current(), now)
    live = {uuid.UUID(s["bdAccountId"]): s for s in services().supervisor.throttle()}
    unread = [a["id"] for a in accounts if a["id"] not in live]
    ramped = await services().store.run(ramps.for_accounts, unread, transaction=False) if unread else {}
    owners = await services().store.run(leases.owners, [a["id"] for a in accounts], transaction=False)
    out = []
    for account in accounts:
        snapshot = live.get(account["id"])
        if snapshot is None:
            item = _from_database(account, ramped.get(account["id"]), sent.get(account["id"], 0), now)
        else:
            item = {
                **snapshot,
                "bdAccountId": account["id"],
                "sentToday": max(snapshot["sentToday"], sent.get(account["id"], 0)),
            }
        item["displayName"] = account_display_name(account)
        item["ownerInstance"] = owners.get(account["id"])
        out.append(item)
    return out
