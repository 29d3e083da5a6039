"""Prometheus metrics of the broker side: consumed events, the dead-letter queue, the outbox relay.

Labels stay bounded: ``type`` is one of the known event types or ``other``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from campaignsvc.integrations.events import CONSUMED_TYPES, PUBLISHED_TYPES

EVENTS_CONSUMED = Counter(
    "events_consumed_total",
    "Inbound events by type and outcome (handled, unknown, retried, dead_lettered, invalid)",
    ["type", "outcome"],
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total",
    "Deliveries sent to the dead-letter queue, by reason (malformed, handler_failed)",
    ["reason"],
)
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet confirmed by RabbitMQ")
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox events confirmed by RabbitMQ, by type", ["type"])
OUTBOX_UNROUTABLE = Counter(
    "outbox_unroutable_total",
    "Outbox events the broker confirmed but no queue was bound for (returned NO_ROUTE)",
    ["type"],
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "outbox_publish_failures_total", "Outbox batches stopped by a failed publish (retried later)"
)
AMQP_CONNECTED = Gauge("amqp_connected", "1 while the named broker connection is open", ["role"])


def consumed_type_label(event_type: str | None) -> str:
    return event_type if event_type in CONSUMED_TYPES else "other"


def published_type_label(event_type: str) -> str:
    return event_type if event_type in PUBLISHED_TYPES else "other"
