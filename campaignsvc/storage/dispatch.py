"""The send path's SQL around the claim (storage/claims.py): loading a campaign, finding due participants,
recording outcomes, recovering the sends a crash left unfinished."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import attrs

from campaignsvc.domain.campaign import ParticipantUpdate
from campaignsvc.storage import outbox


def idempotency_key(campaign_id: uuid.UUID, participant_id: uuid.UUID, step_key: int) -> str:
    """SPEC R-DEL-2: the key Messaging de-duplicates on. ``step_key`` is the step's own number
    (``campaign_sequences.step_key``), not its position: moving a step never gives it a new key."""
    return f"campaign:{campaign_id}:participant:{participant_id}:step:{step_key}"


async def load_campaign(
    conn: asyncpg.Connection, campaign_id: uuid.UUID
) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    campaign = await conn.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    # A template of another organization (the original let a step point at any template) is not this
    # campaign's: its step is loaded without text and skipped as "template missing", never sent. Each
    # step comes with its A/B variants (``variants``: JSON, creation order; NULL without any), the same way.
    steps = await conn.fetch(
        """
        SELECT s.id, s.order_index, s.created_at, s.trigger_type, s.delay_hours, s.delay_minutes, s.is_hidden,
               s.template_id, s.conditions, s.step_key, t.content, s.auto_winner,
               (SELECT jsonb_agg(jsonb_build_object('id', v.id, 'template_id', v.template_id, 'weight', v.weight,
                                                    'content', vt.content)
                                 ORDER BY v.created_at, v.id)
                FROM campaign_step_variants v
                LEFT JOIN campaign_templates vt ON vt.id = v.template_id AND vt.organization_id = c.organization_id
                WHERE v.step_id = s.id) AS variants
        FROM campaign_sequences s
        JOIN campaigns c ON c.id = s.campaign_id
        LEFT JOIN campaign_templates t ON t.id = s.template_id AND t.organization_id = c.organization_id
        WHERE s.campaign_id = $1
        """,
        campaign_id,
    )
    return campaign, steps


async def active_campaign_ids(conn: asyncpg.Connection) -> list[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM campaigns WHERE status = 'active' AND deleted_at IS NULL")
    return [r["id"] for r in rows]


def held_by(owner: str, cp: str = "cp") -> str:
    """SQL: the participant row ``cp`` is on an account the instance ``owner`` (a parameter) holds
    (migrations/0015)."""
    return (
        "EXISTS (SELECT 1 FROM campaign_account_leases la"
        f" WHERE la.bd_account_id = {cp}.bd_account_id AND la.owner = {owner})"
    )


@attrs.frozen
class DueRow:
    participant_id: uuid.UUID
    bd_account_id: uuid.UUID
    step: int
    due_at: datetime


async def due_window(
    conn: asyncpg.Connection,
    campaign_id: uuid.UUID,
    until: datetime,
    limit: int,
    *,
    owner: str | None = None,
) -> tuple[list[DueRow], datetime | None]:
    """Participants of the campaign due up to ``until`` (earliest first, at most ``limit``), skipping
    accounts paused for this campaign and, given an ``owner``, accounts that instance does not hold; and
    the earliest due time after ``until`` (None if none) on the same accounts."""
    mine = f"($4::text IS NULL OR {held_by('$4')})"
    rows = await conn.fetch(
        f"""
        SELECT cp.id, cp.bd_account_id, cp.current_step, cp.next_send_at
        FROM campaign_participants cp
        WHERE cp.campaign_id = $1 AND cp.status IN ('pending', 'sent') AND cp.next_send_at IS NOT NULL
          AND cp.next_send_at <= $2 AND cp.bd_account_id IS NOT NULL AND {mine}
          AND NOT EXISTS (
              SELECT 1 FROM campaign_account_pauses p
              WHERE p.campaign_id = cp.campaign_id AND p.bd_account_id = cp.bd_account_id
                AND (p.paused_until IS NULL OR p.paused_until > now()))
        ORDER BY cp.next_send_at, cp.id
        LIMIT $3
        """,
        campaign_id,
        until,
        limit,
        owner,
    )
    later = await conn.fetchval(
        f"""
        SELECT min(cp.next_send_at) FROM campaign_participants cp
        WHERE cp.campaign_id = $1 AND cp.status IN ('pending', 'sent') AND cp.next_send_at > $2
          AND ($3::text IS NULL OR {held_by("$3")})
        """,
        campaign_id,
        until,
        owner,
    )
    return [DueRow(r["id"], r["bd_account_id"], r["current_step"], r["next_send_at"]) for r in rows], later


async def earliest_pause_end(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> datetime | None:
    return await conn.fetchval(
        "SELECT min(paused_until) FROM campaign_account_pauses WHERE campaign_id = $1 AND paused_until > now()",
        campaign_id,
    )


@attrs.frozen
class Advance:
    """A participant's next state after its step (``update``), as of the step it was at."""

    participant_id: uuid.UUID
    step: int
    update: ParticipantUpdate
    last_sent_at: datetime | None
    channel_id: str | None
    lead_due: bool = False  # its pipeline lead is owed now (created by actors/leads.py)
    epoch: int | None = None  # the account's lease it was decided under (None: unfenced)


@attrs.frozen
class Finished:
    """A ledger row's outcome; ``started`` when the Messaging call started (the request was written)."""

    send_id: uuid.UUID
    status: str
    message_id: uuid.UUID | None
    error_class: str | None
    error: str | None
    started: datetime | None
    epoch: int | None = None  # the account's lease its call was made under (None: unfenced)


# One statement for a batch of outcomes: the ledger rows finished, the participants moved on from their
# step — each guarded by its own step, so a reply or another writer that got there first wins, and a
# participant that replied while its message was on the way still gets its last_sent_at (and its lead) —
# and the outbox events. Data-modifying CTEs share one snapshot; no two of them touch the same row.
# What Messaging passes through when the recipient blocked the account (domain/delivery: a recipient error).
BLOCKED_BY_USER = "user_is_blocked"


def _leased(row: str, arg: str) -> str:
    """SQL: the outcome was decided under the lease the instance (``$22``) still holds on ``row``'s account
    — or carries no epoch. An outcome of an instance that lost the account is not written: the one that
    took it over found the row in doubt and resolves it with the same key (actors/leases.py)."""
    return (
        f"({arg}.epoch IS NULL OR EXISTS (SELECT 1 FROM campaign_account_leases la"
        f" WHERE la.bd_account_id = {row}.bd_account_id AND la.owner = $22 AND la.epoch = {arg}.epoch))"
    )


_RECORD = f"""
    WITH finished AS (
        UPDATE campaign_sends s
        SET status = f.status, message_id = COALESCE(f.message_id, s.message_id), error_class = f.error_class,
            last_error = f.error, sent_at = COALESCE(f.started, now()), completed_at = now()
        FROM unnest($12::uuid[], $13::varchar[], $14::uuid[], $15::varchar[], $16::text[], $17::timestamptz[],
                    $24::bigint[])
             AS f (id, status, message_id, error_class, error, started, epoch)
        WHERE s.id = f.id AND {_leased("s", "f")}
    ), moved AS (
        UPDATE campaign_participants cp
        SET current_step = n.current_step, status = n.status, next_send_at = n.next_send_at,
            waiting_reason = n.waiting_reason, attempts = n.attempts, last_error = COALESCE(n.last_error, cp.last_error),
            failed_at = CASE WHEN n.status = 'failed' THEN now() ELSE cp.failed_at END,
            last_sent_at = COALESCE(n.last_sent_at, cp.last_sent_at), channel_id = COALESCE(n.channel_id, cp.channel_id),
            lead_due_at = CASE WHEN n.lead AND cp.lead_created_at IS NULL THEN now() ELSE cp.lead_due_at END,
            updated_at = now()
        FROM unnest($1::uuid[], $2::int[], $3::int[], $4::varchar[], $5::timestamptz[], $6::varchar[], $7::int[],
                    $8::text[], $9::timestamptz[], $10::varchar[], $11::bool[], $23::bigint[])
             AS n (id, step, current_step, status, next_send_at, waiting_reason, attempts, last_error, last_sent_at,
                   channel_id, lead, epoch)
        WHERE cp.id = n.id AND cp.current_step = n.step AND cp.status IN ('pending', 'sent') AND {_leased("cp", "n")}
        RETURNING cp.id
    ), sent_anyway AS (
        UPDATE campaign_participants cp
        SET last_sent_at = COALESCE(a.at, cp.last_sent_at),
            lead_due_at = CASE WHEN a.lead AND cp.lead_created_at IS NULL THEN now() ELSE cp.lead_due_at END,
            updated_at = now()
        FROM unnest($1::uuid[], $9::timestamptz[], $11::bool[], $23::bigint[]) AS a (id, at, lead, epoch)
        WHERE cp.id = a.id AND (a.at IS NOT NULL OR a.lead) AND a.id NOT IN (SELECT id FROM moved)
          AND {_leased("cp", "a")}
    ), blocked AS (
        -- The user blocked the account: nobody in the organization messages them again (do-not-contact).
        INSERT INTO campaign_do_not_contact (organization_id, contact_id, reason, source_campaign_id)
        SELECT c.organization_id, cp.contact_id, 'blocked_by_user', cp.campaign_id
        FROM unnest($12::uuid[], $16::text[], $24::bigint[]) AS b (id, error, epoch)
        JOIN campaign_sends s ON s.id = b.id AND {_leased("s", "b")}
        JOIN campaign_participants cp ON cp.id = s.campaign_participant_id
        JOIN campaigns c ON c.id = cp.campaign_id
        WHERE strpos(lower(b.error), '{BLOCKED_BY_USER}') > 0
        ON CONFLICT DO NOTHING
    ), events AS ({outbox.insert_many(18)})
    SELECT id FROM moved
"""


async def record(
    conn: asyncpg.Connection,
    advances: Sequence[Advance],
    finished: Sequence[Finished] = (),
    events: Sequence[tuple[str, uuid.UUID | None, dict[str, Any]]] = (),
    *,
    owner: str | None = None,
) -> set[uuid.UUID]:
    """Outcomes in one statement: participants moved on, ledger rows finished, ``(event_type, organization,
    data)`` events in the outbox. Returns the participants that were still at their step. Rows with an
    epoch are written only while ``owner`` holds their account's lease under it; events are not fenced
    (they are delivered at least once anyway: the one who resolves the send tells it again)."""
    if not (advances or finished or events):
        return set()
    u = [a.update for a in advances]
    rows = await conn.fetch(
        _RECORD,
        [a.participant_id for a in advances],
        [a.step for a in advances],
        [x.current_step for x in u],
        [x.status for x in u],
        [x.next_send_at for x in u],
        [x.waiting_reason for x in u],
        [x.attempts for x in u],
        [x.last_error for x in u],
        [a.last_sent_at for a in advances],
        [a.channel_id for a in advances],
        [a.lead_due for a in advances],
        [f.send_id for f in finished],
        [f.status for f in finished],
        [f.message_id for f in finished],
        [f.error_class for f in finished],
        [f.error for f in finished],
        [f.started for f in finished],
        *outbox.rows(events),
        owner,
        [a.epoch for a in advances],
        [f.epoch for f in finished],
    )
    return {r["id"] for r in rows}


async def recover_unfinished(
    conn: asyncpg.Connection, quarantine: timedelta, accounts: Sequence[uuid.UUID] | None = None
) -> int:
    """After a crash (of this process, or of the instance that held ``accounts``; None: every account):
    every ``sending`` row is in doubt; its participant, if still at that step, waits out the quarantine.
    The row names its step by key; the participant by position: the position of the step with that key
    (none when the step was deleted since)."""
    return await conn.fetchval(
        """
        WITH doubted AS (
            UPDATE campaign_sends SET status = 'in_doubt'
            WHERE status = 'sending' AND idempotency_key IS NOT NULL
              AND ($2::uuid[] IS NULL OR bd_account_id = ANY($2::uuid[]))
            RETURNING campaign_participant_id, sequence_step, claimed_at
        ), waiting AS (
            UPDATE campaign_participants cp
            SET next_send_at = d.claimed_at + $1, waiting_reason = 'in_doubt', updated_at = now()
            FROM doubted d
            JOIN campaign_sequences k ON k.step_key = d.sequence_step
            WHERE cp.id = d.campaign_participant_id AND k.campaign_id = cp.campaign_id
              AND cp.status IN ('pending', 'sent')
              AND cp.current_step = (
                  SELECT count(*) FROM campaign_sequences o
                  WHERE o.campaign_id = k.campaign_id
                    AND (o.order_index, o.created_at, o.id) < (k.order_index, k.created_at, k.id))
            RETURNING 1
        )
        SELECT count(*) FROM doubted
        """,
        quarantine,
        None if accounts is None else list(accounts),
    )


async def defer_account_in_campaign(
    conn: asyncpg.Connection,
    campaign_id: uuid.UUID,
    bd_account_id: uuid.UUID,
    until: datetime,
    reason: str,
) -> int:
    """Move every participant of this campaign on this account that is due before ``until`` to ``until``:
    one statement instead of one deferral per participant. ``until`` already carries the window's jitter
    (the limiter placed it); adding more could push a send past a short window into the next day. The
    account's gap spaces the moved participants out."""
    status = await conn.execute(
        """
        UPDATE campaign_participants
        SET next_send_at = $3, waiting_reason = $4, updated_at = now()
        WHERE campaign_id = $1 AND bd_account_id = $2 AND status IN ('pending', 'sent')
          AND next_send_at IS NOT NULL AND next_send_at < $3
        """,
        campaign_id,
        bd_account_id,
        until,
        reason,
    )
    return int(status.rsplit(" ", 1)[-1])
