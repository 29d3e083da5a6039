"""Leads owed to the CRM pipeline (R-LIFE-4): which participants need one, and recording the result.

A participant owes a lead when its trigger happened (``lead_due_at`` set in the same transaction as the
first send or the reply); ``lead_created_at`` marks it done, so the pipeline is called once per
participant across restarts (a repeated call is answered 409 with the existing lead, which counts as done).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from campaignsvc.storage import outbox


async def due(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT cp.id, cp.campaign_id, cp.contact_id, cp.bd_account_id, cp.channel_id, cp.status, cp.replied_at,
               c.organization_id, c.pipeline_id, c.created_by_user_id, c.lead_creation_settings,
               COALESCE((cp.metadata ->> 'leadAttempts')::int, 0) AS attempts,
               COALESCE(
                   (SELECT s.id FROM stages s
                    WHERE s.id = NULLIF(c.lead_creation_settings ->> 'default_stage_id', '')::uuid
                      AND s.pipeline_id = c.pipeline_id),
                   (SELECT s.id FROM stages s WHERE s.pipeline_id = c.pipeline_id ORDER BY s.order_index, s.id LIMIT 1)
               ) AS stage_id
        FROM campaign_participants cp JOIN campaigns c ON c.id = cp.campaign_id
        WHERE cp.lead_due_at IS NOT NULL AND cp.lead_created_at IS NULL AND cp.lead_due_at <= now()
        ORDER BY cp.lead_due_at
        LIMIT $1
        """,
        limit,
    )


async def next_due_at(conn: asyncpg.Connection) -> datetime | None:
    return await conn.fetchval(
        "SELECT min(lead_due_at) FROM campaign_participants WHERE lead_due_at IS NOT NULL AND lead_created_at IS NULL"
    )


async def created(
    conn: asyncpg.Connection, item: asyncpg.Record, lead_id: uuid.UUID | None, *, on_reply: bool
) -> None:
    """Mark the lead done; announce it (``lead.created.from.campaign``) so the CRM links the conversation,
    and on a reply log it on the lead — once, not again when the lead already existed."""
    done = await conn.fetchval(
        """
        UPDATE campaign_participants SET lead_id = $2, lead_created_at = now(), lead_due_at = NULL, updated_at = now()
        WHERE id = $1 AND lead_created_at IS NULL
        RETURNING id
        """,
        item["id"],
        lead_id,
    )
    if done is None or lead_id is None:
        return
    conversation_id = await conn.fetchval(
        """
        SELECT id FROM conversations
        WHERE organization_id = $1 AND bd_account_id = $2 AND channel = 'telegram' AND channel_id = $3
        """,
        item["organization_id"],
        item["bd_account_id"],
        item["channel_id"],
    )
    lead_exists = await conn.fetchval("SELECT 1 FROM leads WHERE id = $1", lead_id)
    if on_reply and lead_exists:
        await conn.execute(
            """
            INSERT INTO lead_activity_log (lead_id, type, metadata)
            VALUES ($1, 'campaign_reply_received', $2), ($1, 'lead_created', $3)
            """,
            lead_id,
            {"campaign_id": str(item["campaign_id"])},
            {
                "source": "campaign",
                "campaign_id": str(item["campaign_id"]),
                "conversation_id": str(conversation_id) if conversation_id else None,
            },
        )
    data: dict[str, object] = {
        "leadId": str(lead_id),
        "contactId": str(item["contact_id"]),
        "campaignId": str(item["campaign_id"]),
        "organizationId": str(item["organization_id"]),
        "pipelineId": str(item["pipeline_id"]),
        "stageId": str(item["stage_id"]) if item["stage_id"] else None,
    }
    if conversation_id:
        data["conversationId"] = str(conversation_id)
    if item["replied_at"] is not None:
        data["repliedAt"] = item["replied_at"].isoformat().replace("+00:00", "Z")
    await outbox.enqueue(
        conn, event_type="lead.created.from.campaign", organization_id=item["organization_id"], data=data
    )


async def postpone(conn: asyncpg.Connection, participant_id: uuid.UUID, until: datetime, error: str) -> None:
    await conn.execute(
        """
        UPDATE campaign_participants
        SET lead_due_at = $2,
            metadata = COALESCE(metadata, '{}'::jsonb)
                       || jsonb_build_object('leadAttempts', COALESCE((metadata ->> 'leadAttempts')::int, 0) + 1,
                                             'leadError', $3::text)
        WHERE id = $1
        """,
        participant_id,
        until,
        error[:500],
    )


async def give_up(conn: asyncpg.Connection, participant_id: uuid.UUID, error: str) -> None:
    await conn.execute(
        """
        UPDATE campaign_participants
        SET lead_due_at = NULL, metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object('leadError', $2::text)
        WHERE id = $1
        """,
        participant_id,
        error[:500],
    )
