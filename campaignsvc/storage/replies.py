"""Finding the participants an inbound message answers (original-v1 §4.6 step 3), and the inbound-event
updates to accounts and dynamic campaigns."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

# Participants a reply can concern: every non-draft, non-deleted campaign (paused included: replies are
# recorded whatever the status), participants in any status. Which of them the contact is answering is
# decided by :func:`_answering` after the rows are locked.
_CANDIDATES = """
    SELECT cp.id, cp.campaign_id, cp.contact_id, cp.bd_account_id, cp.channel_id, cp.status, cp.current_step,
           cp.next_send_at, cp.waiting_reason, cp.replied_at, cp.last_sent_at, cp.reply_intent, cp.reply_intent_by,
           c.organization_id, c.schedule, c.lead_creation_settings, c.pipeline_id, c.target_audience
    FROM campaign_participants cp JOIN campaigns c ON c.id = cp.campaign_id
    WHERE c.organization_id = $1 AND c.deleted_at IS NULL AND c.status <> 'draft'
      AND cp.status IN ('pending', 'sent', 'completed', 'failed', 'replied')
"""


async def _answering(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
    """The locked rows whose contact is answering the campaign: a step was sent, a send is unfinished
    (``sending`` or ``in_doubt``: it may have arrived), or the participant waits for the contact's message
    (an ``after_reply`` step reached by skipping). A participant nothing was tried on yet is not answered.

    The ledger is read here, in its own statement after the lock, not in the locking query: a claim
    holding the participant's lock inserts its ``sending`` row in the same transaction, and a subquery of
    the locking statement would not see that row once the lock is granted."""
    unsent = [r["id"] for r in rows if r["last_sent_at"] is None and r["waiting_reason"] != "reply"]
    unfinished: set[uuid.UUID] = set()
    if unsent:
        found = await conn.fetch(
            """
            SELECT DISTINCT campaign_participant_id AS id FROM campaign_sends
            WHERE campaign_participant_id = ANY($1::uuid[]) AND idempotency_key IS NOT NULL
              AND status IN ('sending', 'in_doubt')
            """,
            unsent,
        )
        unfinished = {r["id"] for r in found}
    return [
        r
        for r in rows
        if r["last_sent_at"] is not None or r["waiting_reason"] == "reply" or r["id"] in unfinished
    ]


async def contact_identity(
    conn: asyncpg.Connection, org: uuid.UUID, contact_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, telegram_id, username FROM contacts WHERE id = $1 AND organization_id = $2",
        contact_id,
        org,
    )


async def match_participants(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    *,
    contact_id: uuid.UUID | None,
    bd_account_id: uuid.UUID | None,
    channel_id: str | None,
    contact_telegram_id: str | None,
    contact_username: str | None,
) -> list[asyncpg.Record]:
    """Tiered like the original: (a) same contact on the same account and chat; (b) same contact on the
    same account; (c) an identity alias on the same account (same Telegram id or username under another
    contact row, or the chat itself). Only participants the contact is answering count, tier by tier.
    Rows are locked for the caller's transaction."""
    if contact_id is not None and bd_account_id is not None and channel_id:
        rows = await _answering(
            conn,
            await conn.fetch(
                _CANDIDATES
                + " AND cp.contact_id = $2 AND cp.bd_account_id = $3 AND cp.channel_id = $4 FOR UPDATE OF cp",
                org,
                contact_id,
                bd_account_id,
                channel_id,
            ),
        )
        if rows:
            return rows
    if contact_id is not None:
        rows = await _answering(
            conn,
            await conn.fetch(
                _CANDIDATES
                + " AND cp.contact_id = $2 AND ($3::uuid IS NULL OR cp.bd_account_id = $3) FOR UPDATE OF cp",
                org,
                contact_id,
                bd_account_id,
            ),
        )
        if rows:
            return rows
    if bd_account_id is None or not channel_id:
        return []
    rows = await conn.fetch(
        _CANDIDATES
        + """
          AND cp.bd_account_id = $2
          AND (cp.channel_id = $3
               OR EXISTS (SELECT 1 FROM contacts ec WHERE ec.id = cp.contact_id AND (
                   NULLIF(TRIM(ec.telegram_id), '') = $3
                   OR ($4::text IS NOT NULL AND NULLIF(TRIM(ec.telegram_id), '') = $4)
                   OR ($5::text IS NOT NULL AND NULLIF(TRIM(ec.telegram_id), '') IS NULL
                       AND lower(ltrim(ec.username, '@')) = $5))))
        FOR UPDATE OF cp
        """,
        org,
        bd_account_id,
        channel_id,
        contact_telegram_id,
        contact_username,
    )
    return await _answering(conn, rows)


async def steps_of(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT id, order_index, created_at, trigger_type, delay_hours, delay_minutes, is_hidden, template_id, conditions
        FROM campaign_sequences WHERE campaign_id = $1
        """,
        campaign_id,
    )


async def account_row(conn: asyncpg.Connection, bd_account_id: uuid.UUID | None) -> asyncpg.Record | None:
    if bd_account_id is None:
        return None
    return await conn.fetchrow(
        "SELECT id, timezone, working_hours_start, working_hours_end, working_days FROM bd_accounts WHERE id = $1",
        bd_account_id,
    )


async def mark_replied(
    conn: asyncpg.Connection,
    participant_id: uuid.UUID,
    replied_at: datetime,
    lead_due: bool,
    intent: str | None,
) -> None:
    await conn.execute(
        """
        UPDATE campaign_participants
        SET status = 'replied', replied_at = COALESCE(replied_at, $2), next_send_at = NULL, waiting_reason = NULL,
            lead_due_at = CASE WHEN $3 AND lead_created_at IS NULL THEN now() ELSE lead_due_at END,
            reply_intent = $4,
            metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object('lastReplyAt', $2::timestamptz),
            updated_at = now()
        WHERE id = $1
        """,
        participant_id,
        replied_at,
        lead_due,
        intent,
    )


async def release_after_reply(
    conn: asyncpg.Connection,
    participant_id: uuid.UUID,
    replied_at: datetime,
    due: datetime,
    step: int,
    intent: str | None,
) -> None:
    await conn.execute(
        """
        UPDATE campaign_participants
        SET replied_at = COALESCE(replied_at, $2), next_send_at = $3, current_step = $4, waiting_reason = NULL,
            reply_intent = $5,
            metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object('lastReplyAt', $2::timestamptz),
            updated_at = now()
        WHERE id = $1
        """,
        participant_id,
        replied_at,
        due,
        step,
        intent,
    )


async def note_reply(
    conn: asyncpg.Connection, participant_id: uuid.UUID, replied_at: datetime, intent: str | None
) -> None:
    """A reply that changes nothing about the schedule (already released, or already replied) is kept,
    with the participant's intent after it (domain/replies.merged)."""
    await conn.execute(
        """
        UPDATE campaign_participants
        SET replied_at = COALESCE(replied_at, $2), reply_intent = $3,
            metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object('lastReplyAt', $2::timestamptz),
            updated_at = now()
        WHERE id = $1
        """,
        participant_id,
        replied_at,
        intent,
    )


async def note_auto_reply(
    conn: asyncpg.Connection, participant_id: uuid.UUID, at: datetime, hold_until: datetime | None
) -> bool:
    """An automatic answer (away message, business bot): recorded, and the participant's next send held
    back to ``hold_until`` (None: not held). True when the send moved."""
    moved = await conn.fetchval(
        """
        WITH before AS (SELECT next_send_at FROM campaign_participants WHERE id = $1)
        UPDATE campaign_participants cp
        SET auto_replied_at = $2,
            next_send_at = CASE WHEN $3::timestamptz IS NOT NULL AND cp.next_send_at < $3 THEN $3 ELSE cp.next_send_at END,
            waiting_reason = CASE WHEN $3::timestamptz IS NOT NULL AND cp.next_send_at < $3 THEN 'auto_reply'
                                  ELSE cp.waiting_reason END,
            metadata = COALESCE(cp.metadata, '{}'::jsonb) || jsonb_build_object('lastAutoReplyAt', $2::timestamptz),
            updated_at = now()
        FROM before
        WHERE cp.id = $1
        RETURNING cp.next_send_at IS DISTINCT FROM before.next_send_at
        """,
        participant_id,
        at,
        hold_until,
    )
    return bool(moved)


async def set_intent(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, participant_id: uuid.UUID, intent: str
) -> asyncpg.Record | None:
    """A person's reading of the participant's reply; rules never overwrite it. None: no such participant
    of the organization's live campaign."""
    return await conn.fetchrow(
        """
        UPDATE campaign_participants cp SET reply_intent = $4, reply_intent_by = 'person', updated_at = now()
        FROM campaigns c
        WHERE cp.id = $3 AND cp.campaign_id = $2 AND c.id = cp.campaign_id AND c.organization_id = $1
          AND c.deleted_at IS NULL
        RETURNING cp.id, cp.contact_id, cp.status, cp.reply_intent, cp.replied_at
        """,
        org,
        campaign_id,
        participant_id,
        intent,
    )


async def dynamic_campaigns(
    conn: asyncpg.Connection, org: uuid.UUID, pipeline_id: uuid.UUID, stage_id: uuid.UUID
) -> list[uuid.UUID]:
    """Active campaigns that enrol contacts entering this pipeline stage (R-LIFE-5)."""
    rows = await conn.fetch(
        """
        SELECT id FROM campaigns
        WHERE organization_id = $1 AND status = 'active' AND deleted_at IS NULL
          AND target_audience ->> 'dynamicPipelineId' = $2::text
          AND target_audience -> 'dynamicStageIds' ? $3::text
        """,
        org,
        str(pipeline_id),
        str(stage_id),
    )
    return [r["id"] for r in rows]


async def flood_cleared(conn: asyncpg.Connection, org: uuid.UUID, bd_account_id: uuid.UUID) -> bool:
    """Telegram accepted a call again: lift a FLOOD_WAIT block (not a PEER_FLOOD or spam block)."""
    done = await conn.fetchval(
        """
        UPDATE bd_accounts SET send_blocked_until = NULL, flood_wait_until = NULL, updated_at = now()
        WHERE id = $1 AND organization_id = $2 AND COALESCE(flood_reason, '') <> 'peer_flood'
          AND spam_restricted_at IS NULL
        RETURNING id
        """,
        bd_account_id,
        org,
    )
    return done is not None


async def spam_restricted(
    conn: asyncpg.Connection, org: uuid.UUID, bd_account_id: uuid.UUID, source: str | None
) -> bool:
    done = await conn.fetchval(
        """
        UPDATE bd_accounts
        SET spam_restricted_at = COALESCE(spam_restricted_at, now()), spam_restriction_source = COALESCE($3, spam_restriction_source),
            send_blocked_until = GREATEST(COALESCE(send_blocked_until, now()), now() + interval '24 hours'), updated_at = now()
        WHERE id = $1 AND organization_id = $2
        RETURNING id
        """,
        bd_account_id,
        org,
        source[:32] if source else None,
    )
    return done is not None


async def spam_cleared(conn: asyncpg.Connection, org: uuid.UUID, bd_account_id: uuid.UUID) -> bool:
    done = await conn.fetchval(
        """
        UPDATE bd_accounts SET spam_restricted_at = NULL, spam_restriction_source = NULL, send_blocked_until = NULL,
                               updated_at = now()
        WHERE id = $1 AND organization_id = $2
        RETURNING id
        """,
        bd_account_id,
        org,
    )
    return done is not None
