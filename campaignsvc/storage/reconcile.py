"""The reconciler's SQL: participants of active campaigns overdue for longer than a bound."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from campaignsvc.storage.dispatch import held_by


async def overdue(
    conn: asyncpg.Connection, before: datetime, limit: int, owner: str | None = None
) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
    """(campaign, participant, account) of active campaigns due before ``before``, earliest first. Accounts
    paused for the campaign are left out: their participants wait on purpose; given an ``owner``, so are
    accounts that instance does not hold (another instance sends them)."""
    rows = await conn.fetch(
        f"""
        SELECT cp.campaign_id, cp.id, cp.bd_account_id
        FROM campaign_participants cp JOIN campaigns c ON c.id = cp.campaign_id
        WHERE c.status = 'active' AND c.deleted_at IS NULL
          AND cp.status IN ('pending', 'sent') AND cp.next_send_at < $1 AND cp.bd_account_id IS NOT NULL
          AND ($3::text IS NULL OR {held_by("$3")})
          AND NOT EXISTS (
              SELECT 1 FROM campaign_account_pauses p
              WHERE p.campaign_id = cp.campaign_id AND p.bd_account_id = cp.bd_account_id
                AND (p.paused_until IS NULL OR p.paused_until > now()))
        ORDER BY cp.next_send_at
        LIMIT $2
        """,
        before,
        limit,
        owner,
    )
    return [(r["campaign_id"], r["id"], r["bd_account_id"]) for r in rows]
