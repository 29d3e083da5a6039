"""Enrolment SQL: turning an audience into participants and giving them an account, a channel and a first
due time — set-based, one statement per step of the procedure, whatever the audience size."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from campaignsvc.domain.audience import Audience
from campaignsvc.storage import do_not_contact as dnc
from campaignsvc.storage import ramps

MAX_AUDIENCE = 1_000_000
DEFAULT_AUDIENCE_LIMIT = 5000


async def participant_count(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM campaign_participants WHERE campaign_id = $1", campaign_id
    )


# A contact a campaign may enrol: live, with a Telegram id or a username, not on the do-not-contact list.
def has_channel(ct: str = "ct") -> str:
    """SQL: the contact row ``ct`` has a peer to write to (actors/enrolment.channel_of): a Telegram id, else
    a username without its leading @."""
    return (
        f"(NULLIF(btrim({ct}.telegram_id), '') IS NOT NULL"
        f" OR btrim(ltrim(btrim(COALESCE({ct}.username, '')), '@')) <> '')"
    )


def reachable(ct: str = "ct") -> str:
    """SQL: the contact row ``ct`` can be enrolled and sent to: not deleted, a peer to write to, and not on
    its organization's do-not-contact list."""
    return f"{ct}.deleted_at IS NULL AND {has_channel(ct)} AND NOT {dnc.listed(ct)}"


_REACHABLE = reachable("ct")


async def audience_contacts(
    conn: asyncpg.Connection, org: uuid.UUID, audience: Audience, *, missing_from: uuid.UUID | None = None
) -> list[asyncpg.Record]:
    """The audience's contacts in order (original-v1 §2.7 path B): only this organization's contacts that
    are not deleted and have a Telegram id or username; ``contactIds`` or the filters, up to ``limit``;
    ``position`` is each one's place in the audience (from 0).

    ``missing_from``: of those, the ones that are not participants of that campaign (the rest of an audience
    whose writing was interrupted); ``onlyNew`` then does not count that campaign's participants."""
    limit = DEFAULT_AUDIENCE_LIMIT if audience.limit is None else min(audience.limit, MAX_AUDIENCE)
    if audience.contact_ids:
        query = f"""
            SELECT ct.id, ct.telegram_id, ct.username, (w.n - 1)::int AS position
            FROM unnest($2::uuid[]) WITH ORDINALITY AS w (id, n)
            JOIN contacts ct ON ct.id = w.id AND ct.organization_id = $1 AND {_REACHABLE}
            ORDER BY w.n
            LIMIT $3
            """
        args: list[object] = [org, list(audience.contact_ids), limit]
    else:
        query = f"""
            SELECT ct.id, ct.telegram_id, ct.username,
                   (row_number() OVER (ORDER BY ct.created_at, ct.id))::int - 1 AS position
            FROM contacts ct
            WHERE ct.organization_id = $1 AND {_REACHABLE}
              AND ($2::uuid IS NULL OR ct.company_id = $2)
              AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM leads l WHERE l.contact_id = ct.id AND l.pipeline_id = $3
                                               AND l.organization_id = $1 AND l.deleted_at IS NULL))
              AND (NOT $4 OR NOT EXISTS (SELECT 1 FROM campaign_participants cp JOIN campaigns c ON c.id = cp.campaign_id
                                         WHERE cp.contact_id = ct.id AND c.organization_id = $1 AND c.deleted_at IS NULL
                                           AND c.id IS DISTINCT FROM $6::uuid))
            ORDER BY ct.created_at, ct.id
            LIMIT $5
            """
        args = [org, audience.company_id, audience.pipeline_id, audience.only_new, limit, missing_from]
    if missing_from is None:
        return await conn.fetch(query, *args)
    if audience.contact_ids:
        args.append(missing_from)
    return await conn.fetch(
        f"""
        SELECT a.* FROM ({query}) a
        WHERE NOT EXISTS (SELECT 1 FROM campaign_participants p
                          WHERE p.campaign_id = ${len(args)} AND p.contact_id = a.id)
        ORDER BY a.position
        """,
        *args,
    )


_SCHEDULED_COLUMNS = (
    "campaign_id",
    "contact_id",
    "bd_account_id",
    "channel_id",
    "next_send_at",
    "status",
    "current_step",
    "enqueue_order",
)


async def insert_scheduled(
    conn: asyncpg.Connection,
    campaign_id: uuid.UUID,
    contact_ids: Sequence[uuid.UUID],
    orders: Sequence[int],
    accounts: Sequence[uuid.UUID],
    channels: Sequence[str],
    due: Sequence[datetime],
    step: int,
) -> int:
    """New participants already scheduled; a contact already in the campaign is skipped. Written with
    COPY (no per-row conflict check, binary rows): a unique violation — a contact added meanwhile by another
    writer — rolls back to a savepoint and the rows go again through ``INSERT … ON CONFLICT DO NOTHING``."""
    if not contact_ids:
        return 0
    records = [
        (campaign_id, contact, account, channel, at, "pending", step, position)
        for contact, position, account, channel, at in zip(
            contact_ids, orders, accounts, channels, due, strict=True
        )
    ]
    try:
        async with conn.transaction():
            status = await conn.copy_records_to_table(
                "campaign_participants", records=records, columns=_SCHEDULED_COLUMNS
            )
    except asyncpg.UniqueViolationError:
        status = await conn.execute(
            """
            INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, channel_id, next_send_at,
                                               status, current_step, enqueue_order)
            SELECT $1, u.contact, u.account, u.channel, u.due, 'pending', $7, u.position
            FROM unnest($2::uuid[], $3::int[], $4::uuid[], $5::varchar[], $6::timestamptz[])
                 AS u (contact, position, account, channel, due)
            ON CONFLICT (campaign_id, contact_id) DO NOTHING
            """,
            campaign_id,
            list(contact_ids),
            list(orders),
            list(accounts),
            list(channels),
            list(due),
            step,
        )
    return int(status.rsplit(" ", 1)[-1])


async def begin_enrolment(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> None:
    """The campaign's audience is not all written yet (migrations/0009)."""
    await conn.execute(
        "INSERT INTO campaign_enrolments (campaign_id) VALUES ($1) ON CONFLICT DO NOTHING", campaign_id
    )


async def hold_enrolment(conn: asyncpg.Connection, campaign_id: uuid.UUID, *, wait: bool) -> bool:
    """True when the campaign's audience is not all written and this transaction now holds that (its row
    locked until the end of the transaction): waiting for another holder to finish with ``wait``, else
    False while one holds it."""
    skip = "" if wait else " SKIP LOCKED"
    found = await conn.fetchval(
        f"SELECT true FROM campaign_enrolments WHERE campaign_id = $1 FOR UPDATE{skip}", campaign_id
    )
    return bool(found)


async def end_enrolment(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM campaign_enrolments WHERE campaign_id = $1", campaign_id)


async def add_contacts(
    conn: asyncpg.Connection, campaign_id: uuid.UUID, org: uuid.UUID, contact_ids: Sequence[uuid.UUID]
) -> tuple[int, int]:
    """Add contacts of the organization as pending participants after the current queue; returns
    (inserted, eligible — contacts of the org with a Telegram id or username, not on the do-not-contact
    list)."""
    eligible = await conn.fetch(
        f"""
        SELECT ct.id FROM unnest($2::uuid[]) WITH ORDINALITY AS w (id, n)
        JOIN contacts ct ON ct.id = w.id AND ct.organization_id = $1 AND {_REACHABLE}
        ORDER BY w.n
        """,
        org,
        list(contact_ids),
    )
    ids = [r["id"] for r in eligible]
    if not ids:
        return 0, 0
    base = await conn.fetchval(
        "SELECT COALESCE(max(enqueue_order) + 1, 0) FROM campaign_participants WHERE campaign_id = $1",
        campaign_id,
    )
    status = await conn.execute(
        """
        INSERT INTO campaign_participants (campaign_id, contact_id, status, current_step, enqueue_order)
        SELECT $1, w.id, 'pending', 0, $3 + (w.n::int - 1) FROM unnest($2::uuid[]) WITH ORDINALITY AS w (id, n)
        ON CONFLICT (campaign_id, contact_id) DO NOTHING
        """,
        campaign_id,
        ids,
        base,
    )
    return int(status.rsplit(" ", 1)[-1]), len(ids)


async def unscheduled(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> list[asyncpg.Record]:
    """Participants never scheduled: pending at the first step, no due time, nothing sent."""
    return await conn.fetch(
        """
        SELECT cp.id, cp.bd_account_id, ct.telegram_id, ct.username, ct.deleted_at
        FROM campaign_participants cp JOIN contacts ct ON ct.id = cp.contact_id
        WHERE cp.campaign_id = $1 AND cp.status = 'pending' AND cp.next_send_at IS NULL
          AND cp.last_sent_at IS NULL AND cp.waiting_reason IS DISTINCT FROM 'reply'
        ORDER BY cp.enqueue_order NULLS LAST, cp.created_at, cp.id
        FOR UPDATE OF cp
        """,
        campaign_id,
    )


async def sending_accounts(
    conn: asyncpg.Connection, org: uuid.UUID, wanted: Sequence[uuid.UUID]
) -> list[asyncpg.Record]:
    """The audience's active accounts of the organization in audience order; without any named, the
    organization's first active account (as the original). With each account's ramp (``ramp_*``,
    storage/ramps.py), so the first sends are spread at the budget the limiter will keep."""
    columns = f"a.id, a.timezone, a.working_hours_start, a.working_hours_end, a.working_days, a.max_dm_per_day, {ramps.PREFIXED}"
    ramp = "LEFT JOIN campaign_account_ramps r ON r.bd_account_id = a.id"
    if wanted:
        return await conn.fetch(
            f"""
            SELECT {columns} FROM unnest($2::uuid[]) WITH ORDINALITY AS w (id, n)
            JOIN bd_accounts a USING (id) {ramp}
            WHERE a.organization_id = $1 AND a.is_active
            ORDER BY w.n
            """,
            org,
            list(wanted),
        )
    return await conn.fetch(
        f"""SELECT {columns} FROM bd_accounts a {ramp} WHERE a.organization_id = $1 AND a.is_active
            ORDER BY a.created_at, a.id LIMIT 1""",
        org,
    )


async def account_loads(
    conn: asyncpg.Connection, campaign_id: uuid.UUID, accounts: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, datetime | None]]:
    """Per account: participants already on it in this campaign, and the due time of the last first send
    still queued on it (follow-ups of participants already contacted do not hold new ones back)."""
    rows = await conn.fetch(
        """
        SELECT bd_account_id, count(*) AS n,
               max(next_send_at) FILTER (WHERE status = 'pending' AND last_sent_at IS NULL
                                          AND next_send_at > now()) AS latest
        FROM campaign_participants
        WHERE campaign_id = $1 AND bd_account_id = ANY($2::uuid[])
        GROUP BY bd_account_id
        """,
        campaign_id,
        list(accounts),
    )
    return {r["bd_account_id"]: (r["n"], r["latest"]) for r in rows}


async def sent_since_each(
    conn: asyncpg.Connection, since: Mapping[uuid.UUID, datetime]
) -> dict[uuid.UUID, int]:
    """Per account, the sends that count toward its daily cap since its own instant (its local midnight)."""
    rows = await conn.fetch(
        """
        SELECT u.id, count(s.id)::int AS n
        FROM unnest($1::uuid[], $2::timestamptz[]) AS u (id, since)
        LEFT JOIN campaign_sends s ON s.bd_account_id = u.id AND s.claimed_at >= u.since
             AND s.status IN ('sent', 'sending', 'in_doubt')
        GROUP BY u.id
        """,
        list(since),
        list(since.values()),
    )
    return {r["id"]: r["n"] for r in rows}


async def apply_schedule(
    conn: asyncpg.Connection,
    ids: Sequence[uuid.UUID],
    accounts: Sequence[uuid.UUID],
    channels: Sequence[str],
    due: Sequence[datetime],
    step: int,
) -> None:
    await conn.execute(
        """
        UPDATE campaign_participants cp
        SET bd_account_id = u.account, channel_id = u.channel, next_send_at = u.due, current_step = $5,
            status = 'pending', waiting_reason = NULL, updated_at = now()
        FROM unnest($1::uuid[], $2::uuid[], $3::varchar[], $4::timestamptz[]) AS u (id, account, channel, due)
        WHERE cp.id = u.id
        """,
        list(ids),
        list(accounts),
        list(channels),
        list(due),
        step,
    )


async def mark_unreachable(conn: asyncpg.Connection, ids: Sequence[uuid.UUID], reason: str) -> None:
    if ids:
        await conn.execute(
            """
            UPDATE campaign_participants
            SET status = 'failed', last_error = $2, failed_at = now(), next_send_at = NULL, updated_at = now()
            WHERE id = ANY($1::uuid[])
            """,
            list(ids),
            reason,
        )
