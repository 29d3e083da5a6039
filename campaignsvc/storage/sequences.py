"""Sequence steps (``campaign_sequences``) joined with their template's name, channel and content.

Asyncio functions for ``Store.run``. Steps have no organization column: every query reaches them through
their campaign, scoped by organization and not soft-deleted. A step whose template is another
organization's (the original let PATCH store any template id) is never read through the join.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

_JOINED = """
    SELECT s.*, t.name AS template_name, t.channel, t.content
    FROM {source} s
    JOIN campaign_templates t ON t.id = s.template_id AND t.organization_id = $1
"""
_LIVE_CAMPAIGN = """
    EXISTS (SELECT 1 FROM campaigns c WHERE c.id = s.campaign_id AND c.organization_id = $1
            AND c.deleted_at IS NULL)
"""
_ORDER = "ORDER BY s.order_index, s.created_at, s.id"


async def list_for_campaign(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        _JOINED.format(source="campaign_sequences")
        + f" WHERE s.campaign_id = $2 AND {_LIVE_CAMPAIGN} {_ORDER}",
        org,
        campaign_id,
    )


async def get(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, step_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        _JOINED.format(source="campaign_sequences")
        + f" WHERE s.id = $3 AND s.campaign_id = $2 AND {_LIVE_CAMPAIGN}",
        org,
        campaign_id,
        step_id,
    )


async def exists(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, step_id: uuid.UUID
) -> bool:
    return bool(
        await conn.fetchval(
            f"SELECT 1 FROM campaign_sequences s WHERE s.id = $3 AND s.campaign_id = $2 AND {_LIVE_CAMPAIGN}",
            org,
            campaign_id,
            step_id,
        )
    )


async def template_of_campaign(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, template_id: uuid.UUID
) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM campaign_templates WHERE id = $3 AND campaign_id = $2 AND organization_id = $1",
            org,
            campaign_id,
            template_id,
        )
    )


COLUMNS = (
    "order_index",
    "template_id",
    "delay_hours",
    "delay_minutes",
    "conditions",
    "trigger_type",
    "is_hidden",
)


def _check(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not step columns: {sorted(unknown)}")


async def create(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, fields: dict[str, Any]
) -> asyncpg.Record:
    """Insert a step of a live campaign of ``org``; ``fields`` has every name of ``COLUMNS``."""
    _check(fields)
    names = ", ".join(fields)
    values = ", ".join(f"${i}" for i in range(3, len(fields) + 3))
    row = await conn.fetchrow(
        f"""
        WITH s AS (
            INSERT INTO campaign_sequences (campaign_id, {names})
            SELECT c.id, {values} FROM campaigns c
            WHERE c.id = $2 AND c.organization_id = $1 AND c.deleted_at IS NULL
            RETURNING *
        )
        """
        + _JOINED.format(source="s"),
        org,
        campaign_id,
        *fields.values(),
    )
    assert row is not None, "the caller checked the campaign and the template"
    return row


async def update(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    step_id: uuid.UUID,
    fields: dict[str, Any],
) -> asyncpg.Record | None:
    _check(fields)
    sets = "".join(f"{name} = ${i}, " for i, name in enumerate(fields, start=4))
    return await conn.fetchrow(
        f"""
        WITH s AS (
            UPDATE campaign_sequences s SET {sets}updated_at = now()
            WHERE s.id = $3 AND s.campaign_id = $2 AND {_LIVE_CAMPAIGN}
            RETURNING s.*
        )
        """
        + _JOINED.format(source="s"),
        org,
        campaign_id,
        step_id,
        *fields.values(),
    )


async def delete(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, step_id: uuid.UUID
) -> bool:
    done = await conn.fetchval(
        f"DELETE FROM campaign_sequences s WHERE s.id = $3 AND s.campaign_id = $2 AND {_LIVE_CAMPAIGN} "
        "RETURNING s.id",
        org,
        campaign_id,
        step_id,
    )
    return done is not None


async def stage_pipelines(
    conn: asyncpg.Connection, org: uuid.UUID, stage_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """Stage id → its pipeline, for the stages of ``stage_ids`` that belong to ``org``."""
    if not stage_ids:
        return {}
    rows = await conn.fetch(
        "SELECT id, pipeline_id FROM stages WHERE organization_id = $1 AND id = ANY($2::uuid[])",
        org,
        list(stage_ids),
    )
    return {r["id"]: r["pipeline_id"] for r in rows}


async def pipelines_of(
    conn: asyncpg.Connection, org: uuid.UUID, pipeline_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """The ids of ``pipeline_ids`` that are pipelines of ``org``."""
    if not pipeline_ids:
        return set()
    rows = await conn.fetch(
        "SELECT id FROM pipelines WHERE organization_id = $1 AND id = ANY($2::uuid[])",
        org,
        list(pipeline_ids),
    )
    return {r["id"] for r in rows}
