"""Campaign templates and organization presets (``campaign_templates``; ``campaign_id IS NULL`` = preset).

Asyncio functions for ``Store.run``; every query is scoped by organization, and templates of soft-deleted
campaigns are invisible.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

_OF_LIVE_CAMPAIGN = """
    t.organization_id = $1 AND t.campaign_id = $2
    AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = t.campaign_id AND c.organization_id = $1
                AND c.deleted_at IS NULL)
"""


async def list_for_campaign(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT t.* FROM campaign_templates t WHERE {_OF_LIVE_CAMPAIGN} ORDER BY t.created_at, t.id",
        org,
        campaign_id,
    )


async def get(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, template_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT t.* FROM campaign_templates t WHERE t.id = $3 AND {_OF_LIVE_CAMPAIGN}",
        org,
        campaign_id,
        template_id,
    )


async def create(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    name: str,
    channel: str,
    content: str,
    conditions: dict[str, Any],
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        INSERT INTO campaign_templates (organization_id, campaign_id, name, channel, content, conditions)
        SELECT $1, c.id, $3, $4, $5, $6
        FROM campaigns c WHERE c.id = $2 AND c.organization_id = $1 AND c.deleted_at IS NULL
        RETURNING *
        """,
        org,
        campaign_id,
        name,
        channel,
        content,
        conditions,
    )
    assert row is not None, "the caller checked the campaign"
    return row


UPDATABLE = ("name", "channel", "content", "conditions")


async def update(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    template_id: uuid.UUID,
    fields: dict[str, Any],
) -> asyncpg.Record | None:
    """Set the given columns (names from ``UPDATABLE``) and ``updated_at``; returns the new row."""
    unknown = set(fields) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    sets = "".join(f"{name} = ${i}, " for i, name in enumerate(fields, start=4))
    return await conn.fetchrow(
        f"""
        UPDATE campaign_templates t SET {sets}updated_at = now()
        WHERE t.id = $3 AND {_OF_LIVE_CAMPAIGN}
        RETURNING t.*
        """,
        org,
        campaign_id,
        template_id,
        *fields.values(),
    )


async def steps_using(conn: asyncpg.Connection, template_id: uuid.UUID) -> int:
    """How many sequence steps (of any campaign) use the template."""
    return await conn.fetchval(
        "SELECT count(*)::int FROM campaign_sequences WHERE template_id = $1", template_id
    )


async def delete(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, template_id: uuid.UUID
) -> bool:
    done = await conn.fetchval(
        f"DELETE FROM campaign_templates t WHERE t.id = $3 AND {_OF_LIVE_CAMPAIGN} RETURNING t.id",
        org,
        campaign_id,
        template_id,
    )
    return done is not None


async def list_presets(conn: asyncpg.Connection, org: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT id, name, channel, content, created_at FROM campaign_templates
        WHERE organization_id = $1 AND campaign_id IS NULL
        ORDER BY name, created_at, id
        """,
        org,
    )


async def create_preset(
    conn: asyncpg.Connection, org: uuid.UUID, *, name: str, channel: str, content: str
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        INSERT INTO campaign_templates (organization_id, campaign_id, name, channel, content)
        VALUES ($1, NULL, $2, $3, $4)
        RETURNING id, name, channel, content, created_at
        """,
        org,
        name,
        channel,
        content,
    )
    assert row is not None
    return row
