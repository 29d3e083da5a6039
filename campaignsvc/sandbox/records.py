"""What the sandbox keeps about each request and event, and how it shows them as JSON."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from campaignsvc.http.jsonenc import iso


@attrs.frozen(kw_only=True)
class SendRequest:
    """A ``POST /api/messaging/send`` body that passed validation, with the caller's headers."""

    organization_id: str | None
    user_id: str | None
    correlation_id: str | None
    contact_id: str | None
    channel: str
    channel_id: str
    bd_account_id: str
    content: str | None
    source: str | None
    idempotency_key: str | None
    username_hint: str | None = None
    reply_to_message_id: str | None = None
    file_name: str | None = None
    has_file: bool = False

    @property
    def key(self) -> tuple[str | None, str] | None:
        """The idempotency scope: one organization's key."""
        return None if self.idempotency_key is None else (self.organization_id, self.idempotency_key)


@attrs.define(kw_only=True)
class ReceivedRecord:
    """One send request as it arrived (valid or not), completed with the answer once there is one."""

    seq: int
    received_at: dt.datetime
    received_mono: float
    organization_id: str | None
    user_id: str | None
    correlation_id: str | None
    bd_account_id: str | None = None
    contact_id: str | None = None
    channel_id: str | None = None
    idempotency_key: str | None = None
    source: str | None = None
    content: str | None = None
    # None while the request is in progress.
    status: int | None = None
    # sent, replay, flood_wait, peer_flood, a recipient or account error kind, downstream_error,
    # timeout_delivered, abort_delivered, validation, unauthorized, cancelled.
    outcome: str | None = None
    replay: bool = False
    message_id: str | None = None
    answered_mono: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "received_at": iso(self.received_at),
            "received_mono": self.received_mono,
            "organizationId": self.organization_id,
            "userId": self.user_id,
            "correlationId": self.correlation_id,
            "bdAccountId": self.bd_account_id,
            "contactId": self.contact_id,
            "channelId": self.channel_id,
            "idempotencyKey": self.idempotency_key,
            "source": self.source,
            "content": self.content,
            "status": self.status,
            "outcome": self.outcome,
            "replay": self.replay,
            "messageId": self.message_id,
            "answered_mono": self.answered_mono,
        }


@attrs.define(kw_only=True)
class EventRecord:
    """A ``message.received`` event the sandbox emitted (a reply or an echo) and how its delivery went."""

    seq: int
    kind: str  # "reply" | "echo"
    envelope: dict[str, Any]
    due_mono: float
    # scheduled → delivered | failed | skipped (no target configured) | dropped (sandbox reset)
    status: str = "scheduled"
    target: str | None = None
    attempts: int = 0
    last_error: str | None = None
    delivered_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "envelope": self.envelope,
            "due_mono": self.due_mono,
            "status": self.status,
            "target": self.target,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "delivered_at": None if self.delivered_at is None else iso(self.delivered_at),
        }


@attrs.define
class AccountState:
    """Pacing and counters of one BD account."""

    last_accepted: float | None = None
    flood_until: float = float("-inf")
    requests: int = 0
    sent: int = 0
    flood: int = 0
    peer_flood: int = 0
    errors: int = 0
    replays: int = 0

    def counters(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "sent": self.sent,
            "flood": self.flood,
            "peerFlood": self.peer_flood,
            "errors": self.errors,
            "replays": self.replays,
        }
