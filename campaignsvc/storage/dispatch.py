"""The send path's SQL: loading a campaign, finding due participants, claiming a send, recording outcomes.

The claim is the heart of "effectively once" (docs/architecture.md): in one transaction it locks the
participant, checks it is still due at that step in an active campaign, and writes the ledger row
``(participant, step) → sending`` with its idempotency key before Messaging is called. The unique ledger
key makes a second claim of the same step impossible; a row left in ``sending`` by a crash is in doubt
and is retried only with the same key and the same text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import attrs

from campaignsvc.domain.campaign import ParticipantUpdate
from campaignsvc.domain.claims import (
    Claimed,
    ClaimResult,
    ContactGone,
    Decide,
    Facts,
    NotDue,
    Quarantined,
    Recovered,
    Skipped,
    SkipStep,
)


def idempotency_key(campaign_id: uuid.UUID, participant_id: uuid.UUID, step_key: int) -> str:
    """SPEC R-DEL-2: the key Messaging de-duplicates on. ``step_key`` is the step's own number
    (``campaign_sequences.step_key``), not its position: moving a step never gives it a new key."""
    return f"campaign:{campaign_id}:participant:{participant_id}:step:{step_key}"


async def load_campaign(
    conn: asyncpg.Connection, campaign_id: uuid.UUID
) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    campaign = await conn.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    # A template of another organization (the original let a step point at any template) is not this
    # campaign's: its step is loaded without text and skipped as "template missing", never sent.
    steps = await conn.fetch(
        """
        SELECT s.id, s.order_index, s.created_at, s.trigger_type, s.delay_hours, s.delay_minutes, s.is_hidden,
               s.template_id, s.conditions, s.step_key, t.content
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


@attrs.frozen
class DueRow:
    participant_id: uuid.UUID
    bd_account_id: uuid.UUID
    step: int
    due_at: datetime


async def due_window(
    conn: asyncpg.Connection, campaign_id: uuid.UUID, until: datetime, limit: int
) -> tuple[list[DueRow], datetime | None]:
    """Participants of the campaign due up to ``until`` (earliest first, at most ``limit``), skipping
    accounts paused for this campaign; and the earliest due time after ``until`` (None if none)."""
    rows = await conn.fetch(
        """
        SELECT cp.id, cp.bd_account_id, cp.current_step, cp.next_send_at
        FROM campaign_participants cp
        WHERE cp.campaign_id = $1 AND cp.status IN ('pending', 'sent') AND cp.next_send_at IS NOT NULL
          AND cp.next_send_at <= $2 AND cp.bd_account_id IS NOT NULL
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
    )
    later = await conn.fetchval(
        """
        SELECT min(next_send_at) FROM campaign_participants
        WHERE campaign_id = $1 AND status IN ('pending', 'sent') AND next_send_at > $2
        """,
        campaign_id,
        until,
    )
    return [DueRow(r["id"], r["bd_account_id"], r["current_step"], r["next_send_at"]) for r in rows], later


async def earliest_pause_end(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> datetime | None:
    return await conn.fetchval(
        "SELECT min(paused_until) FROM campaign_account_pauses WHERE campaign_id = $1 AND paused_until > now()",
        campaign_id,
    )


# --- the claim -----------------------------------------------------------------------------------------

_RETRYABLE = ("in_doubt", "deferred", "failed")
# The contact fields conditions and templates read (original-v1 §3.3 StepConditions, R-TPL-1).
CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "display_name",
    "username",
    "email",
    "phone",
    "telegram_id",
    "company_name",
)


async def claim(
    conn: asyncpg.Connection,
    *,
    participant_id: uuid.UUID,
    step: int,
    step_key: int,
    bd_account_id: uuid.UUID,
    quarantine: timedelta,
    pipelines: Sequence[uuid.UUID],
    decide: Decide,
    start_at: datetime | None = None,
) -> ClaimResult:
    """Run inside a transaction. ``step`` is the participant's position, ``step_key`` that step's own
    number (its ledger row and key). ``decide`` (pure) renders the text or skips the step."""
    # One read for everything the decision needs; the participant row lock serialises this claim with
    # replies, other claims of the participant and the recorder's update of it.
    p = await conn.fetchrow(
        """
        SELECT cp.campaign_id, cp.contact_id, cp.bd_account_id, cp.channel_id, cp.status, cp.current_step,
               cp.next_send_at, cp.last_sent_at, cp.replied_at, cp.attempts, c.status AS campaign_status,
               c.deleted_at, c.organization_id, now() AS now,
               EXISTS (SELECT 1 FROM campaign_account_pauses ap
                       WHERE ap.campaign_id = cp.campaign_id AND ap.bd_account_id = cp.bd_account_id
                         AND (ap.paused_until IS NULL OR ap.paused_until > now())) AS account_paused,
               s.id AS send_id, s.status AS send_status, s.content AS send_content, s.claimed_at AS send_claimed_at,
               s.message_id AS send_message_id, s.idempotency_key AS send_key,
               ct.first_name, ct.last_name, ct.display_name, ct.username, ct.email, ct.phone, ct.telegram_id,
               ct.deleted_at AS contact_deleted_at, ct.organization_id AS contact_organization_id,
               co.name AS company_name
        FROM campaign_participants cp
        JOIN campaigns c ON c.id = cp.campaign_id
        LEFT JOIN campaign_sends s ON s.campaign_participant_id = cp.id AND s.sequence_step = $2
                                   AND s.idempotency_key IS NOT NULL
        LEFT JOIN contacts ct ON ct.id = cp.contact_id AND ct.organization_id = c.organization_id
        LEFT JOIN companies co ON co.id = ct.company_id AND co.organization_id = c.organization_id
        WHERE cp.id = $1
        FOR UPDATE OF cp
        """,
        participant_id,
        step_key,
    )
    if p is None:
        return NotDue("participant deleted")
    if p["campaign_status"] != "active" or p["deleted_at"] is not None:
        return NotDue(f"campaign {p['campaign_status']}")
    if p["status"] not in ("pending", "sent") or p["current_step"] != step:
        return NotDue(f"participant {p['status']} at step {p['current_step']}")
    if p["bd_account_id"] != bd_account_id or p["account_paused"]:
        return NotDue("account changed or paused for this campaign")
    if p["next_send_at"] is None or p["next_send_at"] > p["now"] + timedelta(seconds=1):
        return NotDue("not due")

    first_send = p["last_sent_at"] is None
    if p["send_id"] is not None:
        if p["send_status"] == "sent":
            return Recovered(p["send_message_id"], first_send=first_send)
        if p["send_status"] == "sending" and p["send_claimed_at"] + quarantine > p["now"]:
            until = p["send_claimed_at"] + quarantine
            await conn.execute("UPDATE campaign_sends SET status = 'in_doubt' WHERE id = $1", p["send_id"])
            await _reschedule(conn, participant_id, until, "in_doubt")
            return Quarantined(until)
        if p["send_status"] in (*_RETRYABLE, "sending") and p["send_content"]:
            attempts = await conn.fetchval(
                f"""
                WITH retry AS (
                    UPDATE campaign_sends SET status = 'sending', attempts = attempts + 1, claimed_at = now()
                    WHERE id = $1 RETURNING attempts
                ), {_touch_account("$2", "$3")}
                SELECT attempts FROM retry
                """,
                p["send_id"],
                bd_account_id,
                start_at,
            )
            return Claimed(
                send_id=p["send_id"],
                # The key this row was first sent with, whatever the step's position or number now.
                idempotency_key=p["send_key"],
                content=p["send_content"],
                contact_id=p["contact_id"],
                channel_id=p["channel_id"],
                first_send=first_send,
                attempts=attempts,
                participant_attempts=p["attempts"],
            )
        # 'skipped' rows (or a row without text) fall through: decide again.

    if p["contact_organization_id"] != p["organization_id"] or p["contact_deleted_at"] is not None:
        return ContactGone("Contact was deleted")
    if not p["channel_id"]:
        return ContactGone("Contact has no Telegram ID or username")
    stages: dict[uuid.UUID, uuid.UUID] = {}
    if pipelines:
        rows = await conn.fetch(
            """
            SELECT pipeline_id, stage_id FROM leads
            WHERE organization_id = $1 AND contact_id = $2 AND deleted_at IS NULL AND pipeline_id = ANY($3::uuid[])
            """,
            p["organization_id"],
            p["contact_id"],
            list(pipelines),
        )
        stages = {r["pipeline_id"]: r["stage_id"] for r in rows}
    fields = {name: p[name] for name in CONTACT_FIELDS}
    decision = decide(
        Facts(
            contact=fields,
            company_name=p["company_name"],
            has_replied=p["replied_at"] is not None,
            sent_before=not first_send,
            lead_stages=stages,
        )
    )
    key = idempotency_key(p["campaign_id"], participant_id, step_key)
    if isinstance(decision, SkipStep):
        await conn.execute(
            """
            INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, idempotency_key, campaign_id,
                                        bd_account_id, attempts, claimed_at, completed_at, sent_at, metadata)
            VALUES ($1, $2, 'skipped', $3, $4, $5, 0, now(), now(), now(), $6)
            ON CONFLICT (campaign_participant_id, sequence_step) WHERE idempotency_key IS NOT NULL
            DO UPDATE SET status = 'skipped', metadata = EXCLUDED.metadata, completed_at = now()
            """,
            participant_id,
            step_key,
            key,
            p["campaign_id"],
            bd_account_id,
            {"event": "skipped", "reason": decision.reason, "detail": decision.detail},
        )
        await apply_updates(conn, [Advance(participant_id, step, decision.update, None, None)])
        return Skipped(decision.update, decision.reason)

    send_id = await conn.fetchval(
        f"""
        WITH claimed AS (
            INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, idempotency_key, content,
                                        campaign_id, bd_account_id, attempts, claimed_at, sent_at)
            VALUES ($1, $2, 'sending', $3, $4, $5, $6, 1, now(), now())
            ON CONFLICT (campaign_participant_id, sequence_step) WHERE idempotency_key IS NOT NULL
            DO UPDATE SET status = 'sending', content = EXCLUDED.content, attempts = campaign_sends.attempts + 1,
                          claimed_at = now(), metadata = '{{}}'
            RETURNING id
        ), {_touch_account("$6", "$7")}
        SELECT id FROM claimed
        """,
        participant_id,
        step_key,
        key,
        decision.text,
        p["campaign_id"],
        bd_account_id,
        start_at,
    )
    return Claimed(
        send_id=send_id,
        idempotency_key=key,
        content=decision.text,
        contact_id=p["contact_id"],
        channel_id=p["channel_id"],
        first_send=first_send,
        attempts=1,
        participant_attempts=p["attempts"],
    )


def _touch_account(account: str, start_at: str) -> str:
    """A CTE recording the account's last send start in the claim's own statement, so the gap survives a
    restart at no extra round-trip (PostgreSQL runs a data-modifying CTE even when nothing reads it).
    The claim runs ahead of the call (actors.limiter.CLAIM_LEAD), so what it records is when the call will
    start: the planned start, or now if the claim ran late (the call then starts at once). The exact start
    is the ledger's ``sent_at``, written with the outcome (storage/accounts.limiter_state reads both)."""
    # clock_timestamp(), not now(): now() is the transaction's start, a slow claim's whole duration early.
    start = f"GREATEST(clock_timestamp(), COALESCE({start_at}::timestamptz, clock_timestamp()))"
    return f"""touched AS (
            INSERT INTO campaign_account_state (bd_account_id, last_send_at, updated_at) VALUES ({account}, {start}, now())
            ON CONFLICT (bd_account_id) DO UPDATE SET last_send_at = {start}, updated_at = now()
        )"""


async def _reschedule(conn: asyncpg.Connection, participant_id: uuid.UUID, at: datetime, reason: str) -> None:
    await conn.execute(
        "UPDATE campaign_participants SET next_send_at = $2, waiting_reason = $3, updated_at = now() WHERE id = $1",
        participant_id,
        at,
        reason,
    )


async def finish_sends(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[uuid.UUID, str, uuid.UUID | None, str | None, str | None, datetime | None]],
) -> None:
    """Record outcomes on ledger rows, in one statement: (id, status, message id, error class, error,
    call start). ``sent_at`` is when the Messaging call started (the request was written), if it was made."""
    if not rows:
        return
    ids, statuses, messages, classes, errors, starts = (list(col) for col in zip(*rows, strict=True))
    await conn.execute(
        """
        UPDATE campaign_sends s
        SET status = u.status, message_id = COALESCE(u.message_id, s.message_id), error_class = u.error_class,
            last_error = u.error, sent_at = COALESCE(u.started, now()), completed_at = now()
        FROM unnest($1::uuid[], $2::varchar[], $3::uuid[], $4::varchar[], $5::text[], $6::timestamptz[])
             AS u (id, status, message_id, error_class, error, started)
        WHERE s.id = u.id
        """,
        ids,
        statuses,
        messages,
        classes,
        errors,
        starts,
    )


@attrs.frozen
class Advance:
    participant_id: uuid.UUID
    step: int
    update: ParticipantUpdate
    last_sent_at: datetime | None
    channel_id: str | None


async def apply_updates(conn: asyncpg.Connection, advances: Sequence[Advance]) -> set[uuid.UUID]:
    """Move participants on from their step, in one statement; each is guarded by its own step, so a reply
    or another writer that got there first wins. Returns the participants that were still at their step."""
    if not advances:
        return set()
    u = [a.update for a in advances]
    rows = await conn.fetch(
        """
        UPDATE campaign_participants cp
        SET current_step = n.current_step, status = n.status, next_send_at = n.next_send_at,
            waiting_reason = n.waiting_reason, attempts = n.attempts, last_error = COALESCE(n.last_error, cp.last_error),
            failed_at = CASE WHEN n.status = 'failed' THEN now() ELSE cp.failed_at END,
            last_sent_at = COALESCE(n.last_sent_at, cp.last_sent_at), channel_id = COALESCE(n.channel_id, cp.channel_id),
            updated_at = now()
        FROM unnest($1::uuid[], $2::int[], $3::int[], $4::varchar[], $5::timestamptz[], $6::varchar[], $7::int[],
                    $8::text[], $9::timestamptz[], $10::varchar[])
             AS n (id, step, current_step, status, next_send_at, waiting_reason, attempts, last_error, last_sent_at,
                   channel_id)
        WHERE cp.id = n.id AND cp.current_step = n.step AND cp.status IN ('pending', 'sent')
        RETURNING cp.id
        """,
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
    )
    moved = {r["id"] for r in rows}
    sent_anyway = [a for a in advances if a.participant_id not in moved and a.last_sent_at is not None]
    if sent_anyway:
        # Replied (or stopped) while the message was on its way: it was still sent.
        await conn.execute(
            """
            UPDATE campaign_participants cp SET last_sent_at = u.at, updated_at = now()
            FROM unnest($1::uuid[], $2::timestamptz[]) AS u (id, at) WHERE cp.id = u.id
            """,
            [a.participant_id for a in sent_anyway],
            [a.last_sent_at for a in sent_anyway],
        )
    return moved


async def mark_leads_due(conn: asyncpg.Connection, participant_ids: Sequence[uuid.UUID]) -> None:
    if participant_ids:
        await conn.execute(
            "UPDATE campaign_participants SET lead_due_at = now() WHERE id = ANY($1::uuid[]) AND lead_created_at IS NULL",
            list(participant_ids),
        )


async def recover_unfinished(conn: asyncpg.Connection, quarantine: timedelta) -> int:
    """After a crash: every ``sending`` row is in doubt; its participant, if still at that step, waits out
    the quarantine. The row names its step by key; the participant by position: the position of the step
    with that key (none when the step was deleted since)."""
    return await conn.fetchval(
        """
        WITH doubted AS (
            UPDATE campaign_sends SET status = 'in_doubt'
            WHERE status = 'sending' AND idempotency_key IS NOT NULL
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
