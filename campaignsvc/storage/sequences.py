"""Sequence steps (``campaign_sequences``) joined with their template's name, channel and content.

Asyncio functions for ``Store.run``. Steps have no organization column: every query reaches them through
their campaign, scoped by organization and not soft-deleted. A step whose template is another
organization's (the original let PATCH store any template id) is never read through the join.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import step_from_row

# A step as the API shows it (the original's columns; not step_key, which is the ledger's business).
STEP_COLUMNS = """s.id, s.campaign_id, s.order_index, s.template_id, s.delay_hours, s.delay_minutes, s.conditions,
           s.created_at, s.updated_at, s.trigger_type, s.is_hidden"""
_JOINED = (
    """
    SELECT """
    + STEP_COLUMNS
    + """, t.name AS template_name, t.channel, t.content, s.auto_winner AS "autoWinner",
           COALESCE((SELECT jsonb_agg(jsonb_build_object('id', v.id, 'templateId', v.template_id,
                                                         'weight', v.weight, 'templateName', vt.name)
                                      ORDER BY v.created_at, v.id)
                     FROM campaign_step_variants v
                     LEFT JOIN campaign_templates vt ON vt.id = v.template_id AND vt.organization_id = $1
                     WHERE v.step_id = s.id), '[]'::jsonb) AS variants
    FROM {source} s
    JOIN campaign_templates t ON t.id = s.template_id AND t.organization_id = $1
"""
)
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
    "auto_winner",
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
    before = await _order(conn, campaign_id)
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
    await follow_steps(conn, campaign_id, before)
    return row


async def update(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    step_id: uuid.UUID,
    fields: dict[str, Any],
) -> asyncpg.Record | None:
    _check(fields)
    before = await _order(conn, campaign_id)
    sets = "".join(f"{name} = ${i}, " for i, name in enumerate(fields, start=4))
    row = await conn.fetchrow(
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
    if row is not None and "order_index" in fields:
        await follow_steps(conn, campaign_id, before)
    return row


async def delete(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, step_id: uuid.UUID
) -> bool:
    before = await _order(conn, campaign_id)
    done = await conn.fetchval(
        f"DELETE FROM campaign_sequences s WHERE s.id = $3 AND s.campaign_id = $2 AND {_LIVE_CAMPAIGN} "
        "RETURNING s.id",
        org,
        campaign_id,
        step_id,
    )
    if done is not None:
        await follow_steps(conn, campaign_id, before)
    return done is not None


# --- participants follow their step through edits (docs/semantics.md, "Editing a sequence") ------------


async def _order(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        f"SELECT s.id FROM campaign_sequences s WHERE s.campaign_id = $1 {_ORDER}", campaign_id
    )
    return [r["id"] for r in rows]


async def wait_for_sends_in_flight(
    conn: asyncpg.Connection, campaign_id: uuid.UUID, timeout_s: float
) -> bool:
    """Wait until no send of the campaign is claimed without an outcome (``sending``): an outcome is recorded
    with the positions of the sequence it was claimed with, so an edit that moves positions must come after
    it. False when one is still under way after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM campaign_sends WHERE campaign_id = $1 AND status = 'sending')",
        campaign_id,
    ):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def follow_steps(conn: asyncpg.Connection, campaign_id: uuid.UUID, before: Sequence[uuid.UUID]) -> None:
    """After one step was added, moved or deleted (same transaction, campaign locked, not active): every
    participant keeps waiting for the same step at its new position. Those waiting for a deleted step move
    on as if it had been skipped now; those who have received nothing yet start with the new first step.

    Rows placed by a rule are first parked at ``-1 - position`` so that the position map, which speaks of
    old positions, cannot move them a second time; the last statement turns them back."""
    rows = await conn.fetch(
        """
        SELECT s.id, s.order_index, s.created_at, s.trigger_type, s.delay_hours, s.delay_minutes,
               s.is_hidden, s.template_id, s.conditions, s.step_key, now() AS now
        FROM campaign_sequences s WHERE s.campaign_id = $1
        """,
        campaign_id,
    )
    steps = st.ordered(step_from_row(r) for r in rows)
    change = st.reposition(before, [s.id for s in steps])
    if not rows:
        if change.orphaned is not None:
            # No step left: those who got something are done; the rest wait for a first step.
            await conn.execute(
                """
                UPDATE campaign_participants SET status = 'completed', next_send_at = NULL, waiting_reason = NULL,
                       current_step = 0, updated_at = now()
                WHERE campaign_id = $1 AND status = 'sent'
                """,
                campaign_id,
            )
        return
    now = rows[0]["now"]
    if change.orphaned is not None and change.resume_at is not None:
        plan = st.plan_from(steps, change.resume_at, now)
        await _park(conn, campaign_id, change.orphaned, plan, len(steps))
    if change.first_changed and change.orphaned != 0:
        await _park(conn, campaign_id, 0, st.plan_from(steps, 0, now), len(steps), starting=True)
    if change.moved:
        olds, news = zip(*change.moved.items(), strict=True)
        await conn.execute(
            """
            UPDATE campaign_participants cp SET current_step = m.new, updated_at = now()
            FROM unnest($2::int[], $3::int[]) AS m (old, new)
            WHERE cp.campaign_id = $1 AND cp.current_step = m.old
            """,
            campaign_id,
            list(olds),
            list(news),
        )
    await conn.execute(
        "UPDATE campaign_participants SET current_step = -1 - current_step WHERE campaign_id = $1 AND current_step < 0",
        campaign_id,
    )


async def _park(
    conn: asyncpg.Connection,
    campaign_id: uuid.UUID,
    at_step: int,
    plan: st.Plan,
    end: int,
    *,
    starting: bool = False,
) -> None:
    """Participants still going at position ``at_step`` take ``plan`` (parked at ``-1 - position``): a
    step due after its delay from now (those who have not started keep a due time they have), a reply to
    wait for, or the end. ``starting``: only those who have received nothing yet."""
    match plan:
        case st.Due(index=index, at=at):
            due = "COALESCE(next_send_at, $4)" if starting else "$4"
            values = f"current_step = -1 - $3::int, next_send_at = {due}, waiting_reason = NULL"
            args: tuple[Any, ...] = (index, at)
        case st.WaitReply(index=index):
            values = "current_step = -1 - $3::int, next_send_at = NULL, waiting_reason = 'reply'"
            args = (index,)
        case _:
            values = "current_step = -1 - $3::int, status = 'completed', next_send_at = NULL, waiting_reason = NULL"
            args = (end,)
    only = "AND status = 'pending' AND last_sent_at IS NULL" if starting else ""
    await conn.execute(
        f"""
        UPDATE campaign_participants SET {values}, updated_at = now()
        WHERE campaign_id = $1 AND current_step = $2 AND status IN ('pending', 'sent') {only}
        """,
        campaign_id,
        at_step,
        *args,
    )


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
