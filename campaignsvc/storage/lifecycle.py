"""Campaign status transitions, each guarded in its WHERE clause (never check-then-write)."""

from __future__ import annotations

import uuid

import asyncpg


async def pause(conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID) -> asyncpg.Record | None:
    """active → paused; None when the campaign is missing or not active."""
    return await conn.fetchrow(
        """
        UPDATE campaigns SET status = 'paused', status_reason = NULL, updated_at = now()
        WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL AND status = 'active'
        RETURNING *
        """,
        campaign_id,
        org,
    )


async def stop(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, reason: str | None
) -> asyncpg.Record | None:
    """active|paused → completed; None when the campaign is missing or in another status."""
    return await conn.fetchrow(
        """
        UPDATE campaigns SET status = 'completed', status_reason = $3, completed_at = now(), updated_at = now()
        WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL AND status IN ('active', 'paused')
        RETURNING *
        """,
        campaign_id,
        org,
        reason,
    )
