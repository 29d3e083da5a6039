"""A/B variants of a step (``campaign_step_variants``) and what their sends became (docs/semantics.md,
"A/B variants").

Asyncio functions for ``Store.run``. Variants have no organization column: they are reached through their
step and its campaign, which the callers have scoped by organization.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import attrs

from campaignsvc.domain.replies import POSITIVE, Intent
from campaignsvc.domain.variants import DEFAULT_MIN_SAMPLE, Arm, outcomes_of, winner

_ROW = """v.id, v.template_id AS "templateId", v.weight,
          (SELECT t.name FROM campaign_templates t WHERE t.id = v.template_id AND t.organization_id = $1)
          AS "templateName" """


async def count(conn: asyncpg.Connection, step_id: uuid.UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM campaign_step_variants WHERE step_id = $1", step_id))


async def create(
    conn: asyncpg.Connection, org: uuid.UUID, step_id: uuid.UUID, template_id: uuid.UUID, weight: int
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        WITH v AS (
            INSERT INTO campaign_step_variants (step_id, template_id, weight) VALUES ($2, $3, $4) RETURNING *
        )
        SELECT {_ROW} FROM v
        """,
        org,
        step_id,
        template_id,
        weight,
    )
    assert row is not None
    return row


async def delete(conn: asyncpg.Connection, step_id: uuid.UUID, variant_id: uuid.UUID) -> bool:
    done = await conn.fetchval(
        "DELETE FROM campaign_step_variants WHERE id = $2 AND step_id = $1 RETURNING id", step_id, variant_id
    )
    return done is not None


async def template_contents(
    conn: asyncpg.Connection, org: uuid.UUID, template_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The content of each of ``template_ids`` that is a template of ``org``."""
    if not template_ids:
        return {}
    rows = await conn.fetch(
        "SELECT id, content FROM campaign_templates WHERE organization_id = $1 AND id = ANY($2::uuid[])",
        org,
        list(template_ids),
    )
    return {r["id"]: r["content"] for r in rows}


# --- outcomes per step and arm ----------------------------------------------------------------------------


@attrs.frozen
class ArmCounts:
    step_key: int
    variant_id: uuid.UUID | None  # None: the control
    sent: int
    replied: int
    positive: int
    unsubscribed: int


# Sends per (step, arm), and each reply attributed to the arm of the latest send its participant received
# before it replied (the ledger's variant_id; sent_at is the call's start, written with the outcome).
_OUTCOMES = """
    WITH sends AS (
        SELECT s.sequence_step AS step_key, s.variant_id, count(*) AS sent
        FROM campaign_sends s
        WHERE s.campaign_id = $1 AND s.status = 'sent' AND s.sequence_step = ANY($2::int[])
        GROUP BY 1, 2
    ), replies AS (
        SELECT l.step_key, l.variant_id, count(*) AS replied,
               count(*) FILTER (WHERE cp.reply_intent = ANY($3::text[])) AS positive,
               count(*) FILTER (WHERE cp.reply_intent = $4) AS unsubscribed
        FROM campaign_participants cp
        CROSS JOIN LATERAL (
            SELECT s.sequence_step AS step_key, s.variant_id
            FROM campaign_sends s
            WHERE s.campaign_participant_id = cp.id AND s.status = 'sent' AND s.sent_at <= cp.replied_at
            ORDER BY s.sent_at DESC, s.id DESC
            LIMIT 1
        ) l
        WHERE cp.campaign_id = $1 AND cp.replied_at IS NOT NULL
        GROUP BY 1, 2
    )
    SELECT COALESCE(s.step_key, r.step_key) AS step_key, COALESCE(s.variant_id, r.variant_id) AS variant_id,
           COALESCE(s.sent, 0) AS sent, COALESCE(r.replied, 0) AS replied,
           COALESCE(r.positive, 0) AS positive, COALESCE(r.unsubscribed, 0) AS unsubscribed
    FROM sends s
    FULL JOIN replies r ON r.step_key = s.step_key AND r.variant_id IS NOT DISTINCT FROM s.variant_id
    WHERE COALESCE(s.step_key, r.step_key) = ANY($2::int[])
"""


async def outcomes(
    conn: asyncpg.Connection, campaign_id: uuid.UUID, step_keys: Sequence[int]
) -> list[ArmCounts]:
    """What the sends of each (step, arm) of ``step_keys`` became."""
    if not step_keys:
        return []
    rows = await conn.fetch(
        _OUTCOMES,
        campaign_id,
        list(step_keys),
        sorted(str(i) for i in POSITIVE),
        str(Intent.UNSUBSCRIBE),
    )
    return [
        ArmCounts(
            step_key=r["step_key"],
            variant_id=r["variant_id"],
            sent=r["sent"],
            replied=r["replied"],
            positive=r["positive"],
            unsubscribed=r["unsubscribed"],
        )
        for r in rows
    ]


async def steps_with_variants(conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID) -> list[Any]:
    """The campaign's steps in sequence order, each with its variants (``variants``: JSON, creation order)."""
    return await conn.fetch(
        """
        SELECT s.id, s.step_key, s.order_index, s.template_id, s.auto_winner, t.name AS template_name,
               COALESCE((SELECT jsonb_agg(jsonb_build_object('id', v.id, 'template_id', v.template_id,
                                                             'weight', v.weight, 'template_name', vt.name)
                                          ORDER BY v.created_at, v.id)
                         FROM campaign_step_variants v
                         LEFT JOIN campaign_templates vt ON vt.id = v.template_id AND vt.organization_id = $1
                         WHERE v.step_id = s.id), '[]'::jsonb) AS variants
        FROM campaign_sequences s
        LEFT JOIN campaign_templates t ON t.id = s.template_id AND t.organization_id = $1
        WHERE s.campaign_id = $2
        ORDER BY s.order_index, s.created_at, s.id
        """,
        org,
        campaign_id,
    )


async def winners(
    conn: asyncpg.Connection,
    campaign_id: uuid.UUID,
    steps: Mapping[uuid.UUID, tuple[int, Sequence[Arm]]],
    min_sample: int = DEFAULT_MIN_SAMPLE,
) -> dict[uuid.UUID, Arm]:
    """Step id → its winning arm, for the steps of ``steps`` (id → step key, arms) that have one now."""
    if not steps:
        return {}
    counts = await outcomes(conn, campaign_id, sorted({key for key, _ in steps.values()}))
    out: dict[uuid.UUID, Arm] = {}
    for step_id, (key, arms) in steps.items():
        mine = [c for c in counts if c.step_key == key]
        won = winner(
            outcomes_of(arms, {c.variant_id: c.sent for c in mine}, {c.variant_id: c.positive for c in mine}),
            min_sample=min_sample,
        )
        if won is not None:
            out[step_id] = won
    return out


async def step_keys(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = await conn.fetch("SELECT id, step_key FROM campaign_sequences WHERE campaign_id = $1", campaign_id)
    return {r["id"]: r["step_key"] for r in rows}
