"""BD account ramps (``campaign_account_ramps``): a new account's growing daily budget and its step-downs
(domain.pacing.Ramp; docs/semantics.md, "Ramp-up").

Asyncio functions for ``Store.run``. The endpoints' reads and writes are scoped by organization through
the account; the limiter reads the ramp with the account (storage/accounts.limiter_states), and a change
here changes the account's rules version, so live limiters re-read it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import asyncpg

# The ramp's columns as storage/accounts.limiter_states and the throttle read them (prefixed ``ramp_``);
# actors/accounts.account_ramp turns them into a domain.pacing.Ramp.
COLUMNS = (
    "start_per_day",
    "increase_per_day",
    "max_per_day",
    "started_on",
    "step_down_budget",
    "stepped_down_at",
    "step_down_until",
    "step_down_reason",
)
PREFIXED = ", ".join(f"r.{c} AS ramp_{c}" for c in COLUMNS)


async def get(conn: asyncpg.Connection, account_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM campaign_account_ramps WHERE bd_account_id = $1", account_id)


async def put(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    *,
    start_per_day: int,
    increase_per_day: int,
    max_per_day: int,
    started_on: dt.date,
) -> asyncpg.Record:
    """Set the account's ramp. A step-down in force is kept: the budget stays the lower of the new ramp's
    and the stepped-down one until the latter has grown past it."""
    row = await conn.fetchrow(
        """
        INSERT INTO campaign_account_ramps (bd_account_id, start_per_day, increase_per_day, max_per_day, started_on)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (bd_account_id) DO UPDATE
        SET start_per_day = EXCLUDED.start_per_day, increase_per_day = EXCLUDED.increase_per_day,
            max_per_day = EXCLUDED.max_per_day, started_on = EXCLUDED.started_on, updated_at = now()
        RETURNING *
        """,
        account_id,
        start_per_day,
        increase_per_day,
        max_per_day,
        started_on,
    )
    assert row is not None
    return row


async def delete(conn: asyncpg.Connection, account_id: uuid.UUID) -> bool:
    """Remove the account's ramp (its step-down with it); False when it had none."""
    deleted = await conn.fetchval(
        "DELETE FROM campaign_account_ramps WHERE bd_account_id = $1 RETURNING 1", account_id
    )
    return deleted is not None


async def for_accounts(
    conn: asyncpg.Connection, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, asyncpg.Record]:
    """The ramps of the given accounts, by account (columns prefixed ``ramp_``, as limiter_states has them)."""
    if not account_ids:
        return {}
    rows = await conn.fetch(
        f"SELECT r.bd_account_id, {PREFIXED} FROM campaign_account_ramps r WHERE r.bd_account_id = ANY($1::uuid[])",
        list(account_ids),
    )
    return {r["bd_account_id"]: r for r in rows}


async def for_step_down(conn: asyncpg.Connection, account_id: uuid.UUID) -> asyncpg.Record | None:
    """The account's ramp (prefixed columns) with what its budget is counted by (zone, own cap), locked
    until the transaction ends; None when the account has no ramp."""
    return await conn.fetchrow(
        f"""
        SELECT {PREFIXED}, a.timezone, a.max_dm_per_day
        FROM campaign_account_ramps r JOIN bd_accounts a ON a.id = r.bd_account_id
        WHERE r.bd_account_id = $1
        FOR UPDATE OF r
        """,
        account_id,
    )


async def set_step_down(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    *,
    budget: int,
    at: dt.datetime,
    until: dt.datetime,
    reason: str,
) -> None:
    await conn.execute(
        """
        UPDATE campaign_account_ramps
        SET step_down_budget = $2, stepped_down_at = $3, step_down_until = $4, step_down_reason = $5,
            updated_at = now()
        WHERE bd_account_id = $1
        """,
        account_id,
        budget,
        at,
        until,
        reason,
    )
