"""Reads behind the lookup endpoints: agents and their sends today, group sources, Telegram sources,
the contact picker and audience conflicts (original-v1 §2.4).

Asyncio functions for ``Store.run``, every one scoped by organization.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import asyncpg


async def active_accounts(conn: asyncpg.Connection, org: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT * FROM bd_accounts
        WHERE organization_id = $1 AND is_active
        ORDER BY display_name NULLS LAST, phone_number, id
        """,
        org,
    )


async def sent_since(
    conn: asyncpg.Connection, org: uuid.UUID, since: dict[uuid.UUID, dt.datetime]
) -> dict[uuid.UUID, int]:
    """Sent ledger rows per account since that account's instant, in one statement."""
    if not since:
        return {}
    rows = await conn.fetch(
        """
        SELECT u.id, count(s.id)::int AS sent
        FROM unnest($2::uuid[], $3::timestamptz[]) AS u (id, since)
        JOIN bd_accounts a ON a.id = u.id AND a.organization_id = $1
        JOIN campaign_sends s ON s.bd_account_id = u.id AND s.status = 'sent' AND s.sent_at >= u.since
        GROUP BY u.id
        """,
        org,
        list(since),
        list(since.values()),
    )
    return {r["id"]: r["sent"] for r in rows}


async def group_sources(conn: asyncpg.Connection, org: uuid.UUID) -> list[asyncpg.Record]:
    """Groups and channels synced by the organization's active accounts, with the account row's names."""
    return await conn.fetch(
        """
        SELECT sc.id, sc.bd_account_id, sc.telegram_chat_id, sc.title, sc.peer_type,
               a.id AS account_id, a.display_name, a.first_name, a.last_name, a.username, a.phone_number,
               a.telegram_id
        FROM bd_account_sync_chats sc
        JOIN bd_accounts a ON a.id = sc.bd_account_id
        WHERE a.organization_id = $1 AND a.is_active AND sc.peer_type IN ('chat', 'channel')
        ORDER BY sc.title NULLS LAST, sc.telegram_chat_id, sc.id
        """,
        org,
    )


async def account_exists(conn: asyncpg.Connection, org: uuid.UUID, account_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM bd_accounts WHERE id = $1 AND organization_id = $2", account_id, org
        )
    )


async def group_contact_ids(
    conn: asyncpg.Connection, org: uuid.UUID, account_id: uuid.UUID, chat_id: str
) -> list[uuid.UUID]:
    """Contacts (of the organization, not deleted) with a message in that chat of that account."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT m.contact_id
        FROM messages m
        JOIN contacts ct ON ct.id = m.contact_id AND ct.organization_id = $1 AND ct.deleted_at IS NULL
        WHERE m.organization_id = $1 AND m.bd_account_id = $2 AND m.channel_id = $3
        ORDER BY m.contact_id
        """,
        org,
        account_id,
        chat_id,
    )
    return [r["contact_id"] for r in rows]


async def source_keywords(conn: asyncpg.Connection, org: uuid.UUID) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT DISTINCT search_keyword FROM contact_telegram_sources
        WHERE organization_id = $1 AND search_keyword IS NOT NULL AND TRIM(search_keyword) <> ''
        ORDER BY search_keyword
        """,
        org,
    )
    return [r["search_keyword"] for r in rows]


async def source_groups(conn: asyncpg.Connection, org: uuid.UUID) -> list[asyncpg.Record]:
    """One row per (account, chat) contacts were found in; the title is any non-null one recorded."""
    return await conn.fetch(
        """
        SELECT bd_account_id, telegram_chat_id, max(telegram_chat_title) AS telegram_chat_title
        FROM contact_telegram_sources
        WHERE organization_id = $1 AND telegram_chat_id IS NOT NULL AND TRIM(telegram_chat_id) <> ''
        GROUP BY bd_account_id, telegram_chat_id
        ORDER BY telegram_chat_title NULLS LAST, telegram_chat_id, bd_account_id
        """,
        org,
    )


def like_pattern(term: str) -> str:
    """``%term%`` for ILIKE … ESCAPE '\\' with the term's own ``\\``, ``%`` and ``_`` matched literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def picker_contacts(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    *,
    limit: int,
    outreach_status: str | None,
    search: str | None,
    source_keyword: str | None,
    source_chat_id: str | None,
    source_account_id: uuid.UUID | None,
) -> list[asyncpg.Record]:
    """Contacts that can be messaged on Telegram (a telegram id or a username), not deleted.

    ``outreach_status`` is ``in_outreach`` when the contact is a participant of a live campaign of the
    organization."""
    return await conn.fetch(
        r"""
        WITH picked AS (
            SELECT ct.id, ct.first_name, ct.last_name, ct.display_name, ct.username, ct.telegram_id, ct.email,
                   ct.phone,
                   EXISTS (
                       SELECT 1 FROM campaign_participants cp
                       JOIN campaigns cg ON cg.id = cp.campaign_id
                       WHERE cp.contact_id = ct.id AND cg.organization_id = $1 AND cg.deleted_at IS NULL
                   ) AS busy
            FROM contacts ct
            WHERE ct.organization_id = $1 AND ct.deleted_at IS NULL
              AND (NULLIF(TRIM(ct.telegram_id), '') IS NOT NULL OR NULLIF(TRIM(ct.username), '') IS NOT NULL)
              AND ($3::text IS NULL
                   OR ct.first_name ILIKE $3 ESCAPE '\' OR ct.last_name ILIKE $3 ESCAPE '\'
                   OR ct.display_name ILIKE $3 ESCAPE '\' OR ct.username ILIKE $3 ESCAPE '\'
                   OR ct.telegram_id ILIKE $3 ESCAPE '\' OR ct.email ILIKE $3 ESCAPE '\'
                   OR ct.phone ILIKE $3 ESCAPE '\')
              AND ($4::text IS NULL OR EXISTS (
                   SELECT 1 FROM contact_telegram_sources src
                   WHERE src.organization_id = $1 AND src.contact_id = ct.id AND src.search_keyword = $4))
              AND (($5::text IS NULL AND $6::uuid IS NULL) OR EXISTS (
                   SELECT 1 FROM contact_telegram_sources src
                   WHERE src.organization_id = $1 AND src.contact_id = ct.id
                     AND ($5::text IS NULL OR src.telegram_chat_id = $5)
                     AND ($6::uuid IS NULL OR src.bd_account_id = $6)))
        )
        SELECT id, first_name, last_name, display_name, username, telegram_id, email, phone,
               CASE WHEN busy THEN 'in_outreach' ELSE 'new' END AS outreach_status
        FROM picked
        WHERE $7::text IS NULL OR busy = ($7 = 'in_outreach')
        ORDER BY first_name, last_name, id
        LIMIT $2
        """,
        org,
        limit,
        like_pattern(search) if search else None,
        source_keyword or None,
        source_chat_id or None,
        source_account_id,
        outreach_status,
    )


async def conflicts(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
) -> list[asyncpg.Record]:
    """Every participation of these contacts in live campaigns of the organization (this one included)."""
    return await conn.fetch(
        """
        SELECT cp.contact_id, cp.campaign_id, cg.name AS campaign_name, cp.status AS participant_status,
               (SELECT max(s.sent_at) FROM campaign_sends s
                 WHERE s.campaign_participant_id = cp.id AND s.status = 'sent') AS last_sent_at,
               cp.campaign_id = $2 AS is_current_campaign,
               COALESCE(NULLIF(TRIM(ct.display_name), ''),
                        NULLIF(TRIM(CONCAT_WS(' ', ct.first_name, ct.last_name)), ''),
                        NULLIF(TRIM(ct.username), '')) AS contact_name,
               ct.username AS contact_username
        FROM campaign_participants cp
        JOIN campaigns cg ON cg.id = cp.campaign_id AND cg.organization_id = $1 AND cg.deleted_at IS NULL
        JOIN contacts ct ON ct.id = cp.contact_id AND ct.organization_id = $1
        WHERE cp.contact_id = ANY($3::uuid[])
        ORDER BY cp.contact_id, cg.name, cp.campaign_id
        """,
        org,
        campaign_id,
        list(contact_ids),
    )
