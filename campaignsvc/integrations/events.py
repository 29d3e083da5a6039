"""Inbound events: the v1 envelope (original-v1 §5.1), its validation, and the handler interface.

The same parser serves the RabbitMQ consumer and ``POST /api/campaigns/events`` (SPEC R-EVT-3), so an
envelope is accepted or refused identically on both routes.
"""

from __future__ import annotations

import json
from collections.abc import Set
from typing import Any, Protocol
from uuid import UUID

import attrs

from campaignsvc.errors import InvalidEvent

# What the queue is bound to (SPEC R-EVT-1).
CONSUMED_TYPES: frozenset[str] = frozenset(
    {
        "message.received",
        "lead.created",
        "lead.stage.changed",
        "bd_account.flood.cleared",
        "bd_account.spam.restricted",
        "bd_account.spam.cleared",
    }
)

# What this service publishes through the outbox (SPEC R-EVT-2).
PUBLISHED_TYPES: frozenset[str] = frozenset(
    {
        "campaign.created",
        "campaign.started",
        "campaign.paused",
        "campaign.resumed",
        "campaign.completed",
        "lead.created.from.campaign",
        "campaign.message.sent",
        "campaign.message.failed",
        "campaign.participant.replied",
    }
)

_MAX_TYPE_LENGTH = 100  # campaign_processed_events.event_type is varchar(100)


@attrs.frozen
class Event:
    """One validated inbound event. ``raw`` is the whole envelope as received (``userId``,
    ``correlationId``, ``metadata`` … live there)."""

    id: UUID
    type: str
    organization_id: UUID
    data: dict[str, Any]
    timestamp: str | None
    raw: dict[str, Any]


class Handler(Protocol):
    """What the consumer calls for each valid event.

    ``types`` lists the event types the handler understands; others are acknowledged and counted as
    unknown. ``handle`` must commit its own transaction, and that transaction must include
    ``storage.processed_events.claim(conn, event.id, event.type)`` — when the claim returns False the
    event was handled before and ``handle`` must change nothing. The consumer acknowledges the delivery
    only after ``handle`` returns; an exception makes it retry (3 tries, then the dead-letter queue),
    except :class:`campaignsvc.errors.DatabaseUnavailable`, which pauses consumption and retries the same
    delivery without using up a try. A call running past the consumer's ``handler_timeout`` is cancelled
    and counts as a failed try; at shutdown a call may be cancelled too — its transaction rolls back and
    the broker redelivers the event.
    """

    @property
    def types(self) -> Set[str]: ...

    async def handle(self, event: Event) -> object: ...


def parse_event(body: bytes | str, routing_key: str | None = None) -> Event:
    """Decode and validate one envelope; raises :class:`InvalidEvent` saying what is wrong.

    ``type`` must equal the routing key the event was published with, or — for a delivery that does not
    carry it, such as a retry sent straight to the queue — be one of the consumed types.
    """
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"malformed JSON: {exc}") from None
    return event_from_envelope(envelope, routing_key)


def event_from_envelope(envelope: Any, routing_key: str | None = None) -> Event:
    """Validate an already decoded envelope (the HTTP route receives JSON decoded)."""
    if not isinstance(envelope, dict):
        raise InvalidEvent(f"envelope must be a JSON object, got {type(envelope).__name__}")
    event_type = envelope.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidEvent("type: must be a non-empty string")
    if len(event_type) > _MAX_TYPE_LENGTH:
        raise InvalidEvent(f"type: longer than {_MAX_TYPE_LENGTH} characters")
    if event_type != routing_key and event_type not in CONSUMED_TYPES:
        raise InvalidEvent(f"type: {event_type!r} does not match routing key {routing_key!r}")
    event_id = _uuid(envelope, "id")
    organization_id = _uuid(envelope, "organizationId")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise InvalidEvent("data: must be a JSON object")
    timestamp = envelope.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        raise InvalidEvent("timestamp: must be an ISO string")
    return Event(
        id=event_id,
        type=event_type,
        organization_id=organization_id,
        data=data,
        timestamp=timestamp,
        raw=envelope,
    )


def _uuid(envelope: dict[str, Any], key: str) -> UUID:
    value = envelope.get(key)
    if not isinstance(value, str):
        raise InvalidEvent(f"{key}: must be a UUID string")
    try:
        return UUID(value)
    except ValueError:
        raise InvalidEvent(f"{key}: {value[:64]!r} is not a UUID") from None
