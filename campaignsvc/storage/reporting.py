"""Reporting reads: stats, participant pages and rows, the send ledger, analytics; and the read receipts
they copy from the CRM.

Every function takes ``(conn, org, campaign_id, …)`` and every statement checks, with ``OWNED``, that the
campaign belongs to the organization and is not deleted. Indexes behind each query: migrations/0003; the
counters the stats read: migrations/0010.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg

from campaignsvc.domain.reporting import DONE, TERMINAL

# SQL: the campaign ``$1`` belongs to the organization ``$2`` and is not deleted.
OWNED = (
    "EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $1 AND c.organization_id = $2 AND c.deleted_at IS NULL)"
)


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


_ACTIVE = f"cp.status NOT IN {_in(TERMINAL)}"
# The participants filters: domain/reporting.phase_of in SQL, and a few more.
_PHASE_FILTERS = {
    "all": "true",
    "replied": "cp.status = 'replied'",
    "not_replied": "cp.status <> 'replied'",
    "pending": "cp.status = 'pending'",
    "failed": "cp.status = 'failed'",
    "waiting": f"{_ACTIVE} AND cp.first_sent_at IS NULL",
    "sent": f"{_ACTIVE} AND cp.first_sent_at IS NOT NULL AND cp.read_at IS NULL",
    "read": f"{_ACTIVE} AND cp.first_sent_at IS NOT NULL AND cp.read_at IS NOT NULL",
    "completed": f"cp.status IN {_in(DONE)} AND cp.first_sent_at IS NOT NULL",
    "skipped": f"cp.status IN {_in(DONE)} AND cp.first_sent_at IS NULL",
    "shared": """EXISTS (SELECT 1 FROM conversations cv
                 WHERE cv.organization_id = $2 AND cv.bd_account_id = cp.bd_account_id AND cv.channel = 'telegram'
                   AND cv.channel_id = cp.channel_id AND cv.shared_chat_created_at IS NOT NULL)""",
}


async def tune(conn: asyncpg.Connection) -> None:
    """Reports are short scans the planner prices high: JIT compilation would cost more than it saves."""
    await conn.execute("SET LOCAL jit = off")


# --- read receipts ------------------------------------------------------------------------------------


async def campaigns_being_read(
    conn: asyncpg.Connection, since: timedelta
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(campaign id, organization id) of the campaigns whose messages may still be read — active, paused,
    or completed less than ``since`` ago — and that have sent, not yet read participants: one query finds
    them all, so a campaign with nothing left to mark costs no pass."""
    rows = await conn.fetch(
        """
        SELECT c.id, c.organization_id FROM campaigns c
        WHERE c.deleted_at IS NULL
          AND (c.status IN ('active', 'paused') OR (c.status = 'completed' AND c.completed_at > now() - $1::interval))
          AND EXISTS (SELECT 1 FROM campaign_participants cp
                      WHERE cp.campaign_id = c.id AND cp.first_sent_at IS NOT NULL AND cp.read_at IS NULL)
        ORDER BY c.id
        """,
        since,
    )
    return [(r["id"], r["organization_id"]) for r in rows]


async def sync_read_marks(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, after: uuid.UUID | None, batch: int
) -> uuid.UUID | None:
    """Look at up to ``batch`` sent, not yet read participants (id order, after ``after``) and set
    ``read_at`` for those with a campaign message the CRM marked read. Returns where the next pass
    continues, None once it reached the end. Skipped while another request of this campaign runs it; rows
    another transaction holds are left for the next pass."""
    locked = await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtext('campaignsvc.read-marks'), hashtext($1::text))",
        str(campaign_id),
    )
    if not locked:
        return after
    row = await conn.fetchrow(
        f"""
        WITH batch AS (
            SELECT cp.id FROM campaign_participants cp
            WHERE cp.campaign_id = $1 AND cp.first_sent_at IS NOT NULL AND cp.read_at IS NULL
              AND ($3::uuid IS NULL OR cp.id > $3) AND {OWNED}
            ORDER BY cp.id LIMIT $4
        ), seen AS (
            SELECT b.id, min(COALESCE(s.read_at, m.updated_at)) AS read_at
            FROM batch b
            JOIN campaign_sends s ON s.campaign_participant_id = b.id AND s.status = 'sent'
            LEFT JOIN messages m ON m.id = s.message_id AND m.organization_id = $2
            WHERE s.read_at IS NOT NULL OR m.status = 'read'
            GROUP BY b.id
        ), free AS (  -- never wait for (or deadlock with) the dispatcher: a busy row waits for the next pass
            SELECT cp.id FROM campaign_participants cp
            WHERE cp.id IN (SELECT id FROM seen) AND cp.read_at IS NULL
            FOR UPDATE SKIP LOCKED
        ), marked AS (
            UPDATE campaign_participants cp SET read_at = seen.read_at
            FROM seen JOIN free USING (id) WHERE cp.id = seen.id
            RETURNING cp.id
        )
        SELECT (SELECT count(*) FROM batch) AS seen, (SELECT id FROM batch ORDER BY id DESC LIMIT 1) AS last
        """,
        campaign_id,
        org,
        after,
        batch,
    )
    assert row is not None
    return row["last"] if row["seen"] == batch else None


# --- stats --------------------------------------------------------------------------------------------


async def participant_counts(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, *, recount: bool = False
) -> list[asyncpg.Record]:
    """(kind, status, n) for kind ``all`` (participants), ``sent`` (first_sent_at set) and ``read``
    (read_at set), statuses with none left out; kinds in that order, statuses in collation order. Read
    from the counters migrations/0010 keeps per campaign and status: a few rows however large the
    campaign. ``recount`` counts the rows instead, as stats did before (three index-only scans, ~200 ms
    per million participants): what the counters must equal, for tests and the benchmark's baseline."""
    if not recount:
        return await conn.fetch(
            f"""
            SELECT k.kind, c.status, k.n::int AS n
            FROM campaign_participant_counts c
            CROSS JOIN LATERAL (VALUES (1, 'all', c.total), (2, 'sent', c.sent), (3, 'read', c.read)) AS k (o, kind, n)
            WHERE c.campaign_id = $1 AND k.n > 0 AND {OWNED}
            ORDER BY k.o, c.status
            """,
            campaign_id,
            org,
        )
    return await conn.fetch(
        f"""
        SELECT kind, status, n FROM (
            SELECT 1 AS o, 'all' AS kind, status, count(*)::int AS n FROM campaign_participants
            WHERE campaign_id = $1 AND {OWNED} GROUP BY status
            UNION ALL
            SELECT 2, 'sent', status, count(*)::int FROM campaign_participants
            WHERE campaign_id = $1 AND first_sent_at IS NOT NULL AND {OWNED} GROUP BY status
            UNION ALL
            SELECT 3, 'read', status, count(*)::int FROM campaign_participants
            WHERE campaign_id = $1 AND read_at IS NOT NULL AND {OWNED} GROUP BY status
        ) counted
        ORDER BY o, status
        """,
        campaign_id,
        org,
    )


async def replies_by_intent(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> dict[str, int]:
    """Replied participants by the intent of their reply (``unknown`` when none was read): an index-only
    scan of idx_cp_reply_intent (migrations/0011), the replied participants only."""
    rows = await conn.fetch(
        f"""
        SELECT COALESCE(cp.reply_intent, 'unknown') AS intent, count(*)::int AS n
        FROM campaign_participants cp
        WHERE cp.campaign_id = $1 AND cp.status = 'replied' AND {OWNED}
        GROUP BY 1 ORDER BY 1
        """,
        campaign_id,
        org,
    )
    return {r["intent"]: r["n"] for r in rows}


async def outcome_summary(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, *, recount: bool = False
) -> asyncpg.Record:
    """Ledger totals, the latest failure, and the conversations the campaign led to (joined to their
    participant by contact for the first-send time). The number of sent ledger rows comes from
    migrations/0010's counter; ``recount`` counts them instead (for tests and the benchmark's baseline)."""
    total_sends = (
        "(SELECT count(*) FROM campaign_sends WHERE campaign_id = $1 AND status = 'sent')"
        if recount
        else "COALESCE((SELECT sent FROM campaign_send_counts WHERE campaign_id = $1), 0)"
    )
    row = await conn.fetchrow(
        f"""
        WITH owned AS (SELECT {OWNED} AS ok), conv AS (
            SELECT cv.shared_chat_created_at, cv.won_at, cv.lost_at, cv.revenue_amount, cp.first_sent_at
            FROM conversations cv
            LEFT JOIN campaign_participants cp ON cp.campaign_id = cv.campaign_id AND cp.contact_id = cv.contact_id
            WHERE cv.campaign_id = $1 AND cv.organization_id = $2
        )
        SELECT
            {total_sends}::int AS total_sends,
            (SELECT sent_at FROM campaign_sends WHERE campaign_id = $1 AND status = 'sent'
              ORDER BY sent_at LIMIT 1) AS first_send_at,
            (SELECT sent_at FROM campaign_sends WHERE campaign_id = $1 AND status = 'sent'
              ORDER BY sent_at DESC LIMIT 1) AS last_send_at,
            (SELECT COALESCE(last_error, metadata->>'lastError') FROM campaign_participants
              WHERE campaign_id = $1 AND status = 'failed'
                AND NULLIF(trim(COALESCE(last_error, metadata->>'lastError')), '') IS NOT NULL
              ORDER BY failed_at DESC NULLS LAST, updated_at DESC LIMIT 1) AS error_sample,
            count(*) FILTER (WHERE shared_chat_created_at IS NOT NULL)::int AS shared,
            count(*) FILTER (WHERE won_at IS NOT NULL)::int AS won,
            count(*) FILTER (WHERE lost_at IS NOT NULL)::int AS lost,
            COALESCE(sum(revenue_amount) FILTER (WHERE won_at IS NOT NULL), 0)::float8 AS revenue,
            avg(extract(epoch FROM shared_chat_created_at - first_sent_at) / 3600.0)::float8 AS hours_to_shared,
            avg(extract(epoch FROM won_at - first_sent_at) / 3600.0)::float8 AS hours_to_won
        FROM conv, owned WHERE owned.ok
        """,
        campaign_id,
        org,
    )
    assert row is not None
    return row


# --- accounts, analytics ------------------------------------------------------------------------------


async def participant_account_ids(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID
) -> list[uuid.UUID]:
    rows = await conn.fetch(
        f"""
        SELECT DISTINCT bd_account_id FROM campaign_participants
        WHERE campaign_id = $1 AND bd_account_id IS NOT NULL AND {OWNED}
        """,
        campaign_id,
        org,
    )
    return [r["bd_account_id"] for r in rows]


_SINCE = "(((now() AT TIME ZONE 'UTC')::date - ($3::int - 1))::timestamp AT TIME ZONE 'UTC')"


async def analytics(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, days: int
) -> tuple[list[asyncpg.Record], list[asyncpg.Record], list[asyncpg.Record]]:
    """Per UTC day of the last ``days``: participants sent to, participants who replied, and messages per
    account (a ledger row the original wrote has no account: its participant's is used)."""
    args = (campaign_id, org, days)
    sends = await conn.fetch(
        f"""
        SELECT (sent_at AT TIME ZONE 'UTC')::date AS day, count(DISTINCT campaign_participant_id)::int AS n
        FROM campaign_sends
        WHERE campaign_id = $1 AND status = 'sent' AND sent_at >= {_SINCE} AND {OWNED}
        GROUP BY 1 ORDER BY 1
        """,
        *args,
    )
    replies = await conn.fetch(
        f"""
        SELECT (COALESCE(replied_at, updated_at) AT TIME ZONE 'UTC')::date AS day, count(*)::int AS n
        FROM campaign_participants
        WHERE campaign_id = $1 AND status = 'replied' AND COALESCE(replied_at, updated_at) >= {_SINCE}
          AND {OWNED}
        GROUP BY 1 ORDER BY 1
        """,
        *args,
    )
    by_account = await conn.fetch(
        f"""
        SELECT day, account_id, count(*)::int AS n FROM (
            SELECT (s.sent_at AT TIME ZONE 'UTC')::date AS day,
                   COALESCE(s.bd_account_id, (SELECT cp.bd_account_id FROM campaign_participants cp
                                              WHERE cp.id = s.campaign_participant_id)) AS account_id
            FROM campaign_sends s
            WHERE s.campaign_id = $1 AND s.status = 'sent' AND s.sent_at >= {_SINCE} AND {OWNED}
        ) x
        WHERE account_id IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        *args,
    )
    return sends, replies, by_account


# --- participants -------------------------------------------------------------------------------------

_PAGE_ORDER = "cp.first_sent_at DESC NULLS LAST, cp.enqueue_order, cp.created_at, cp.id"


async def participant_ids(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    filter: str,
    bd_account_id: uuid.UUID | None,
    sent_from: Any,
    sent_before: Any,
    limit: int,
    offset: int,
    reply_intent: str | None = None,
    where: Callable[[int], str] | None = None,
    where_args: Sequence[Any] = (),
) -> list[uuid.UUID]:
    """Participant ids in page order (latest first send first, then queue order), filtered: one
    index-only scan of idx_cp_report_page for the common filters, however deep the page. ``reply_intent``:
    only those who replied with it (``unknown``: not classified, as the stats count them). ``where(n)``:
    one more condition on ``cp``, its arguments (``where_args``) from ``$n`` on."""
    extra = f"AND {where(9)}" if where is not None else ""
    rows = await conn.fetch(
        f"""
        SELECT cp.id FROM campaign_participants cp
        WHERE cp.campaign_id = $1 AND ({_PHASE_FILTERS[filter]})
          AND ($3::uuid IS NULL OR cp.bd_account_id = $3)
          AND ($4::timestamptz IS NULL OR cp.first_sent_at >= $4)
          AND ($5::timestamptz IS NULL OR cp.first_sent_at < $5)
          AND ($8::text IS NULL OR (cp.replied_at IS NOT NULL AND COALESCE(cp.reply_intent, 'unknown') = $8))
          AND {OWNED} {extra}
        ORDER BY {_PAGE_ORDER}
        LIMIT $6 OFFSET $7
        """,
        campaign_id,
        org,
        bd_account_id,
        sent_from,
        sent_before,
        limit,
        offset,
        reply_intent,
        *where_args,
    )
    return [r["id"] for r in rows]


async def all_participant_ids(conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID) -> bytes:
    """Every participant id in page order, as 16-byte values end to end (a million ids: 16 MB, not the
    100+ MB of as many UUID objects)."""
    return await conn.fetchval(
        f"""
        SELECT COALESCE(string_agg(uuid_send(cp.id), ''::bytea ORDER BY {_PAGE_ORDER}), ''::bytea)
        FROM campaign_participants cp WHERE cp.campaign_id = $1 AND {OWNED}
        """,
        campaign_id,
        org,
    )


async def participant_rows(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    *,
    reply_text: bool = False,
) -> list[asyncpg.Record]:
    """The rows of the given participants, in the given order: contact, conversation and lead stage,
    whether the latest message sent was read (live from the CRM's messages) and, with ``reply_text``,
    the first message the contact sent back."""
    return await conn.fetch(
        f"""
        SELECT cp.id AS participant_id, cp.contact_id, cp.bd_account_id, cp.channel_id, cp.status,
               cp.current_step, cp.next_send_at, cp.first_sent_at, cp.replied_at, cp.read_at AS read_mark,
               cp.reply_intent, cp.auto_replied_at,
               COALESCE(cp.last_error, cp.metadata->>'lastError') AS last_error,
               ct.first_name, ct.last_name, ct.display_name, ct.username, ct.telegram_id, ct.email, ct.phone,
               cv.id AS conversation_id, cv.shared_chat_created_at, st.name AS pipeline_stage_name,
               latest.read_at AS latest_read_at, reply.content AS first_reply_text
        FROM unnest($3::uuid[]) WITH ORDINALITY AS p (id, ord)
        JOIN campaign_participants cp ON cp.id = p.id AND cp.campaign_id = $1
        LEFT JOIN contacts ct ON ct.id = cp.contact_id AND ct.organization_id = $2
        LEFT JOIN conversations cv ON cv.organization_id = $2 AND cv.bd_account_id = cp.bd_account_id
             AND cv.channel = 'telegram' AND cv.channel_id = cp.channel_id
        LEFT JOIN leads l ON l.id = cv.lead_id AND l.organization_id = $2 AND l.deleted_at IS NULL
        LEFT JOIN stages st ON st.id = l.stage_id
        LEFT JOIN LATERAL (
            SELECT CASE WHEN s.read_at IS NOT NULL THEN s.read_at WHEN m.status = 'read' THEN m.updated_at END
                   AS read_at
            FROM campaign_sends s
            LEFT JOIN messages m ON m.id = s.message_id AND m.organization_id = $2
            WHERE s.campaign_participant_id = cp.id AND s.status = 'sent'
            ORDER BY s.sent_at DESC, s.id DESC LIMIT 1
        ) latest ON cp.first_sent_at IS NOT NULL
        LEFT JOIN LATERAL (
            SELECT m.content FROM messages m
            WHERE m.organization_id = $2 AND m.bd_account_id = cp.bd_account_id AND m.channel_id = cp.channel_id
              AND m.direction = 'inbound' AND m.created_at >= COALESCE(cp.first_sent_at, cp.created_at)
            ORDER BY m.created_at LIMIT 1
        ) reply ON $4 AND cp.status = 'replied'
        WHERE {OWNED}
        ORDER BY p.ord
        """,
        campaign_id,
        org,
        list(ids),
        reply_text,
    )


async def step_count(conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID) -> int:
    return await conn.fetchval(
        f"SELECT count(*)::int FROM campaign_sequences WHERE campaign_id = $1 AND {OWNED}", campaign_id, org
    )


# --- the send ledger ----------------------------------------------------------------------------------


async def send_counts(conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID) -> dict[str, int]:
    rows = await conn.fetch(
        f"SELECT status, count(*)::int AS n FROM campaign_sends WHERE campaign_id = $1 AND {OWNED} GROUP BY status",
        campaign_id,
        org,
    )
    return {r["status"]: r["n"] for r in rows}


async def sends_page(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, limit: int, offset: int
) -> list[asyncpg.Record]:
    """Ledger rows of the campaign, oldest first, with their participant, contact and message."""
    return await conn.fetch(
        f"""
        WITH page AS (
            SELECT s.id FROM campaign_sends s
            WHERE s.campaign_id = $1 AND {OWNED}
            ORDER BY s.sent_at, s.id LIMIT $3 OFFSET $4
        )
        SELECT s.id, s.sent_at, s.sequence_step, s.status, s.message_id, s.metadata, s.error_class,
               s.last_error, s.content AS ledger_content, cp.id AS participant_id, cp.status AS participant_status,
               cp.contact_id, ct.first_name, ct.last_name, ct.display_name, ct.username, ct.telegram_id,
               m.content AS message_content, m.status AS message_status, m.direction AS message_direction
        FROM page
        JOIN campaign_sends s ON s.id = page.id
        JOIN campaign_participants cp ON cp.id = s.campaign_participant_id
        LEFT JOIN contacts ct ON ct.id = cp.contact_id AND ct.organization_id = $2
        LEFT JOIN messages m ON m.id = s.message_id AND m.organization_id = $2
        ORDER BY s.sent_at, s.id
        """,
        campaign_id,
        org,
        limit,
        offset,
    )
