"""The claim's SQL (SPEC R-DEL-1/2): the heart of "effectively once", for many sends in one transaction.

For each send asked, under the participant's row lock: it is still due at that step in an active campaign
on that account; conditions and the template are decided on fresh data (``Ask.decide``, pure); and the
ledger row ``(participant, step) → sending`` with its idempotency key and exact text is written. All of it
commits before any Messaging call (the caller calls only after this returns). The unique ledger key makes
a second claim of the same step impossible; a row left ``sending`` by a crash is in doubt and is retried
only with the same key and the same text.

A batch is one read of every participant's facts (locked in id order, so two batches never deadlock),
one read of the leads its conditions need, and one statement per kind of write — not four round-trips
per send. The caller (actors/claimer.py) retries a failed batch one ask at a time, so a row PostgreSQL
rejects cannot hold back the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import attrs

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
    Stopped,
)
from campaignsvc.domain.status import CampaignStatus, ParticipantStatus, SendStatus, Waiting
from campaignsvc.storage import do_not_contact as dnc
from campaignsvc.storage.dispatch import Advance, record

DO_NOT_CONTACT = "On the organization's do-not-contact list"
LEASE_LOST = "the account's lease moved to another instance"
# Ledger states a claim may take a row back from to send it again (with its key and its text).
_RETRYABLE = (SendStatus.IN_DOUBT, SendStatus.DEFERRED, SendStatus.FAILED, SendStatus.SENDING)
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


def idempotency_key(campaign_id: uuid.UUID, participant_id: uuid.UUID, step_key: int) -> str:
    """SPEC R-DEL-2: the key Messaging de-duplicates on. ``step_key`` is the step's own number
    (``campaign_sequences.step_key``), not its position: moving a step never gives it a new key."""
    return f"campaign:{campaign_id}:participant:{participant_id}:step:{step_key}"


@attrs.frozen
class Ask:
    """One send to claim. ``step`` is the participant's position, ``step_key`` that step's own number (its
    ledger row and key); ``start_at`` when the call is planned to start (recorded as the account's last
    start); ``pipelines`` the pipelines the step's conditions read."""

    participant_id: uuid.UUID
    step: int
    step_key: int
    bd_account_id: uuid.UUID
    decide: Decide = attrs.field(eq=False)
    pipelines: tuple[uuid.UUID, ...] = ()
    start_at: datetime | None = None
    # The epoch of the account's lease the claim is made under (actors/leases.py); None: unfenced (a
    # caller without leases, as in tests of the claim alone).
    epoch: int | None = None


_FACTS = f"""
    SELECT r.n, cp.id, cp.campaign_id, cp.contact_id, cp.bd_account_id, cp.channel_id, cp.status, cp.current_step,
           cp.next_send_at, cp.last_sent_at, cp.replied_at, cp.attempts, c.status AS campaign_status,
           c.deleted_at, c.organization_id, now() AS now,
           EXISTS (SELECT 1 FROM campaign_account_pauses ap
                   WHERE ap.campaign_id = cp.campaign_id AND ap.bd_account_id = cp.bd_account_id
                     AND (ap.paused_until IS NULL OR ap.paused_until > now())) AS account_paused,
           s.id AS send_id, s.status AS send_status, s.content AS send_content, s.claimed_at AS send_claimed_at,
           s.message_id AS send_message_id, s.idempotency_key AS send_key,
           ct.first_name, ct.last_name, ct.display_name, ct.username, ct.email, ct.phone, ct.telegram_id,
           ct.deleted_at AS contact_deleted_at, ct.organization_id AS contact_organization_id,
           co.name AS company_name, {dnc.listed("ct")} AS do_not_contact,
           (r.epoch IS NULL OR EXISTS (SELECT 1 FROM campaign_account_leases la
                                       WHERE la.bd_account_id = r.account AND la.owner = $3 AND la.epoch = r.epoch))
               AS leased
    FROM unnest($1::uuid[], $2::int[], $4::uuid[], $5::bigint[]) WITH ORDINALITY AS r (id, step_key, account, epoch, n)
    JOIN campaign_participants cp ON cp.id = r.id
    JOIN campaigns c ON c.id = cp.campaign_id
    LEFT JOIN campaign_sends s ON s.campaign_participant_id = cp.id AND s.sequence_step = r.step_key
                               AND s.idempotency_key IS NOT NULL
    LEFT JOIN contacts ct ON ct.id = cp.contact_id AND ct.organization_id = c.organization_id
    LEFT JOIN companies co ON co.id = ct.company_id AND co.organization_id = c.organization_id
    ORDER BY cp.id
    FOR UPDATE OF cp
"""

_LEADS = """
    SELECT l.organization_id, l.contact_id, l.pipeline_id, l.stage_id
    FROM leads l
    JOIN unnest($1::uuid[], $2::uuid[]) AS w (org, contact) ON l.organization_id = w.org AND l.contact_id = w.contact
    WHERE l.deleted_at IS NULL AND l.pipeline_id = ANY($3::uuid[])
"""

# One statement for every send the batch claims: new ledger rows with the A/B arm they render (or a
# 'skipped' / text-less row decided again), rows taken back for a retry with their key, text and arm, and each account's planned last start —
# so the gap survives a restart at no extra round-trip. The claim runs ahead of the call
# (actors.limiter.CLAIM_LEAD), so the start recorded is the planned one, or now if the claim ran late;
# clock_timestamp(), not now() (the transaction's start). The exact start is the ledger's ``sent_at``,
# written with the outcome (storage/accounts.limiter_states reads both).
_CLAIM = """
    WITH fresh AS (
        INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, idempotency_key, content,
                                    campaign_id, bd_account_id, attempts, claimed_at, sent_at, variant_id, sent_by)
        SELECT f.pid, f.step_key, 'sending', f.key, f.content, f.cid, f.acc, 1, now(), now(), f.variant, $11
        FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::uuid[], $6::uuid[], $10::uuid[])
             AS f (pid, step_key, key, content, cid, acc, variant)
        ON CONFLICT (campaign_participant_id, sequence_step) WHERE idempotency_key IS NOT NULL
        DO UPDATE SET status = 'sending', content = EXCLUDED.content, attempts = campaign_sends.attempts + 1,
                      claimed_at = now(), metadata = '{}', variant_id = EXCLUDED.variant_id, sent_by = $11
        RETURNING id, campaign_participant_id AS pid
    ), retried AS (
        UPDATE campaign_sends SET status = 'sending', attempts = attempts + 1, claimed_at = now(), sent_by = $11
        WHERE id = ANY($7::uuid[])
    ), touched AS (
        INSERT INTO campaign_account_state (bd_account_id, last_send_at, updated_at)
        SELECT t.acc, GREATEST(clock_timestamp(), COALESCE(t.at, clock_timestamp())), now()
        FROM unnest($8::uuid[], $9::timestamptz[]) AS t (acc, at)
        ORDER BY t.acc
        ON CONFLICT (bd_account_id) DO UPDATE SET last_send_at = EXCLUDED.last_send_at, updated_at = now()
    )
    SELECT id, pid FROM fresh
"""

_SKIP = """
    INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, idempotency_key, campaign_id,
                                bd_account_id, attempts, claimed_at, completed_at, sent_at, metadata)
    SELECT k.pid, k.step_key, 'skipped', k.key, k.cid, k.acc, 0, now(), now(), now(), k.metadata
    FROM unnest($1::uuid[], $2::int[], $3::text[], $4::uuid[], $5::uuid[], $6::jsonb[])
         AS k (pid, step_key, key, cid, acc, metadata)
    ON CONFLICT (campaign_participant_id, sequence_step) WHERE idempotency_key IS NOT NULL
    DO UPDATE SET status = 'skipped', metadata = EXCLUDED.metadata, completed_at = now()
"""

_QUARANTINE = """
    WITH doubted AS (
        UPDATE campaign_sends SET status = 'in_doubt' WHERE id = ANY($1::uuid[])
    )
    UPDATE campaign_participants cp SET next_send_at = q.until, waiting_reason = $4, updated_at = now()
    FROM unnest($2::uuid[], $3::timestamptz[]) AS q (id, until)
    WHERE cp.id = q.id
"""


@attrs.define
class _Writes:
    """What the batch's decisions write, gathered so that each kind is one statement."""

    fresh: dict[int, tuple[Ask, Mapping[str, Any], str, str]] = attrs.field(
        factory=dict
    )  # ask, facts, key, text
    variants: dict[int, uuid.UUID | None] = attrs.field(factory=dict)  # the fresh rows' A/B arms
    retried: list[uuid.UUID] = attrs.field(factory=list)
    starts: dict[uuid.UUID, datetime | None] = attrs.field(factory=dict)  # account → planned start
    skipped: list[tuple[Ask, Mapping[str, Any], str, SkipStep]] = attrs.field(factory=list)
    doubted: list[tuple[uuid.UUID, uuid.UUID, datetime]] = attrs.field(factory=list)  # send, participant

    def start(self, ask: Ask) -> None:
        """The account's planned start: one per account (a limiter claims one send at a time; should two
        come, the later start is the one the gap must count from)."""
        known = self.starts.get(ask.bd_account_id)
        later = (
            ask.start_at if known is None or (ask.start_at is not None and ask.start_at > known) else known
        )
        self.starts[ask.bd_account_id] = later


async def claim_many(
    conn: asyncpg.Connection, asks: Sequence[Ask], *, quarantine: timedelta, owner: str | None = None
) -> list[ClaimResult]:
    """Run inside a transaction: each ask's result, in the order asked. ``owner``: the instance claiming
    (recorded as the row's ``sent_by``); an ask with an epoch is claimed only while ``owner`` holds its
    account's lease under that epoch."""
    rows = await conn.fetch(
        _FACTS,
        [a.participant_id for a in asks],
        [a.step_key for a in asks],
        owner,
        [a.bd_account_id for a in asks],
        [a.epoch for a in asks],
    )
    facts = {r["n"] - 1: r for r in rows}
    stages = await _lead_stages(conn, asks, facts)
    writes = _Writes()
    results: dict[int, ClaimResult] = {}
    for i, ask in enumerate(asks):
        p = facts.get(i)
        result = NotDue("participant deleted") if p is None else _judge(i, ask, p, stages, quarantine, writes)
        if result is not None:
            results[i] = result
    send_ids = await _write(conn, writes, owner)
    for i, (ask, p, key, text) in writes.fresh.items():  # new ledger rows: their ids are known now
        results[i] = _claimed(p, send_ids[ask.participant_id], key, text)
    return [results[i] for i in range(len(asks))]


async def claim(
    conn: asyncpg.Connection, ask: Ask, *, quarantine: timedelta, owner: str | None = None
) -> ClaimResult:
    """One ask (a batch of one): run inside a transaction."""
    return (await claim_many(conn, [ask], quarantine=quarantine, owner=owner))[0]


def _judge(
    i: int,
    ask: Ask,
    p: Mapping[str, Any],
    stages: Mapping[int, Mapping[uuid.UUID, uuid.UUID]],
    quarantine: timedelta,
    writes: _Writes,
) -> ClaimResult | None:
    """The ``i``-th ask's result from its locked facts, its writes added to ``writes``; None: a new ledger
    row, whose result is made once the row is written."""
    if not p["leased"]:
        return NotDue(LEASE_LOST)
    if p["campaign_status"] != CampaignStatus.ACTIVE or p["deleted_at"] is not None:
        return NotDue(f"campaign {p['campaign_status']}")
    if (
        p["status"] not in (ParticipantStatus.PENDING, ParticipantStatus.SENT)
        or p["current_step"] != ask.step
    ):
        return NotDue(f"participant {p['status']} at step {p['current_step']}")
    if p["bd_account_id"] != ask.bd_account_id or p["account_paused"]:
        return NotDue("account changed or paused for this campaign")
    if p["next_send_at"] is None or p["next_send_at"] > p["now"] + timedelta(seconds=1):
        return NotDue("not due")

    first_send = p["last_sent_at"] is None
    if p["send_id"] is not None:
        if p["send_status"] == SendStatus.SENT:
            return Recovered(p["send_message_id"], first_send=first_send)
        if p["send_status"] == SendStatus.SENDING and p["send_claimed_at"] + quarantine > p["now"]:
            until = p["send_claimed_at"] + quarantine
            writes.doubted.append((p["send_id"], ask.participant_id, until))
            return Quarantined(until)
        if p["send_status"] in _RETRYABLE and p["send_content"]:
            writes.retried.append(p["send_id"])
            writes.start(ask)
            # The key this row was first sent with, whatever the step's position or number now.
            return _claimed(p, p["send_id"], p["send_key"], p["send_content"])
        # 'skipped' rows (or a row without text) fall through: decide again.

    if p["contact_organization_id"] != p["organization_id"] or p["contact_deleted_at"] is not None:
        return ContactGone("Contact was deleted")
    if not p["channel_id"]:
        return ContactGone("Contact has no Telegram ID or username")
    if p["do_not_contact"]:
        return Stopped(DO_NOT_CONTACT)
    decision = ask.decide(
        Facts(
            contact={name: p[name] for name in CONTACT_FIELDS},
            company_name=p["company_name"],
            has_replied=p["replied_at"] is not None,
            sent_before=not first_send,
            lead_stages=stages.get(i, {}),
            contact_id=p["contact_id"],
        )
    )
    key = idempotency_key(p["campaign_id"], ask.participant_id, ask.step_key)
    if isinstance(decision, SkipStep):
        writes.skipped.append((ask, p, key, decision))
        return Skipped(decision.update, decision.reason)
    writes.fresh[i] = (ask, p, key, decision.text)
    writes.variants[i] = decision.variant_id
    writes.start(ask)
    return None


def _claimed(p: Mapping[str, Any], send_id: uuid.UUID, key: str, text: str) -> Claimed:
    return Claimed(
        send_id=send_id,
        idempotency_key=key,
        content=text,
        contact_id=p["contact_id"],
        channel_id=p["channel_id"],
        first_send=p["last_sent_at"] is None,
        participant_attempts=p["attempts"],
    )


async def _lead_stages(
    conn: asyncpg.Connection, asks: Sequence[Ask], facts: Mapping[int, Mapping[str, Any]]
) -> dict[int, dict[uuid.UUID, uuid.UUID]]:
    """Per ask whose conditions read pipelines: the contact's stage in each of them (one read)."""
    wanted = [i for i, a in enumerate(asks) if a.pipelines and i in facts]
    if not wanted:
        return {}
    pipelines = sorted({p for i in wanted for p in asks[i].pipelines})
    rows = await conn.fetch(
        _LEADS,
        [facts[i]["organization_id"] for i in wanted],
        [facts[i]["contact_id"] for i in wanted],
        pipelines,
    )
    by_contact: dict[tuple[uuid.UUID, uuid.UUID], list[asyncpg.Record]] = {}
    for r in rows:
        by_contact.setdefault((r["organization_id"], r["contact_id"]), []).append(r)
    out: dict[int, dict[uuid.UUID, uuid.UUID]] = {}
    for i in wanted:
        mine = set(asks[i].pipelines)
        leads = by_contact.get((facts[i]["organization_id"], facts[i]["contact_id"]), [])
        out[i] = {r["pipeline_id"]: r["stage_id"] for r in leads if r["pipeline_id"] in mine}
    return out


async def _write(conn: asyncpg.Connection, w: _Writes, owner: str | None) -> dict[uuid.UUID, uuid.UUID]:
    """The batch's writes, one statement per kind; the new ledger rows' ids by participant."""
    if w.doubted:
        await conn.execute(
            _QUARANTINE,
            [s for s, _, _ in w.doubted],
            [p for _, p, _ in w.doubted],
            [u for _, _, u in w.doubted],
            Waiting.IN_DOUBT,
        )
    if w.skipped:
        await conn.execute(
            _SKIP,
            [a.participant_id for a, _, _, _ in w.skipped],
            [a.step_key for a, _, _, _ in w.skipped],
            [k for _, _, k, _ in w.skipped],
            [p["campaign_id"] for _, p, _, _ in w.skipped],
            [a.bd_account_id for a, _, _, _ in w.skipped],
            [{"event": "skipped", "reason": d.reason, "detail": d.detail} for _, _, _, d in w.skipped],
        )
        await record(
            conn, [Advance(a.participant_id, a.step, d.update, None, None) for a, _, _, d in w.skipped]
        )
    if not (w.fresh or w.retried):
        return {}
    fresh = list(w.fresh.values())
    rows = await conn.fetch(
        _CLAIM,
        [a.participant_id for a, _, _, _ in fresh],
        [a.step_key for a, _, _, _ in fresh],
        [k for _, _, k, _ in fresh],
        [t for _, _, _, t in fresh],
        [p["campaign_id"] for _, p, _, _ in fresh],
        [a.bd_account_id for a, _, _, _ in fresh],
        w.retried,
        list(w.starts),
        list(w.starts.values()),
        [w.variants.get(i) for i in w.fresh],
        owner,
    )
    return {r["pid"]: r["id"] for r in rows}
