"""The send path's SQL: loading a campaign, finding due participants, claiming a send, recording outcomes.

The claim is the heart of "effectively once" (docs/architecture.md): in one transaction it locks the
participant, checks it is still due at that step in an active campaign, and writes the ledger row
``(participant, step) → sending`` with its idempotency key before Messaging is called. The unique ledger
key makes a second claim of the same step impossible; a row left in ``sending`` by a crash is in doubt
and is retried only with the same key and the same text.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import attrs

from campaignsvc.domain.campaign import ParticipantUpdate


def idempotency_key(campaign_id: uuid.UUID, participant_id: uuid.UUID, step: int) -> str:
    """SPEC R-DEL-2: the key Messaging de-duplicates on."""
    return f"campaign:{campaign_id}:participant:{participant_id}:step:{step}"


async def load_campaign(
    conn: asyncpg.Connection, campaign_id: uuid.UUID
) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    campaign = await conn.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    steps = await conn.fetch(
        """
        SELECT s.id, s.order_index, s.created_at, s.trigger_type, s.delay_hours, s.delay_minutes, s.is_hidden,
               s.template_id, s.conditions, t.content
        FROM campaign_sequences s JOIN campaign_templates t ON t.id = s.template_id
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


@attrs.frozen
class SendText:
    text: str


@attrs.frozen
class SkipStep:
    reason: str
    detail: str
    update: ParticipantUpdate


@attrs.frozen
class Facts:
    """What the dispatcher decides a step on, read under the participant's lock."""

    contact: Mapping[str, Any]
    company_name: str | None
    has_replied: bool
    sent_before: bool
    lead_stages: Mapping[uuid.UUID, uuid.UUID]


Decide = Callable[[Facts], SendText | SkipStep]


@attrs.frozen
class Claimed:
    """The ledger row is ``sending``: call Messaging with exactly this key and text."""

    send_id: uuid.UUID
    idempotency_key: str
    content: str
    contact_id: uuid.UUID
    channel_id: str
    first_send: bool
    attempts: int  # attempts of this ledger row, this one included
    participant_attempts: int  # transient failures of this step so far


@attrs.frozen
class NotDue:
    """The participant moved on (reply, pause, another instance, a reschedule): nothing to send."""

    reason: str


@attrs.frozen
class Skipped:
    update: ParticipantUpdate
    reason: str


@attrs.frozen
class Quarantined:
    """An earlier attempt of this step may have been delivered; retry with the same key after ``until``."""

    until: datetime


@attrs.frozen
class Recovered:
    """The step was already recorded as sent (a repeat after a crash): advance without sending."""

    message_id: uuid.UUID | None
    first_send: bool


@attrs.frozen
class ContactGone:
    reason: str


ClaimResult = Claimed | NotDue | Skipped | Quarantined | Recovered | ContactGone

_RETRYABLE = ("in_doubt", "deferred", "failed")


async def claim(
    conn: asyncpg.Connection,
    *,
    participant_id: uuid.UUID,
    step: int,
    bd_account_id: uuid.UUID,
    quarantine: timedelta,
    pipelines: Sequence[uuid.UUID],
    decide: Decide,
) -> ClaimResult:
    """Run inside a transaction. ``decide`` (pure) renders the text or skips the step."""
    p = await conn.fetchrow(
        """
        SELECT cp.campaign_id, cp.contact_id, cp.bd_account_id, cp.channel_id, cp.status, cp.current_step,
               cp.next_send_at, cp.last_sent_at, cp.replied_at, cp.attempts, c.status AS campaign_status,
               c.deleted_at, c.organization_id, now() AS now,
               EXISTS (SELECT 1 FROM campaign_account_pauses ap
                       WHERE ap.campaign_id = cp.campaign_id AND ap.bd_account_id = cp.bd_account_id
                         AND (ap.paused_until IS NULL OR ap.paused_until > now())) AS account_paused
        FROM campaign_participants cp JOIN campaigns c ON c.id = cp.campaign_id
        WHERE cp.id = $1
        FOR UPDATE OF cp
        """,
        participant_id,
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

    ledger = await conn.fetchrow(
        """
        SELECT id, status, content, attempts, claimed_at, message_id FROM campaign_sends
        WHERE campaign_participant_id = $1 AND sequence_step = $2 AND idempotency_key IS NOT NULL
        FOR UPDATE
        """,
        participant_id,
        step,
    )
    first_send = p["last_sent_at"] is None
    if ledger is not None:
        if ledger["status"] == "sent":
            return Recovered(ledger["message_id"], first_send=first_send)
        if ledger["status"] == "sending" and ledger["claimed_at"] + quarantine > p["now"]:
            until = ledger["claimed_at"] + quarantine
            await conn.execute("UPDATE campaign_sends SET status = 'in_doubt' WHERE id = $1", ledger["id"])
            await _reschedule(conn, participant_id, until, "in_doubt")
            return Quarantined(until)
        if ledger["status"] in (*_RETRYABLE, "sending") and ledger["content"]:
            attempts = await conn.fetchval(
                """
                UPDATE campaign_sends SET status = 'sending', attempts = attempts + 1, claimed_at = now()
                WHERE id = $1 RETURNING attempts
                """,
                ledger["id"],
            )
            await _touch_account(conn, bd_account_id)
            return Claimed(
                send_id=ledger["id"],
                idempotency_key=idempotency_key(p["campaign_id"], participant_id, step),
                content=ledger["content"],
                contact_id=p["contact_id"],
                channel_id=p["channel_id"],
                first_send=first_send,
                attempts=attempts,
                participant_attempts=p["attempts"],
            )
        # 'skipped' rows (or a row without text) fall through: decide again.

    contact = await conn.fetchrow(
        """
        SELECT ct.first_name, ct.last_name, ct.display_name, ct.username, ct.email, ct.phone, ct.telegram_id,
               ct.deleted_at, co.name AS company_name
        FROM contacts ct LEFT JOIN companies co ON co.id = ct.company_id
        WHERE ct.id = $1 AND ct.organization_id = $2
        """,
        p["contact_id"],
        p["organization_id"],
    )
    if contact is None or contact["deleted_at"] is not None:
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
    fields = dict(contact.items())
    fields["company_name"] = contact["company_name"]
    decision = decide(
        Facts(
            contact=fields,
            company_name=contact["company_name"],
            has_replied=p["replied_at"] is not None,
            sent_before=not first_send,
            lead_stages=stages,
        )
    )
    key = idempotency_key(p["campaign_id"], participant_id, step)
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
            step,
            key,
            p["campaign_id"],
            bd_account_id,
            {"event": "skipped", "reason": decision.reason, "detail": decision.detail},
        )
        await apply_update(conn, participant_id, step, decision.update, last_sent_at=None, channel_id=None)
        return Skipped(decision.update, decision.reason)

    send_id = await conn.fetchval(
        """
        INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, idempotency_key, content,
                                    campaign_id, bd_account_id, attempts, claimed_at, sent_at)
        VALUES ($1, $2, 'sending', $3, $4, $5, $6, 1, now(), now())
        ON CONFLICT (campaign_participant_id, sequence_step) WHERE idempotency_key IS NOT NULL
        DO UPDATE SET status = 'sending', content = EXCLUDED.content, attempts = campaign_sends.attempts + 1,
                      claimed_at = now(), metadata = '{}'
        RETURNING id
        """,
        participant_id,
        step,
        key,
        decision.text,
        p["campaign_id"],
        bd_account_id,
    )
    await _touch_account(conn, bd_account_id)
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


async def _touch_account(conn: asyncpg.Connection, bd_account_id: uuid.UUID) -> None:
    """The account's last send start survives a restart, so the gap does too."""
    await conn.execute(
        """
        INSERT INTO campaign_account_state (bd_account_id, last_send_at, updated_at) VALUES ($1, now(), now())
        ON CONFLICT (bd_account_id) DO UPDATE SET last_send_at = now(), updated_at = now()
        """,
        bd_account_id,
    )


async def _reschedule(conn: asyncpg.Connection, participant_id: uuid.UUID, at: datetime, reason: str) -> None:
    await conn.execute(
        "UPDATE campaign_participants SET next_send_at = $2, waiting_reason = $3, updated_at = now() WHERE id = $1",
        participant_id,
        at,
        reason,
    )


async def apply_update(
    conn: asyncpg.Connection,
    participant_id: uuid.UUID,
    step: int,
    update: ParticipantUpdate,
    *,
    last_sent_at: datetime | None,
    channel_id: str | None,
) -> bool:
    """Move the participant on from ``step``; guarded so a reply or another writer that got there first
    wins. Returns whether the participant was still at that step."""
    done = await conn.fetchval(
        """
        UPDATE campaign_participants
        SET current_step = $3, status = $4::varchar, next_send_at = $5, waiting_reason = $6, attempts = $7,
            last_error = COALESCE($8, last_error),
            failed_at = CASE WHEN $4::varchar = 'failed' THEN now() ELSE failed_at END,
            last_sent_at = COALESCE($9, last_sent_at), channel_id = COALESCE($10, channel_id), updated_at = now()
        WHERE id = $1 AND current_step = $2 AND status IN ('pending', 'sent')
        RETURNING id
        """,
        participant_id,
        step,
        update.current_step,
        update.status,
        update.next_send_at,
        update.waiting_reason,
        update.attempts,
        update.last_error,
        last_sent_at,
        channel_id,
    )
    if done is None and last_sent_at is not None:
        # Replied (or stopped) while the message was on its way: it was still sent.
        await conn.execute(
            "UPDATE campaign_participants SET last_sent_at = $2, updated_at = now() WHERE id = $1",
            participant_id,
            last_sent_at,
        )
    return done is not None


async def finish_send(
    conn: asyncpg.Connection,
    *,
    send_id: uuid.UUID,
    status: str,
    message_id: uuid.UUID | None,
    error_class: str | None,
    error: str | None,
) -> None:
    await conn.execute(
        """
        UPDATE campaign_sends
        SET status = $2, message_id = COALESCE($3, message_id), error_class = $4, last_error = $5,
            sent_at = now(), completed_at = now()
        WHERE id = $1
        """,
        send_id,
        status,
        message_id,
        error_class,
        error,
    )


async def recover_unfinished(conn: asyncpg.Connection, quarantine: timedelta) -> int:
    """After a crash: every ``sending`` row is in doubt; its participant waits out the quarantine."""
    rows = await conn.fetch(
        """
        UPDATE campaign_sends SET status = 'in_doubt'
        WHERE status = 'sending' AND idempotency_key IS NOT NULL
        RETURNING campaign_participant_id, sequence_step, claimed_at
        """
    )
    for r in rows:
        await conn.execute(
            """
            UPDATE campaign_participants SET next_send_at = $3, waiting_reason = 'in_doubt', updated_at = now()
            WHERE id = $1 AND current_step = $2 AND status IN ('pending', 'sent')
            """,
            r["campaign_participant_id"],
            r["sequence_step"],
            r["claimed_at"] + quarantine,
        )
    return len(rows)


async def defer_account_in_campaign(
    conn: asyncpg.Connection,
    campaign_id: uuid.UUID,
    bd_account_id: uuid.UUID,
    until: datetime,
    reason: str,
    jitter_s: float,
) -> int:
    """Move every participant of this campaign on this account that is due before ``until`` to ``until``
    (plus jitter inside the window): one statement instead of one deferral per participant."""
    status = await conn.execute(
        """
        UPDATE campaign_participants
        SET next_send_at = $3 + random() * make_interval(secs => $5), waiting_reason = $4, updated_at = now()
        WHERE campaign_id = $1 AND bd_account_id = $2 AND status IN ('pending', 'sent')
          AND next_send_at IS NOT NULL AND next_send_at < $3
        """,
        campaign_id,
        bd_account_id,
        until,
        reason,
        jitter_s,
    )
    return int(status.rsplit(" ", 1)[-1])
