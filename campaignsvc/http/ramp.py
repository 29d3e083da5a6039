"""``/api/campaigns/agents/:accountId/ramp``: a BD account's ramp-up (docs/semantics.md, "Ramp-up").

GET answers the ramp with today's budget and its next step (404 when the account has none, as for an
account of another organization or outside the caller's role scope); PUT sets it (a step-down in force is
kept); DELETE removes it. After a change commits, ``AccountChanged`` goes on the bus: the account's live
limiter re-reads its rules (the ramp is part of their version, so other processes' limiters follow too).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from quart import Blueprint

from campaignsvc.actors.accounts import account_policy
from campaignsvc.actors.messages import AccountChanged
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import not_found
from campaignsvc.http.models.ramp import RampBody, RampOut
from campaignsvc.http.presenters import visible_accounts
from campaignsvc.storage import ramps as db

bp = Blueprint("ramp", __name__, url_prefix="/api/campaigns")

ACCOUNT_NOT_FOUND = "BD account not found"
NO_RAMP = "No ramp is set for this BD account"


async def _account(conn: asyncpg.Connection, who: ident.Identity, account_id: uuid.UUID) -> asyncpg.Record:
    """The caller's account (organization and role scope), else 404."""
    row = await conn.fetchrow(
        "SELECT * FROM bd_accounts WHERE id = $1 AND organization_id = $2", account_id, who.organization_id
    )
    if row is None or not visible_accounts(who, [row]):
        raise not_found(ACCOUNT_NOT_FOUND)
    return row


def _out(account: Mapping[str, Any], ramp: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    prefixed = {f"ramp_{c}": ramp[c] for c in db.COLUMNS}
    policy = account_policy(account, services().settings, now, ramp=prefixed)
    assert policy.ramp is not None
    step_down = policy.ramp.step_down
    return {
        "bdAccountId": ramp["bd_account_id"],
        "startPerDay": ramp["start_per_day"],
        "increasePerDay": ramp["increase_per_day"],
        "maxPerDay": ramp["max_per_day"],
        "startedOn": ramp["started_on"].isoformat(),  # a date, not the encoder's midnight timestamp
        "budgetToday": policy.ramp_cap(now),
        "nextStepAt": policy.ramp_next_step_at(now),
        "stepDown": None
        if step_down is None
        else {
            "budget": step_down.budget,
            "at": step_down.at,
            "until": step_down.until,
            "reason": ramp["step_down_reason"],
        },
        "updatedAt": ramp["updated_at"],
    }


@endpoint(
    bp,
    "GET",
    "/agents/<accountId>/ramp",
    summary="A BD account's ramp-up: its daily budget today and when it next grows",
    response=RampOut,
    errors=(404,),
)
async def get_ramp(accountId: uuid.UUID) -> dict[str, Any]:
    who, now = ident.current(), dt.datetime.now(dt.UTC)

    async def run(conn: asyncpg.Connection) -> tuple[asyncpg.Record, asyncpg.Record | None]:
        return await _account(conn, who, accountId), await db.get(conn, accountId)

    account, ramp = await services().store.run(run, transaction=False)
    if ramp is None:
        raise not_found(NO_RAMP)
    return _out(account, ramp, now)


@endpoint(
    bp,
    "PUT",
    "/agents/<accountId>/ramp",
    summary="Set a BD account's ramp-up: startPerDay on startedOn, increasePerDay more each local day, "
    "never above maxPerDay",
    body=RampBody,
    response=RampOut,
    errors=(404,),
)
async def put_ramp(accountId: uuid.UUID, body: RampBody) -> dict[str, Any]:
    who, now = ident.current(), dt.datetime.now(dt.UTC)

    async def run(conn: asyncpg.Connection) -> tuple[asyncpg.Record, asyncpg.Record]:
        account = await _account(conn, who, accountId)
        ramp = await db.put(
            conn,
            accountId,
            start_per_day=body.startPerDay,
            increase_per_day=body.increasePerDay,
            max_per_day=body.maxPerDay,
            started_on=body.startedOn,
        )
        return account, ramp

    account, ramp = await services().store.run(run)
    services().bus.publish(AccountChanged(accountId))
    return _out(account, ramp, now)


@endpoint(
    bp,
    "DELETE",
    "/agents/<accountId>/ramp",
    summary="Remove a BD account's ramp-up: its own daily cap alone applies again",
    status=204,
    errors=(404,),
)
async def delete_ramp(accountId: uuid.UUID) -> None:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> bool:
        await _account(conn, who, accountId)
        return await db.delete(conn, accountId)

    if not await services().store.run(run):
        raise not_found(NO_RAMP)
    services().bus.publish(AccountChanged(accountId))
