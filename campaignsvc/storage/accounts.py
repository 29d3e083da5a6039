"""BD account state for its limiter: settings, blocks, last send, sends counted toward the daily cap."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from campaignsvc.storage import ramps

# A digest of the ``bd_accounts`` columns a limiter reads (its sending rules) and of the account's ramp
# (``campaign_account_ramps``: a PUT, a DELETE, a step-down), so a change made by anyone — with or without
# touching ``updated_at`` — shows as a different value. Read with the rules themselves, so a change between
# that read and the next comparison cannot be missed.
_RAMP_ROW = ", ".join(f"r.{c}" for c in ramps.COLUMNS)
_RULES_VERSION = f"""md5(row(a.is_active, a.timezone, a.working_hours_start, a.working_hours_end, a.working_days,
                         a.max_dm_per_day, a.send_blocked_until, a.flood_wait_until, a.spam_restricted_at,
                         (SELECT row({_RAMP_ROW})::text FROM campaign_account_ramps r
                          WHERE r.bd_account_id = a.id))::text)"""


async def limiter_states(
    conn: asyncpg.Connection, bd_account_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Each existing account's row, its ramp (``ramp_*`` columns, NULL without one), the version of its rules, its
    last send start, and its send starts of the last 48 hours (sorted), in one statement.

    The last start is the later of two: the start the latest claim planned (``campaign_account_state``,
    written in the claim's statement) and the latest call start the ledger holds (``campaign_sends.sent_at``
    of a sent row, written with its outcome). It is *exact* when the ledger's has caught up with the plan:
    the latest call was made and recorded. Otherwise the process died between claim and outcome, and the
    call may have left a little later than planned (actors.limiter.RECOVERED_START_ALLOWANCE)."""
    rows = await conn.fetch(
        f"""
        SELECT a.id, a.organization_id, a.is_active, a.timezone, a.working_hours_start, a.working_hours_end,
               a.working_days, a.max_dm_per_day, a.send_blocked_until, a.flood_wait_until, a.flood_reason,
               a.spam_restricted_at, s.last_send_at AS planned_start, s.block_reason,
               {ramps.PREFIXED},
               {_RULES_VERSION} AS rules_version,
               (SELECT max(l.sent_at) FROM campaign_sends l
                 WHERE l.bd_account_id = a.id AND l.status = 'sent') AS recorded_start,
               ARRAY(SELECT u.at FROM (
                   SELECT l.claimed_at AS at FROM campaign_sends l
                   WHERE l.bd_account_id = a.id AND l.status = 'sent' AND l.sent_at > now() - interval '48 hours'
                   UNION ALL
                   SELECT l.claimed_at FROM campaign_sends l
                   WHERE l.bd_account_id = a.id AND l.status IN ('sending', 'in_doubt')
                     AND l.claimed_at > now() - interval '48 hours'
               ) u WHERE u.at IS NOT NULL ORDER BY u.at) AS recent_starts
        FROM bd_accounts a LEFT JOIN campaign_account_state s ON s.bd_account_id = a.id
        LEFT JOIN campaign_account_ramps r ON r.bd_account_id = a.id
        WHERE a.id = ANY($1::uuid[])
        """,
        bd_account_ids,
    )
    return {row["id"]: _limiter_state(row) for row in rows}


def _limiter_state(row: asyncpg.Record) -> dict[str, Any]:
    state = dict(row.items())
    planned, recorded = state.pop("planned_start"), state.pop("recorded_start")
    state["last_send_at"] = max((t for t in (planned, recorded) if t is not None), default=None)
    state["last_send_exact"] = recorded is not None and (planned is None or recorded >= planned)
    state["recent_starts"] = list(state["recent_starts"])
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
    """The current version of each account's sending rules (``limiter_states``'s ``rules_version``)."""
    rows = await conn.fetch(
        f"SELECT a.id, {_RULES_VERSION} AS v FROM bd_accounts a WHERE a.id = ANY($1::uuid[])",
        bd_account_ids,
    )
    return {r["id"]: r["v"] for r in rows}
