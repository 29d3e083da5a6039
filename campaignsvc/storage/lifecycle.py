"""Campaign status transitions, each guarded in its WHERE clause (never check-then-write)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

from campaignsvc.storage import outbox


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


# When a participant's reply wait started: its last step sent or skipped, whichever is later — a skipped
# step counts as sent at the skip (docs/semantics.md "Steps"), so a participant whose only steps so far
# were skipped waits from the skip, not forever. Enrolment is the floor should neither exist.
_WAIT_SINCE = """COALESCE(GREATEST(cp.last_sent_at,
                                  (SELECT max(s.completed_at) FROM campaign_sends s
                                   WHERE s.campaign_participant_id = cp.id AND s.idempotency_key IS NOT NULL
                                     AND s.status = 'skipped')),
                         cp.created_at)"""


async def complete_if_done(
    conn: asyncpg.Connection, campaign_id: uuid.UUID, reply_wait: timedelta
) -> tuple[bool, datetime | None]:
    """R-LIFE-2: complete the campaign when no participant can still receive a message.

    Participants waiting for a reply longer than ``reply_wait`` (counted by :data:`_WAIT_SINCE`) count as
    done (and become ``completed``). Returns (completed now, when to look again because a reply wait
    runs out)."""
    await conn.execute(
        f"""
        UPDATE campaign_participants cp SET status = 'completed', waiting_reason = NULL, updated_at = now()
        WHERE campaign_id = $1 AND status IN ('pending', 'sent') AND next_send_at IS NULL
          AND waiting_reason = 'reply' AND {_WAIT_SINCE} < now() - $2::interval
        """,
        campaign_id,
        reply_wait,
    )
    left = await conn.fetchrow(
        f"""
        SELECT count(*) AS open,
               min({_WAIT_SINCE}) FILTER (WHERE next_send_at IS NULL AND waiting_reason = 'reply') AS oldest_wait
        FROM campaign_participants cp
        WHERE campaign_id = $1 AND status IN ('pending', 'sent')
        """,
        campaign_id,
    )
    assert left is not None
    if left["open"]:
        oldest = left["oldest_wait"]
        return False, (oldest + reply_wait if oldest is not None else None)
    # Checked again in the statement that completes, with the enrolment (one snapshot): a start still
    # writing its audience (migrations/0009) commits its rows and ends its enrolment together, so whichever
    # side of that commit this statement sees, it does not complete a campaign with participants coming.
    row = await conn.fetchrow(
        """
        UPDATE campaigns SET status = 'completed', status_reason = 'finished', completed_at = now(), updated_at = now()
        WHERE id = $1 AND status = 'active'
          AND NOT EXISTS (SELECT 1 FROM campaign_enrolments e WHERE e.campaign_id = $1)
          AND NOT EXISTS (SELECT 1 FROM campaign_participants cp
                          WHERE cp.campaign_id = $1 AND cp.status IN ('pending', 'sent'))
        RETURNING organization_id
        """,
        campaign_id,
    )
    if row is None:
        return False, None
    await outbox.enqueue(
        conn,
        event_type="campaign.completed",
        organization_id=row["organization_id"],
        data={"campaignId": str(campaign_id)},
    )
    return True, None


async def pause_campaigns_only_on(
    conn: asyncpg.Connection, bd_account_id: uuid.UUID, reason: str
) -> list[uuid.UUID]:
    """Pause every active campaign whose remaining work is all on this account (R-THR-2), publishing
    ``campaign.paused`` for each; returns their ids."""
    rows = await conn.fetch(
        """
        UPDATE campaigns c SET status = 'paused', status_reason = $2, updated_at = now()
        WHERE c.status = 'active' AND c.deleted_at IS NULL
          AND EXISTS (SELECT 1 FROM campaign_participants cp
                      WHERE cp.campaign_id = c.id AND cp.bd_account_id = $1 AND cp.status IN ('pending', 'sent'))
          AND NOT EXISTS (SELECT 1 FROM campaign_participants cp
                          WHERE cp.campaign_id = c.id AND cp.bd_account_id <> $1 AND cp.status IN ('pending', 'sent'))
        RETURNING c.id, c.organization_id
        """,
        bd_account_id,
        reason,
    )
    for r in rows:
        await outbox.enqueue(
            conn,
            event_type="campaign.paused",
            organization_id=r["organization_id"],
            data={"campaignId": str(r["id"]), "reason": reason, "bdAccountId": str(bd_account_id)},
        )
    return [r["id"] for r in rows]


async def activate(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, from_statuses: tuple[str, ...]
) -> asyncpg.Record | None:
    """draft|paused|completed → active (guarded by the expected statuses)."""
    return await conn.fetchrow(
        """
        UPDATE campaigns SET status = 'active', status_reason = NULL, completed_at = NULL,
                             started_at = COALESCE(started_at, now()), updated_at = now()
        WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL AND status = ANY($3::varchar[])
        RETURNING *
        """,
        campaign_id,
        org,
        list(from_statuses),
    )


async def open_participants(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM campaign_participants WHERE campaign_id = $1 AND status IN ('pending', 'sent')",
        campaign_id,
    )


async def overdue(
    conn: asyncpg.Connection, campaign_id: uuid.UUID, bd_account_id: uuid.UUID | None, now: datetime
) -> list[asyncpg.Record]:
    """Participants whose due time passed (while paused), per account in due order."""
    return await conn.fetch(
        """
        SELECT id, bd_account_id FROM campaign_participants
        WHERE campaign_id = $1 AND status IN ('pending', 'sent') AND next_send_at IS NOT NULL AND next_send_at < $3
          AND bd_account_id IS NOT NULL AND ($2::uuid IS NULL OR bd_account_id = $2)
        ORDER BY bd_account_id, next_send_at, id
        """,
        campaign_id,
        bd_account_id,
        now,
    )


async def set_due(conn: asyncpg.Connection, ids: list[uuid.UUID], due: list[datetime]) -> None:
    await conn.execute(
        """
        UPDATE campaign_participants cp SET next_send_at = u.due, waiting_reason = NULL, updated_at = now()
        FROM unnest($1::uuid[], $2::timestamptz[]) AS u (id, due) WHERE cp.id = u.id
        """,
        ids,
        due,
    )


async def pause_account(
    conn: asyncpg.Connection, campaign_id: uuid.UUID, bd_account_id: uuid.UUID, until: datetime | None
) -> None:
    await conn.execute(
        """
        INSERT INTO campaign_account_pauses (campaign_id, bd_account_id, paused_until) VALUES ($1, $2, $3)
        ON CONFLICT (campaign_id, bd_account_id) DO UPDATE SET paused_until = EXCLUDED.paused_until, created_at = now()
        """,
        campaign_id,
        bd_account_id,
        until,
    )
    await conn.execute(
        """
        UPDATE campaign_participants SET waiting_reason = 'account_paused', updated_at = now()
        WHERE campaign_id = $1 AND bd_account_id = $2 AND status IN ('pending', 'sent') AND next_send_at IS NOT NULL
        """,
        campaign_id,
        bd_account_id,
    )


async def resume_account(conn: asyncpg.Connection, campaign_id: uuid.UUID, bd_account_id: uuid.UUID) -> None:
    await conn.execute(
        "DELETE FROM campaign_account_pauses WHERE campaign_id = $1 AND bd_account_id = $2",
        campaign_id,
        bd_account_id,
    )
    await conn.execute(
        """
        UPDATE campaign_participants SET waiting_reason = NULL, updated_at = now()
        WHERE campaign_id = $1 AND bd_account_id = $2 AND waiting_reason = 'account_paused'
        """,
        campaign_id,
        bd_account_id,
    )


async def detach_unstarted(conn: asyncpg.Connection, campaign_id: uuid.UUID, bd_account_id: uuid.UUID) -> int:
    """Participants of the account that were never sent to lose the account (to be assigned again);
    those mid-sequence stay on it — moving a conversation to another Telegram account breaks it."""
    status = await conn.execute(
        """
        UPDATE campaign_participants SET bd_account_id = NULL, next_send_at = NULL, waiting_reason = NULL,
                                         current_step = 0, updated_at = now()
        WHERE campaign_id = $1 AND bd_account_id = $2 AND status = 'pending' AND last_sent_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM campaign_sends s WHERE s.campaign_participant_id = campaign_participants.id
                          AND s.idempotency_key IS NOT NULL AND s.status IN ('sending', 'in_doubt', 'sent'))
        """,
        campaign_id,
        bd_account_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def retry_failed(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> int:
    """Failed participants get their failed step again (same ledger row, same idempotency key)."""
    status = await conn.execute(
        """
        UPDATE campaign_participants
        SET status = CASE WHEN last_sent_at IS NULL THEN 'pending' ELSE 'sent' END, attempts = 0, failed_at = NULL,
            next_send_at = CASE WHEN bd_account_id IS NULL THEN NULL ELSE now() END, waiting_reason = NULL,
            updated_at = now()
        WHERE campaign_id = $1 AND status = 'failed'
        """,
        campaign_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def set_audience(conn: asyncpg.Connection, campaign_id: uuid.UUID, audience: dict) -> None:
    await conn.execute(
        "UPDATE campaigns SET target_audience = $2, updated_at = now() WHERE id = $1", campaign_id, audience
    )
