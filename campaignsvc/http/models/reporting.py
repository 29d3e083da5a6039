"""Reporting queries and responses: stats, participant accounts, analytics, participants, sends, export
(original-v1 §2.8, §2.9)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from campaignsvc.domain.replies import Intent
from campaignsvc.domain.reporting import Outcomes, ParticipantCounts, is_read, kpis, phase_of
from campaignsvc.domain.reporting import contact_name as name_of
from campaignsvc.domain.waiting import Code, Wait
from campaignsvc.http.models.common import Json, Page, Timestamp

PARTICIPANTS_DEFAULT_LIMIT = 50
PARTICIPANTS_MAX_LIMIT = 100
SENDS_DEFAULT_LIMIT = 50
SENDS_MAX_LIMIT = 100
MAX_ANALYTICS_DAYS = 90

Phase = Literal["waiting", "sent", "read", "replied", "completed", "skipped", "failed"]
ParticipantFilter = Literal[
    "all",
    "replied",
    "not_replied",
    "shared",
    "pending",
    "waiting",
    "sent",
    "read",
    "completed",
    "skipped",
    "failed",
]


def _sent_bound(value: Any) -> dt.date | dt.datetime:
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError("must be a date (YYYY-MM-DD) or an ISO 8601 date-time")


# A day (the whole UTC day) or an instant.
SentBound = Annotated[
    dt.date | dt.datetime,
    PlainValidator(_sent_bound),
    WithJsonSchema({"type": "string", "description": "A date (YYYY-MM-DD) or an ISO 8601 date-time"}),
]


class ErrorSummary(BaseModel):
    count: int
    sample: str | None = Field(None, description="The latest error of a failed participant; omitted if none")


class PhaseCounts(BaseModel):
    waiting: int
    sent: int
    read: int
    replied: int
    completed: int
    skipped: int
    failed: int


class Stats(BaseModel):
    total: int
    byStatus: dict[str, int] = Field(description="Participants per status (pending, sent, replied, …)")
    byPhase: PhaseCounts = Field(description="Participants per status_phase of the participants list")
    error_summary: ErrorSummary | None = Field(None, description="Only when some participants failed")
    totalSends: int = Field(description="Messages sent (ledger rows with status sent)")
    contactsSent: int = Field(description="Participants with at least one message sent")
    conversionRate: int = Field(description="replied / total × 100, rounded")
    firstSendAt: Timestamp | None
    lastSendAt: Timestamp | None
    total_sent: int
    total_read: int = Field(description="Sent participants who read a message (a reply counts as read)")
    total_replied: int
    total_converted_to_shared_chat: int
    read_rate: float
    reply_rate: float
    conversion_rate: float
    avg_time_to_shared_hours: float | None
    total_won: int
    total_lost: int
    total_revenue: float
    win_rate: float
    revenue_per_sent: float
    revenue_per_reply: float
    avg_revenue_per_won: float
    avg_time_to_won_hours: float | None
    waiting: dict[Code, int] = Field(
        description="Open participants per waiting code (codes with none left out; see the participants' "
        "waiting). Exact for most campaigns; where counting costs more than 20 ms (hundreds of thousands "
        "open) it is as of waitingAsOf, refreshed in the background"
    )
    waitingAsOf: Timestamp = Field(description="When the waiting counts were taken")
    repliesByIntent: dict[str, int] = Field(
        description="Replied participants by the intent of their reply: interested, question, "
        "not_interested, unsubscribe, wrong_person, unknown (none read); intents with none left out"
    )


class ParticipantAccount(BaseModel):
    id: uuid.UUID
    displayName: str


class AnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    days: int = Field(
        14, ge=1, description="The last N days (UTC), today included; above 90 is lowered to 90"
    )

    @property
    def span(self) -> int:
        return min(self.days, MAX_ANALYTICS_DAYS)


class DaySends(BaseModel):
    date: Timestamp = Field(description="The UTC day, as its midnight")
    sends: int = Field(description="Participants sent to that day")


class DayReplies(BaseModel):
    date: Timestamp
    replied: int


class AccountDaySends(BaseModel):
    date: Timestamp
    accountId: uuid.UUID
    accountDisplayName: str
    sends: int = Field(description="Messages the account sent that day")


class Analytics(BaseModel):
    sendsByDay: list[DaySends]
    repliedByDay: list[DayReplies]
    sendsByAccountByDay: list[AccountDaySends]


class ParticipantsQuery(Page):
    status: ParticipantFilter | None = Field(None, description="Filter; `filter` is the same (status wins)")
    filter: ParticipantFilter | None = None
    bdAccountId: uuid.UUID | None = None
    sentFrom: SentBound | None = Field(None, description="First send on or after this day or instant")
    sentTo: SentBound | None = Field(None, description="First send on or before this day or instant")
    waiting: Code | None = Field(None, description="Only open participants waiting for this reason")
    replyIntent: Intent | None = Field(
        None, description="Only participants who replied with this intent (unknown: not classified)"
    )

    def chosen(self) -> str:
        return self.status or self.filter or "all"

    def sent_window(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """[from, before): a day bound covers the whole UTC day, an instant bound is inclusive."""
        start = _utc(self.sentFrom) if self.sentFrom is not None else None
        end = self.sentTo
        if end is None:
            return start, None
        if isinstance(end, dt.datetime):
            return start, _utc(end) + dt.timedelta(microseconds=1)
        return start, _utc(end + dt.timedelta(days=1))


def _utc(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.combine(value, dt.time(), dt.UTC)


class Waiting(BaseModel):
    """Why an open participant is not being sent to now: the one constraint that binds (docs/visibility.md)."""

    code: Code = Field(
        description="step_delay: its step's delay; gap: its account's gap; queued: behind other sends of the "
        "account (until: the estimate); daily_cap; outside_window; flood_blocked; account_paused (for this "
        "campaign); account_inactive; account_restricted; campaign_paused; awaiting_reply; in_doubt (a "
        "previous send's outcome is checked first); retry_backoff; missing_data (its next step lacks a "
        "placeholder's value and will be skipped); auto_reply_pause (an automatic answer holds it back); "
        "ramp_up (today's cap is the one the account's ramp-up allows: daily_cap of a ramped account)"
    )
    message: str = Field(description="A sentence for the rep")
    until: Timestamp | None = Field(description="When its send goes out if nothing changes; null: unknown")


def waiting_body(wait: Wait | None) -> dict[str, Any] | None:
    return None if wait is None else {"code": wait.code, "message": wait.message, "until": wait.until}


class ParticipantRow(BaseModel):
    participant_id: uuid.UUID
    contact_id: uuid.UUID
    contact_name: str
    username: str | None
    telegram_id: str | None
    conversation_id: uuid.UUID | None
    bd_account_id: uuid.UUID | None
    bd_account_display_name: str | None
    channel_id: str | None
    status_phase: Phase
    last_error: str | None
    pipeline_stage_name: str | None
    sent_at: Timestamp | None = Field(description="First message sent")
    replied_at: Timestamp | None
    read_at: Timestamp | None = Field(description="When the latest message sent was read")
    shared_chat_created_at: Timestamp | None
    current_step: int
    next_send_at: Timestamp | None
    sequence_total_steps: int
    waiting: Waiting | None = Field(description="Why it waits; null for a finished participant")
    reply_intent: Intent | None = Field(
        description="What its reply is taken to mean (the classifier's reading, or a person's correction)"
    )
    auto_replied_at: Timestamp | None = Field(
        description="Its latest automatic answer (away message, business bot): not a reply"
    )


class SendRow(BaseModel):
    sendId: uuid.UUID
    sentAt: Timestamp
    sequenceStep: int
    status: str = Field(description="As stored: sending, sent, failed, deferred, in_doubt, skipped, …")
    participantStatus: str
    messageId: uuid.UUID | None
    metadata: Json | None
    errorClass: str | None
    lastError: str | None
    participantId: uuid.UUID
    contactId: uuid.UUID
    contactName: str
    messageContent: str | None
    messageStatus: str | None
    messageDirection: str | None


class SendsPagination(BaseModel):
    page: int
    limit: int
    total: int = Field(description="All ledger rows of the campaign")
    sentTotal: int = Field(description="Rows with status sent")
    totalPages: int


class SendsPage(BaseModel):
    data: list[SendRow]
    pagination: SendsPagination


class ExportQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: Literal["csv", "json"] | None = Field(
        None,
        description="Wins over Accept. Without it: the CSV when Accept prefers text/csv to application/json, "
        "else the JSON rows (no Accept, */*, application/json)",
    )


# The CSV export's columns, in order.
EXPORT_COLUMNS = (
    "participant_id",
    "contact_id",
    "first_name",
    "last_name",
    "username",
    "telegram_id",
    "phone",
    "email",
    "status",
    "status_phase",
    "sender_account",
    "first_sent_at",
    "is_read",
    "read_at",
    "replied_at",
    "shared_chat_created_at",
    "pipeline_stage_name",
    "current_step",
    "next_send_at",
    "last_error",
    "first_reply_text",
    "waiting",
    "waiting_until",
    "waiting_message",
    "reply_intent",
)


class CampaignParticipantExportRow(BaseModel):
    """A row of the JSON export: the front end's ``CampaignParticipantExportRow``, from which it builds
    its own CSV; exactly the fields it reads. The CSV export has more columns (``EXPORT_COLUMNS``)."""

    first_name: str | None
    last_name: str | None
    username: str | None
    phone: str | None
    email: str | None
    status: str = Field(
        description="The participant's state, as stored: pending, sent, replied, completed, stopped, "
        "skipped, failed (the sends engine's word, not a label)"
    )
    display_status: Phase = Field(
        description="The label the front end shows, the participants page's status_phase: waiting (not sent "
        "yet), sent, read (the latest message sent was read), replied, completed (finished after a send), "
        "skipped (finished with nothing sent), failed"
    )
    first_sent_at: Timestamp | None = Field(description="First message sent")
    sender_account: str | None = Field(description="Display name of the BD account that sends to it")
    is_read: bool = Field(description="The latest message sent was read (a reply counts as read)")
    replied_at: Timestamp | None
    first_reply_text: str | None = Field(description="The first message the contact sent back")


EXPORT_FIELDS = tuple(CampaignParticipantExportRow.model_fields)


CSV_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "CSV (RFC 4180, UTF-8 with BOM, CRLF) with a header row: " + ", ".join(EXPORT_COLUMNS),
}


# --- shaping rows into responses ----------------------------------------------------------------------


def contact_name(row: Mapping[str, Any]) -> str:
    """The name a row's contact is shown by (``domain.reporting.contact_name``)."""
    return name_of(
        row["display_name"], row["first_name"], row["last_name"], row["username"], row["telegram_id"]
    )


def stats_body(counts: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The stats response of the participant counts (``(kind, status, n)`` rows) and the outcome summary
    (storage/reporting's ``participant_counts`` and ``outcome_summary``); the numbers are the domain's."""
    k = kpis(
        ParticipantCounts.of((r["kind"], r["status"], r["n"]) for r in counts),
        Outcomes(
            shared=summary["shared"],
            won=summary["won"],
            lost=summary["lost"],
            revenue=summary["revenue"],
            hours_to_shared=summary["hours_to_shared"],
            hours_to_won=summary["hours_to_won"],
        ),
    )
    out: dict[str, Any] = {"total": k.total, "byStatus": dict(k.by_status), "byPhase": dict(k.by_phase)}
    if k.failed:
        out["error_summary"] = {"count": k.failed}
        if summary["error_sample"]:
            out["error_summary"]["sample"] = summary["error_sample"]
    return out | {
        "totalSends": summary["total_sends"],
        "contactsSent": k.sent,
        "conversionRate": k.replied_percent,
        "firstSendAt": summary["first_send_at"],
        "lastSendAt": summary["last_send_at"],
        "total_sent": k.sent,
        "total_read": k.read,
        "total_replied": k.replied,
        "total_converted_to_shared_chat": k.shared,
        "read_rate": k.read_rate,
        "reply_rate": k.reply_rate,
        "conversion_rate": k.conversion_rate,
        "avg_time_to_shared_hours": k.hours_to_shared,
        "total_won": k.won,
        "total_lost": k.lost,
        "total_revenue": k.revenue,
        "win_rate": k.win_rate,
        "revenue_per_sent": k.revenue_per_sent,
        "revenue_per_reply": k.revenue_per_reply,
        "avg_revenue_per_won": k.revenue_per_won,
        "avg_time_to_won_hours": k.hours_to_won,
    }


def export_body(
    row: Mapping[str, Any], names: Mapping[uuid.UUID, str], wait: Wait | None = None
) -> dict[str, Any]:
    """A participant's row of the CSV export, every column of ``EXPORT_COLUMNS``; ``wait``: why it waits."""
    sent = row["first_sent_at"] is not None
    read = is_read(row["status"], sent, bool(row["read_mark"] or row["latest_read_at"]))
    phase = phase_of(row["status"], sent, read)
    account = row["bd_account_id"]
    return {
        "participant_id": row["participant_id"],
        "contact_id": row["contact_id"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "username": row["username"],
        "telegram_id": row["telegram_id"],
        "phone": row["phone"],
        "email": row["email"],
        "status": row["status"],
        "status_phase": phase,
        "sender_account": names.get(account) if account else None,
        "first_sent_at": row["first_sent_at"],
        "is_read": read,
        "read_at": row["latest_read_at"] or row["read_mark"],
        "replied_at": row["replied_at"],
        "shared_chat_created_at": row["shared_chat_created_at"],
        "pipeline_stage_name": row["pipeline_stage_name"],
        "current_step": row["current_step"],
        "next_send_at": None if row["status"] == "failed" else row["next_send_at"],
        "last_error": row["last_error"],
        "first_reply_text": row["first_reply_text"],
        "waiting": wait.code if wait is not None else None,
        "waiting_until": wait.until if wait is not None else None,
        "waiting_message": wait.message if wait is not None else None,
        "reply_intent": row["reply_intent"],
    }


def export_json_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The front end's row (``CampaignParticipantExportRow``) of a CSV record from ``export_body``."""
    return {
        field: record["status_phase"] if field == "display_status" else record[field]
        for field in EXPORT_FIELDS
    }


def send_body(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "sendId": r["id"],
        "sentAt": r["sent_at"],
        "sequenceStep": r["sequence_step"],
        "status": r["status"],
        "participantStatus": r["participant_status"],
        "messageId": r["message_id"],
        "metadata": r["metadata"] if isinstance(r["metadata"], dict) else None,
        "errorClass": r["error_class"],
        "lastError": r["last_error"],
        "participantId": r["participant_id"],
        "contactId": r["contact_id"],
        "contactName": contact_name(r) or str(r["contact_id"]),
        "messageContent": r["message_content"] if r["message_content"] is not None else r["ledger_content"],
        "messageStatus": r["message_status"],
        "messageDirection": r["message_direction"],
    }
