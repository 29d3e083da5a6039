"""The organization's do-not-contact list (migrations/0013): its entries, and the SQL test every
enrolment and every claim applies to a contact row."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg


def listed(ct: str = "ct") -> str:
    """SQL: the contact row ``ct`` is on its organization's list — by its id, its Telegram id or its
    username (lower case, without @)."""
    return f"""EXISTS (SELECT 1 FROM campaign_do_not_contact dnc
        WHERE dnc.organization_id = {ct}.organization_id
          AND (dnc.contact_id = {ct}.id
               OR dnc.telegram_id = NULLIF(btrim({ct}.telegram_id), '')
               OR dnc.username = lower(ltrim(NULLIF(btrim({ct}.username), ''), '@'))))"""


async def add(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    *,
    contact_ids: Sequence[uuid.UUID] = (),
    telegram_ids: Sequence[str] = (),
    usernames: Sequence[str] = (),
    reason: str,
    user_id: uuid.UUID | None = None,
    campaign_id: uuid.UUID | None = None,
) -> int:
    """Entries for each value not on the list yet; how many were added."""
    status = await conn.execute(
        """
        INSERT INTO campaign_do_not_contact
            (organization_id, contact_id, telegram_id, username, reason, added_by_user_id, source_campaign_id)
        SELECT $1, v.contact_id, v.telegram_id, v.username, $5, $6, $7 FROM (
            SELECT c AS contact_id, NULL::varchar AS telegram_id, NULL::varchar AS username FROM unnest($2::uuid[]) c
            UNION ALL SELECT NULL, t, NULL FROM unnest($3::varchar[]) t
            UNION ALL SELECT NULL, NULL, u FROM unnest($4::varchar[]) u
        ) v
        ON CONFLICT DO NOTHING
        """,
        org,
        list(dict.fromkeys(contact_ids)),
        list(dict.fromkeys(telegram_ids)),
        list(dict.fromkeys(usernames)),
        reason,
        user_id,
        campaign_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def page(
    conn: asyncpg.Connection, org: uuid.UUID, *, limit: int, offset: int, q: str | None
) -> tuple[list[asyncpg.Record], int]:
    """Newest first; ``q`` matches the username, the Telegram id or the contact's name."""
    where = """d.organization_id = $1 AND ($2::text IS NULL
        OR d.username ILIKE '%' || $2 || '%' OR d.telegram_id ILIKE '%' || $2 || '%'
        OR concat_ws(' ', ct.first_name, ct.last_name, ct.display_name, ct.username) ILIKE '%' || $2 || '%')"""
    joins = "LEFT JOIN contacts ct ON ct.id = d.contact_id AND ct.organization_id = d.organization_id"
    pattern = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") if q else None
    rows = await conn.fetch(
        f"""
        SELECT d.*, ct.first_name, ct.last_name, ct.display_name, ct.username AS contact_username,
               ct.telegram_id AS contact_telegram_id
        FROM campaign_do_not_contact d {joins}
        WHERE {where}
        ORDER BY d.created_at DESC, d.id
        LIMIT $3 OFFSET $4
        """,
        org,
        pattern,
        limit,
        offset,
    )
    total = await conn.fetchval(
        f"SELECT count(*) FROM campaign_do_not_contact d {joins} WHERE {where}", org, pattern
    )
    return rows, int(total)


async def delete(conn: asyncpg.Connection, org: uuid.UUID, entry_id: uuid.UUID) -> bool:
    done = await conn.fetchval(
        "DELETE FROM campaign_do_not_contact WHERE id = $1 AND organization_id = $2 RETURNING id",
        entry_id,
        org,
    )
    return done is not None
