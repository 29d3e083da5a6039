"""Audience writes: matching imported rows to the organization's contacts (creating the missing ones),
adding contacts to a campaign as participants and removing them (original-v1 §2.4, §2.9, §4.13).

Each function is an asyncio function for ``Store.run(fn, ...)``; every statement is scoped by organization
and set-based (one statement per batch of rows).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
import attrs

from campaignsvc.domain.audience_import import ContactRow

BATCH = 1000
_OWNED = "EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $1 AND c.organization_id = $2)"

# Match by Telegram id first (the CRM's unique key; a soft-deleted contact still holds it), then by
# username, then by email (case-insensitive, live contacts only). A matched contact gets its missing
# identifiers and phone filled in; names are never overwritten. The rest are inserted; ON CONFLICT covers a
# contact the CRM inserted meanwhile (the input holds each Telegram id once, so the upsert touches a row at
# most once — the original crashed here on duplicate ids).
_MATCH_OR_CREATE = """
WITH input AS (
    SELECT u.n, u.telegram_id, u.username, u.email, u.first_name, u.last_name, u.phone,
           gen_random_uuid() AS new_id
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
         WITH ORDINALITY AS u (telegram_id, username, email, first_name, last_name, phone, n)
), candidates AS (
    SELECT i.n, c.id, c.deleted_at IS NOT NULL AS deleted, 1 AS rank
    FROM input i JOIN contacts c ON c.organization_id = $1 AND c.telegram_id = i.telegram_id
    UNION ALL
    SELECT i.n, c.id, false, 2
    FROM input i JOIN contacts c
      ON c.organization_id = $1 AND c.deleted_at IS NULL AND lower(c.username) = i.username
    UNION ALL
    SELECT i.n, c.id, false, 3
    FROM input i JOIN contacts c
      ON c.organization_id = $1 AND c.deleted_at IS NULL AND lower(c.email) = i.email
), best AS (
    SELECT DISTINCT ON (n) n, id, deleted FROM candidates ORDER BY n, rank, id
), filled AS (
    UPDATE contacts c
    SET telegram_id = COALESCE(NULLIF(trim(c.telegram_id), ''), i.telegram_id),
        username = COALESCE(NULLIF(trim(c.username), ''), i.username),
        email = COALESCE(NULLIF(trim(c.email), ''), i.email),
        phone = COALESCE(NULLIF(trim(c.phone), ''), i.phone),
        updated_at = now()
    FROM best b JOIN input i ON i.n = b.n
    WHERE c.id = b.id AND c.organization_id = $1 AND NOT b.deleted
      AND ((NULLIF(trim(c.telegram_id), '') IS NULL AND i.telegram_id IS NOT NULL)
        OR (NULLIF(trim(c.username), '') IS NULL AND i.username IS NOT NULL)
        OR (NULLIF(trim(c.email), '') IS NULL AND i.email IS NOT NULL)
        OR (NULLIF(trim(c.phone), '') IS NULL AND i.phone IS NOT NULL))
    RETURNING c.id
), created AS (
    INSERT INTO contacts (id, organization_id, first_name, last_name, email, phone, telegram_id, username)
    SELECT i.new_id, $1, i.first_name, i.last_name, i.email, i.phone, i.telegram_id, i.username
    FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM best b WHERE b.n = i.n)
    ORDER BY i.n
    ON CONFLICT (organization_id, telegram_id) WHERE telegram_id IS NOT NULL AND TRIM(telegram_id) <> ''
    DO UPDATE SET updated_at = contacts.updated_at
    RETURNING id, telegram_id, (xmax = 0) AS inserted
)
SELECT i.n, COALESCE(b.id, fresh.id, raced.id) AS contact_id,
       CASE WHEN b.deleted THEN 'deleted' WHEN fresh.id IS NOT NULL THEN 'created' ELSE 'matched' END AS outcome
FROM input i
LEFT JOIN best b ON b.n = i.n
LEFT JOIN created fresh ON fresh.inserted AND fresh.id = i.new_id
LEFT JOIN created raced ON NOT raced.inserted AND raced.telegram_id = i.telegram_id
ORDER BY i.n
"""


@attrs.frozen
class Matched:
    """What became of one import row: its contact, and whether it was ``created``, ``matched`` or found
    ``deleted`` (a soft-deleted CRM contact holds its Telegram id: not used, reported)."""

    row: ContactRow
    contact_id: uuid.UUID
    outcome: str


async def match_or_create_contacts(
    conn: asyncpg.Connection, org: uuid.UUID, rows: Sequence[ContactRow]
) -> list[Matched]:
    """Each row's contact, in input order. Rows must be deduplicated by telegram id, username and email
    (:mod:`campaignsvc.domain.audience_import` does that). Imports of one organization run one at a time."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('campaignsvc.contact-import'), hashtext($1::text))", str(org)
    )
    out: list[Matched] = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        records = await conn.fetch(
            _MATCH_OR_CREATE,
            org,
            [r.telegram_id for r in batch],
            [r.username for r in batch],
            [r.email for r in batch],
            [r.first_name for r in batch],
            [r.last_name for r in batch],
            [r.phone for r in batch],
        )
        out += [
            Matched(row, rec["contact_id"], rec["outcome"]) for row, rec in zip(batch, records, strict=True)
        ]
    return out


async def unknown_contacts(
    conn: asyncpg.Connection, org: uuid.UUID, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """The ids that are not live contacts of this organization."""
    found = await conn.fetch(
        "SELECT id FROM contacts WHERE organization_id = $1 AND id = ANY($2::uuid[]) AND deleted_at IS NULL",
        org,
        list(ids),
    )
    return set(ids) - {r["id"] for r in found}


async def add_participants(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    contact_ids: Sequence[uuid.UUID],
    bd_account_id: uuid.UUID | None,
) -> int:
    """Add the contacts not yet in the campaign as ``pending`` participants, queued after the last one in
    input order; returns how many were added. The caller holds the campaign row lock, so two additions
    never compute the same queue positions."""
    return await conn.fetchval(
        """
        WITH input AS (
            SELECT u.contact_id, min(u.n) AS n
            FROM unnest($3::uuid[]) WITH ORDINALITY AS u (contact_id, n)
            JOIN contacts ct ON ct.id = u.contact_id AND ct.organization_id = $1
            WHERE NOT EXISTS (
                SELECT 1 FROM campaign_participants p WHERE p.campaign_id = $2 AND p.contact_id = u.contact_id
            )
            GROUP BY u.contact_id
        ), base AS (
            SELECT COALESCE(max(enqueue_order), -1) AS last FROM campaign_participants WHERE campaign_id = $2
        ), added AS (
            INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, status, enqueue_order)
            SELECT $2, i.contact_id, $4, 'pending', base.last + row_number() OVER (ORDER BY i.n)
            FROM input i CROSS JOIN base
            ON CONFLICT (campaign_id, contact_id) DO NOTHING
            RETURNING 1
        )
        SELECT count(*)::int FROM added
        """,
        org,
        campaign_id,
        list(contact_ids),
        bd_account_id,
    )


# --- removing participants ----------------------------------------------------------------------------


async def delete_participant(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, contact_id: uuid.UUID
) -> str:
    """``deleted``, ``missing`` (not a participant) or ``busy`` (a send to it is unfinished: kept, so the
    outcome can be recorded and an in-doubt message is never sent again under a new key)."""
    row = await conn.fetchrow(
        f"""
        WITH target AS (
            SELECT cp.id, EXISTS (SELECT 1 FROM campaign_sends s WHERE s.campaign_participant_id = cp.id
                                    AND s.status IN ('sending', 'in_doubt')) AS busy
            FROM campaign_participants cp
            WHERE cp.campaign_id = $1 AND cp.contact_id = $3 AND {_OWNED}
        ), gone AS (
            DELETE FROM campaign_participants cp USING target t WHERE cp.id = t.id AND NOT t.busy RETURNING 1
        )
        SELECT (SELECT count(*) FROM target) AS found, (SELECT count(*) FROM gone) AS deleted
        """,
        campaign_id,
        org,
        contact_id,
    )
    assert row is not None
    return "missing" if not row["found"] else "deleted" if row["deleted"] else "busy"


async def delete_participants(conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID) -> int:
    """Remove every participant of the campaign (and its ledger) except those with an unfinished send."""
    return await conn.fetchval(
        f"""
        WITH gone AS (
            DELETE FROM campaign_participants cp
            WHERE cp.campaign_id = $1 AND {_OWNED}
              AND cp.id NOT IN (SELECT s.campaign_participant_id FROM campaign_sends s
                                WHERE s.campaign_id = $1 AND s.status IN ('sending', 'in_doubt'))
            RETURNING 1
        )
        SELECT count(*)::int FROM gone
        """,
        campaign_id,
        org,
    )
