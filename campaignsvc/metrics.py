"""Prometheus metrics, one registry for the process (the default one, with process metrics)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def render() -> tuple[bytes, str]:
    """The text exposition of every registered metric and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


SENDS = Counter("campaign_sends_total", "Send attempts by outcome", ["outcome"])
SEND_LATENESS = Histogram(
    "campaign_send_lateness_seconds",
    "When a send's Messaging call started (its request written) minus its due time",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 3600),
)
ACCOUNT_BLOCKS = Counter("campaign_account_blocks_total", "BD account blocks by reason", ["reason"])
ACTOR_RESTARTS = Counter("campaign_actor_restarts_total", "Crashed actors restarted", ["kind"])
RECORDER_REJECTED = Counter(
    "campaign_recorder_rejected_outcomes_total",
    "Send outcomes PostgreSQL rejected, recorded in a minimal form",
)
STRANDED = Counter(
    "campaign_stranded_participants_total",
    "Participants found overdue and held by no actor, offered again by the reconciler",
)
LEASES_HELD = Gauge("campaign_account_leases_held", "BD accounts this instance holds the lease of")
LEASE_MOVES = Counter(
    "campaign_account_lease_moves_total",
    "Account leases this instance gained or lost; taken_over: gained from an instance that died",
    ["direction"],
)
FENCED = Counter(
    "campaign_fenced_writes_total",
    "Claims and outcomes refused because the account's lease moved on",
    ["kind"],
)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
CLAIM_BATCH = Histogram(
    "campaign_claim_batch_size", "Sends claimed per claim transaction", buckets=_BATCH_BUCKETS
)
OUTCOME_BATCH = Histogram(
    "campaign_outcome_batch_size", "Send outcomes recorded per transaction", buckets=_BATCH_BUCKETS
)
