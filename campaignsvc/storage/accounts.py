"""BD account state for its limiter: settings, blocks, last send, sends counted toward the daily cap."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

# A digest of the ``bd_accounts`` columns a limiter reads (its sending rules), so a change made by anyone —
# with or without touching ``updated_at`` — shows as a different value. Read with the rules themselves, so
# a change between that read and the next comparison cannot be missed.
_RULES_VERSION = """md5(row(a.is_active, a.timezone, a.working_hours_start, a.working_hours_end, a.working_days,
                         a.max_dm_per_day, a.send_blocked_until, a.flood_wait_until, a.spam_restricted_at)::text)"""


async def limiter_state(conn: asyncpg.Connection, bd_account_id: uuid.UUID) -> dict[str, Any] | None:
    """The account's row, the version of its rules, its last send start, and its send starts of the last
    48 hours."""
    row = await conn.fetchrow(
        f"""
        SELECT a.id, a.organization_id, a.is_active, a.timezone, a.working_hours_start, a.working_hours_end,
               a.working_days, a.max_dm_per_day, a.send_blocked_until, a.flood_wait_until, a.flood_reason,
               a.spam_restricted_at, s.last_send_at, s.block_reason, {_RULES_VERSION} AS rules_version,
               s.last_call_at IS NOT NULL AND s.last_call_at >= s.last_send_at AS last_send_exact
        FROM bd_accounts a LEFT JOIN campaign_account_state s ON s.bd_account_id = a.id
        WHERE a.id = $1
        """,
        bd_account_id,
    )
    if row is None:
        return None
    starts = await conn.fetch(
        """
        SELECT claimed_at AS at FROM campaign_sends
        WHERE bd_account_id = $1 AND status = 'sent' AND sent_at > now() - interval '48 hours'
        UNION ALL
        SELECT claimed_at FROM campaign_sends
        WHERE bd_account_id = $1 AND status IN ('sending', 'in_doubt') AND claimed_at > now() - interval '48 hours'
        """,
        bd_account_id,
    )
    state = dict(row.items())
    state["recent_starts"] = sorted(r["at"] for r in starts if r["at"] is not None)
    return state


async def block(
    conn: asyncpg.Connection,
    bd_account_id: uuid.UUID,
    *,
    until: datetime,
    reason: str,
    wait_seconds: int | None,
) -> None:
    """Persist a block (FLOOD_WAIT, PEER_FLOOD, …) on the account for every campaign and instance, and
    tell the waiting participants why they wait."""
    await conn.execute(
        """
        UPDATE bd_accounts
        SET send_blocked_until = GREATEST(COALESCE(send_blocked_until, $2), $2),
            flood_wait_until = CASE WHEN $3 IN ('flood_wait', 'peer_flood') THEN $2 ELSE flood_wait_until END,
            flood_wait_seconds = COALESCE($4, flood_wait_seconds),
            flood_reason = CASE WHEN $3 IN ('flood_wait', 'peer_flood') THEN $3 ELSE flood_reason END,
            flood_last_at = CASE WHEN $3 IN ('flood_wait', 'peer_flood') THEN now() ELSE flood_last_at END,
            peer_flood_count_1h = CASE WHEN $3 = 'peer_flood' THEN peer_flood_count_1h + 1 ELSE peer_flood_count_1h END,
            updated_at = now()
        WHERE id = $1
        """,
        bd_account_id,
        until,
        reason,
        wait_seconds,
    )
    await conn.execute(
        """
        INSERT INTO campaign_account_state (bd_account_id, block_reason, updated_at) VALUES ($1, $2, now())
        ON CONFLICT (bd_account_id) DO UPDATE SET block_reason = $2, updated_at = now()
        """,
        bd_account_id,
        reason,
    )
    await conn.execute(
        """
        UPDATE campaign_participants SET waiting_reason = 'flood', updated_at = now()
        WHERE bd_account_id = $1 AND status IN ('pending', 'sent') AND next_send_at IS NOT NULL AND next_send_at < $2
        """,
        bd_account_id,
        until,
    )


async def unblock(conn: asyncpg.Connection, bd_account_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE campaign_account_state SET block_reason = NULL, updated_at = now() WHERE bd_account_id = $1",
        bd_account_id,
    )
    await conn.execute(
        """
        UPDATE campaign_participants SET waiting_reason = NULL
        WHERE bd_account_id = $1 AND waiting_reason = 'flood' AND status IN ('pending', 'sent')
        """,
        bd_account_id,
    )


async def settings_versions(
    conn: asyncpg.Connection, bd_account_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The current version of each account's sending rules (``limiter_state``'s ``rules_version``)."""
    rows = await conn.fetch(
        f"SELECT a.id, {_RULES_VERSION} AS v FROM bd_accounts a WHERE a.id = ANY($1::uuid[])",
        bd_account_ids,
    )
    return {r["id"]: r["v"] for r in rows}


async def record_call_starts(conn: asyncpg.Connection, starts: Sequence[tuple[uuid.UUID, datetime]]) -> None:
    """The real start of each account's latest Messaging call, once its outcome is known. The claim wrote
    the start it planned; the call started at that instant or a little after (the event loop's wake-up, or
    a claim that ran late), so the later of the two stays: a restart never measures the gap from too early.
    The later claim of the account's next send, if already committed, is later still and stays too."""
    if not starts:
        return
    latest: dict[uuid.UUID, datetime] = {}
    for account, at in starts:
        latest[account] = max(at, latest.get(account, at))
    latest = dict(sorted(latest.items()))  # rows locked in one order by every such statement
    await conn.execute(
        """
        INSERT INTO campaign_account_state (bd_account_id, last_send_at, last_call_at, updated_at)
        SELECT u.account, u.at, u.at, now() FROM unnest($1::uuid[], $2::timestamptz[]) AS u (account, at)
        ON CONFLICT (bd_account_id) DO UPDATE
        SET last_send_at = GREATEST(campaign_account_state.last_send_at, EXCLUDED.last_send_at),
            last_call_at = GREATEST(campaign_account_state.last_call_at, EXCLUDED.last_call_at), updated_at = now()
        """,
        list(latest),
        list(latest.values()),
    )
