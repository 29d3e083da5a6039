"""What a preview needs about one contact: its fields, its company, whether it replied in the campaign,
and the stages of its leads (for step conditions). Asyncio functions for ``Store.run``, scoped by
organization."""

from __future__ import annotations

import uuid

import asyncpg


async def contact(conn: asyncpg.Connection, org: uuid.UUID, contact_id: uuid.UUID) -> asyncpg.Record | None:
    """The contact (not deleted) with ``company_name``."""
    return await conn.fetchrow(
        """
        SELECT ct.id, ct.first_name, ct.last_name, ct.display_name, ct.username, ct.telegram_id, ct.email,
               ct.phone, co.name AS company_name
        FROM contacts ct
        LEFT JOIN companies co ON co.id = ct.company_id AND co.organization_id = ct.organization_id
        WHERE ct.id = $2 AND ct.organization_id = $1 AND ct.deleted_at IS NULL
        """,
        org,
        contact_id,
    )


async def has_replied(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, contact_id: uuid.UUID
) -> bool:
    return bool(
        await conn.fetchval(
            """
            SELECT 1 FROM campaign_participants cp
            JOIN campaigns cg ON cg.id = cp.campaign_id AND cg.organization_id = $1
            WHERE cp.campaign_id = $2 AND cp.contact_id = $3
              AND (cp.replied_at IS NOT NULL OR cp.status = 'replied')
            """,
            org,
            campaign_id,
            contact_id,
        )
    )


async def lead_stages(
    conn: asyncpg.Connection, org: uuid.UUID, contact_id: uuid.UUID
) -> dict[uuid.UUID, uuid.UUID]:
    """Pipeline → stage of the contact's leads that are not deleted."""
    rows = await conn.fetch(
        "SELECT pipeline_id, stage_id FROM leads WHERE organization_id = $1 AND contact_id = $2 "
        "AND deleted_at IS NULL",
        org,
        contact_id,
    )
    return {r["pipeline_id"]: r["stage_id"] for r in rows}
