"""Campaign rows: list with KPIs, detail, create, update, soft delete, duplicate, reset.

Every function is an asyncio function for ``Store.run(fn, ...)`` and is scoped by organization; soft-deleted
campaigns are invisible to all of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from campaignsvc.storage import sequences

# KPI columns shared by the list and the detail (original-v1 §2.3).
_KPIS = """
    u.email AS owner_email,
    COALESCE(NULLIF(TRIM(CONCAT_WS(' ', up.first_name, up.last_name)), ''), u.email) AS owner_name,
    k.total_participants, k.total_sent, k.total_replied,
    COALESCE(r.total_read, 0) AS total_read,
    v.total_converted_to_shared_chat, v.total_won, v.total_revenue
"""
_KPI_JOINS = """
    LEFT JOIN users u ON u.id = c.created_by_user_id AND u.organization_id = c.organization_id
    LEFT JOIN user_profiles up ON up.user_id = u.id
    LEFT JOIN LATERAL (
        SELECT count(*)::int AS total_participants,
               count(*) FILTER (WHERE cp.last_sent_at IS NOT NULL)::int AS total_sent,
               count(*) FILTER (WHERE cp.status = 'replied')::int AS total_replied
        FROM campaign_participants cp WHERE cp.campaign_id = c.id
    ) k ON true
    LEFT JOIN LATERAL (
        SELECT count(DISTINCT s.campaign_participant_id)::int AS total_read
        FROM campaign_sends s
        JOIN messages m ON m.id = s.message_id AND m.organization_id = c.organization_id
        WHERE s.campaign_id = c.id AND s.status = 'sent' AND m.status = 'read'
    ) r ON true
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE cv.shared_chat_created_at IS NOT NULL)::int AS total_converted_to_shared_chat,
               count(*) FILTER (WHERE cv.won_at IS NOT NULL)::int AS total_won,
               COALESCE(sum(cv.revenue_amount) FILTER (WHERE cv.won_at IS NOT NULL), 0)::float8 AS total_revenue
        FROM conversations cv WHERE cv.campaign_id = c.id AND cv.organization_id = c.organization_id
    ) v ON true
"""


async def list_with_kpis(
    conn: asyncpg.Connection, org: uuid.UUID, status: str | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int, asyncpg.Record]:
    rows = await conn.fetch(
        f"""
        SELECT c.*, {_KPIS}
        FROM campaigns c {_KPI_JOINS}
        WHERE c.organization_id = $1 AND c.deleted_at IS NULL AND ($2::text IS NULL OR c.status = $2)
        ORDER BY c.created_at DESC, c.id DESC
        LIMIT $3 OFFSET $4
        """,
        org,
        status,
        limit,
        offset,
    )
    totals = await conn.fetchrow(
        """
        WITH scope AS (
            SELECT id FROM campaigns
            WHERE organization_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR status = $2)
        )
        SELECT (SELECT count(*) FROM scope)::int AS total,
               (SELECT count(*) FROM campaign_participants cp JOIN scope ON scope.id = cp.campaign_id
                 WHERE cp.last_sent_at IS NOT NULL)::int AS total_sent,
               (SELECT count(*) FROM campaign_participants cp JOIN scope ON scope.id = cp.campaign_id
                 WHERE cp.status = 'replied')::int AS total_replied,
               (SELECT count(*) FROM conversations cv JOIN scope ON scope.id = cv.campaign_id
                 WHERE cv.organization_id = $1 AND cv.won_at IS NOT NULL)::int AS total_won
        """,
        org,
        status,
    )
    assert totals is not None
    return rows, totals["total"], totals


async def get(conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM campaigns WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL",
        campaign_id,
        org,
    )


async def get_for_update(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> asyncpg.Record | None:
    """The campaign row locked until the end of the caller's transaction (status transitions).

    A start still writing its audience (migrations/0009) is waited for first: the change then sees every
    participant, as it did when a start was one transaction. That lock comes before the campaign's, in
    the order the writer takes them (the rows it inserts lock the campaign for their foreign key)."""
    await conn.execute(
        "SELECT 1 FROM campaign_enrolments WHERE campaign_id = $1 FOR SHARE",
        campaign_id,
    )
    return await conn.fetchrow(
        "SELECT * FROM campaigns WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL FOR UPDATE",
        campaign_id,
        org,
    )


async def get_with_kpis(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        SELECT c.*, {_KPIS}
        FROM campaigns c {_KPI_JOINS}
        WHERE c.id = $1 AND c.organization_id = $2 AND c.deleted_at IS NULL
        """,
        campaign_id,
        org,
    )


# Rows the original service wrote may reference another organization's templates or contacts (its §7
# allowed it): every join below names the organization, so such rows are never shown.


async def templates_of(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM campaign_templates WHERE campaign_id = $1 AND organization_id = $2 ORDER BY created_at, id",
        campaign_id,
        org,
    )


async def sequences_of(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""
        SELECT {sequences.STEP_COLUMNS}, t.name AS template_name, t.channel, t.content
        FROM campaign_sequences s JOIN campaign_templates t ON t.id = s.template_id AND t.organization_id = $2
        WHERE s.campaign_id = $1
        ORDER BY s.order_index, s.created_at, s.id
        """,
        campaign_id,
        org,
    )


async def selected_contacts(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT ct.id, ct.first_name, ct.last_name, ct.display_name, ct.username, ct.telegram_id, ct.email, ct.phone
        FROM campaign_participants cp JOIN contacts ct ON ct.id = cp.contact_id AND ct.organization_id = $2
        WHERE cp.campaign_id = $1
        ORDER BY cp.enqueue_order ASC NULLS LAST, cp.created_at ASC, cp.id
        """,
        campaign_id,
        org,
    )


async def bd_accounts_by_id(
    conn: asyncpg.Connection, org: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, asyncpg.Record]:
    if not ids:
        return {}
    rows = await conn.fetch(
        "SELECT * FROM bd_accounts WHERE organization_id = $1 AND id = ANY($2::uuid[])", org, list(ids)
    )
    return {r["id"]: r for r in rows}


async def create(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    *,
    user_id: uuid.UUID | None,
    name: str,
    company_id: uuid.UUID | None,
    pipeline_id: uuid.UUID | None,
    target_audience: dict[str, Any],
    schedule: dict[str, Any] | None,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        INSERT INTO campaigns (organization_id, company_id, pipeline_id, name, status, target_audience, schedule,
                               created_by_user_id)
        VALUES ($1, $2, $3, $4, 'draft', $5, $6, $7)
        RETURNING *
        """,
        org,
        company_id,
        pipeline_id,
        name,
        target_audience,
        schedule,
        user_id,
    )
    assert row is not None
    return row


UPDATABLE = (
    "name",
    "company_id",
    "pipeline_id",
    "target_audience",
    "schedule",
    "status",
    "lead_creation_settings",
)


async def update(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, fields: dict[str, Any]
) -> asyncpg.Record | None:
    """Set the given columns (names from ``UPDATABLE``) and ``updated_at``; returns the new row."""
    unknown = set(fields) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = list(fields)
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=3))
    return await conn.fetchrow(
        f"""
        UPDATE campaigns SET {sets}{", " if sets else ""}updated_at = now()
        WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL
        RETURNING *
        """,
        campaign_id,
        org,
        *fields.values(),
    )


async def soft_delete(conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID) -> bool:
    done = await conn.fetchval(
        """
        UPDATE campaigns SET deleted_at = now(), updated_at = now()
        WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL AND status <> 'active'
        RETURNING id
        """,
        campaign_id,
        org,
    )
    return done is not None


async def duplicate(
    conn: asyncpg.Connection, org: uuid.UUID, source: asyncpg.Record, *, name: str, user_id: uuid.UUID | None
) -> asyncpg.Record:
    """A draft copy with the same settings, templates, steps (their A/B variants and autoWinner too) and
    audience (no progress)."""
    audience = dict(source["target_audience"] or {})
    audience.pop("contactIds", None)
    copy = await conn.fetchrow(
        """
        INSERT INTO campaigns (organization_id, company_id, pipeline_id, name, status, target_audience, schedule,
                               lead_creation_settings, created_by_user_id)
        VALUES ($1, $2, $3, $4, 'draft', $5, $6, $7, $8)
        RETURNING *
        """,
        org,
        source["company_id"],
        source["pipeline_id"],
        name,
        audience,
        source["schedule"],
        source["lead_creation_settings"],
        user_id,
    )
    assert copy is not None
    await conn.execute(
        """
        WITH src AS (
            SELECT id, gen_random_uuid() AS new_id, name, channel, content, conditions, media_url, media_type,
                   media_metadata, variant_group, variant_weight, created_at
            FROM campaign_templates WHERE campaign_id = $1 AND organization_id = $3
        ), ins AS (
            INSERT INTO campaign_templates (id, organization_id, campaign_id, name, channel, content, conditions,
                                            media_url, media_type, media_metadata, variant_group, variant_weight,
                                            created_at)
            SELECT new_id, $3, $2, name, channel, content, conditions, media_url, media_type, media_metadata,
                   variant_group, variant_weight, created_at
            FROM src
        ), steps AS (
            SELECT s.*, gen_random_uuid() AS new_id, src.new_id AS new_template_id
            FROM campaign_sequences s JOIN src ON src.id = s.template_id
            WHERE s.campaign_id = $1
        ), copied AS (
            INSERT INTO campaign_sequences (id, campaign_id, order_index, template_id, delay_hours, delay_minutes,
                                            conditions, trigger_type, is_hidden, auto_winner, created_at)
            SELECT new_id, $2, order_index, new_template_id, delay_hours, delay_minutes, conditions, trigger_type,
                   is_hidden, auto_winner, created_at
            FROM steps
        )
        -- Each step's A/B variants, on the copies of their templates.
        INSERT INTO campaign_step_variants (step_id, template_id, weight, created_at)
        SELECT steps.new_id, src.new_id, v.weight, v.created_at
        FROM campaign_step_variants v
        JOIN steps ON steps.id = v.step_id
        JOIN src ON src.id = v.template_id
        """,
        source["id"],
        copy["id"],
        org,
    )
    await conn.execute(
        """
        INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, status, current_step, enqueue_order)
        SELECT $2, cp.contact_id, cp.bd_account_id, 'pending', 0, cp.enqueue_order
        FROM campaign_participants cp JOIN contacts ct ON ct.id = cp.contact_id AND ct.organization_id = $3
        WHERE cp.campaign_id = $1
        """,
        source["id"],
        copy["id"],
        org,
    )
    return copy


async def unfinished_sends(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> int:
    """Ledger rows whose outcome is not known yet (``sending``, ``in_doubt``)."""
    return await conn.fetchval(
        "SELECT count(*)::int FROM campaign_sends WHERE campaign_id = $1 AND status IN ('sending', 'in_doubt')",
        campaign_id,
    )


async def reset_progress(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> asyncpg.Record | None:
    """Back to draft with the same audience and no progress.

    Participants are re-created (same contact, account and queue position, new ids), so the send ledger
    goes with the old rows and a later run gets new idempotency keys — reusing the old keys would make
    the Messaging Service return the old messages instead of sending."""
    row = await conn.fetchrow(
        """
        UPDATE campaigns SET status = 'draft', status_reason = NULL, started_at = NULL, completed_at = NULL,
                             updated_at = now()
        WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL AND status <> 'active'
        RETURNING *
        """,
        campaign_id,
        org,
    )
    if row is None:
        return None
    await conn.execute(
        """
        WITH old AS (
            DELETE FROM campaign_participants WHERE campaign_id = $1
            RETURNING contact_id, bd_account_id, channel_id, enqueue_order, created_at
        )
        INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, channel_id, status, current_step,
                                           enqueue_order, created_at)
        SELECT $1, contact_id, bd_account_id, channel_id, 'pending', 0, enqueue_order, created_at FROM old
        """,
        campaign_id,
    )
    return row


_OWNED_TABLES = {
    "companies": "SELECT id FROM companies WHERE organization_id = $1 AND id = ANY($2::uuid[])",
    "pipelines": "SELECT id FROM pipelines WHERE organization_id = $1 AND id = ANY($2::uuid[])",
    "stages": "SELECT id FROM stages WHERE organization_id = $1 AND id = ANY($2::uuid[])",
    "bd_accounts": "SELECT id FROM bd_accounts WHERE organization_id = $1 AND id = ANY($2::uuid[])",
    "contacts": "SELECT id FROM contacts WHERE organization_id = $1 AND id = ANY($2::uuid[])",
    "users": "SELECT id FROM users WHERE organization_id = $1 AND id = ANY($2::uuid[])",
}


async def foreign_ids(
    conn: asyncpg.Connection, org: uuid.UUID, wanted: Mapping[str, Sequence[uuid.UUID]]
) -> dict[str, list[uuid.UUID]]:
    """For each table, the ids in ``wanted`` that are NOT rows of this organization."""
    missing: dict[str, list[uuid.UUID]] = {}
    for table, ids in wanted.items():
        ids = list(dict.fromkeys(ids))
        if not ids:
            continue
        found = {r["id"] for r in await conn.fetch(_OWNED_TABLES[table], org, ids)}
        absent = [i for i in ids if i not in found]
        if absent:
            missing[table] = absent
    return missing


async def stage_in_pipeline(
    conn: asyncpg.Connection, org: uuid.UUID, stage_id: uuid.UUID, pipeline_id: uuid.UUID
) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM stages WHERE id = $1 AND pipeline_id = $2 AND organization_id = $3",
            stage_id,
            pipeline_id,
            org,
        )
    )
