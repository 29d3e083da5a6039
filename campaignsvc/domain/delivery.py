"""What a failed Messaging Service call means for the participant and the account (SPEC R-DEL-3).

- ``RECIPIENT``: this contact cannot be messaged (privacy, premium-only, deactivated, not found, write
  forbidden, bad request) — the participant fails, no retry.
- ``ACCOUNT``: the BD account cannot send now (flood wait, PEER_FLOOD, session expired, not connected,
  unavailable) — the account is blocked, the participant goes back to the queue.
- ``TRANSIENT``: nothing was sent (refused connection, Telegram or circuit breaker said no) — retry
  with backoff, up to the attempt limit.
- ``UNKNOWN``: the request may have been delivered (timeout after sending, Messaging gave up waiting
  for Telegram) — the send is in doubt and is retried only with the same idempotency key after the
  quarantine period.

Messaging's contract is original-v1 §5.3: downstream 4xx bodies are ``{"error": reason, "message":
reason, "details"?}``; its own errors use ``error`` alone.
"""

from __future__ import annotations

import enum
import json
import random
import re
from typing import Any

import attrs

MAX_REASON_LENGTH = 500
BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 600.0


class ErrorClass(enum.StrEnum):
    RECIPIENT = "recipient"
    ACCOUNT = "account"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"


class AccountBlock(enum.StrEnum):
    FLOOD_WAIT = "flood_wait"
    PEER_FLOOD = "peer_flood"
    SESSION_EXPIRED = "session_expired"
    NOT_CONNECTED = "not_connected"
    ACCOUNT_UNAVAILABLE = "account_unavailable"


@attrs.frozen
class Failure:
    error_class: ErrorClass
    reason: str
    block: AccountBlock | None = None
    retry_after_s: float | None = None  # FLOOD_WAIT / PEER_FLOOD: what Telegram asked for, if it said


# Lower-case substrings of the reasons Messaging passes through from bd-accounts / Telegram (v1 §4.3
# step 7 and §5.3) that mean this recipient cannot be messaged by this account.
RECIPIENT_NEEDLES = (
    "user or chat not found",
    "telegram: recipient only accepts messages from premium",
    "telegram: recipient's privacy settings block",
    "telegram: sending to this chat is not allowed",
    "not a mutual contact per their privacy",
    "telegram: premium is required",
    "recipient telegram account is deactivated",
    "privacy_premium_required",
    "user_privacy_restricted",
    "chat_write_forbidden",
    "user_not_mutual_contact",
    "user_is_blocked",
    "input_user_deactivated",
    "peer_id_invalid",
    "file too large",
    "maximum file size",
)
_NOT_CONNECTED_NEEDLE = "not connected"
_PEER_FLOOD_NEEDLE = "peer_flood"
_WAIT_RE = re.compile(r"wait of (\d+) seconds", re.IGNORECASE)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def reason_of(status: int, body: Any) -> str:
    """``message`` || ``error`` || the raw text, at most 500 characters."""
    reason: str | None = None
    if isinstance(body, dict):
        reason = _text(body.get("message")) or _text(body.get("error"))
        if reason is None and body:
            reason = json.dumps(body, ensure_ascii=False, default=str)
    elif isinstance(body, bytes):
        reason = _text(body.decode("utf-8", "replace"))
    elif body is not None:
        reason = _text(str(body))
    return (reason or f"HTTP {status}").strip()[:MAX_REASON_LENGTH]


def _all_text(body: Any, reason: str) -> str:
    """Every message the body carries, lower-cased, for needle matching (``error`` and ``message`` can
    differ: ``{"error": "Downstream error", "message": "…"}``)."""
    parts = [reason]
    if isinstance(body, dict):
        parts.extend(v for k in ("error", "message", "code") if isinstance(v := body.get(k), str))
    return " | ".join(parts).lower()


def _retry_after(body: Any, text: str) -> float | None:
    if isinstance(body, dict) and isinstance(details := body.get("details"), dict):
        value = details.get("retryAfterSeconds")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                value = None
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value and value >= 0:
            return float(value)
    m = _WAIT_RE.search(text)  # GramJS "A wait of N seconds is required"
    return float(m.group(1)) if m else None


def classify_response(status: int, body: Any) -> Failure:
    """Classify a non-2xx answer of ``POST /api/messaging/send``. ``body`` is the parsed JSON (a dict)
    or the raw text."""
    if 200 <= status < 300:
        raise ValueError(f"HTTP {status} is a success, not a failure")
    reason = reason_of(status, body)
    text = _all_text(body, reason)

    if status == 429:
        retry_after = _retry_after(body, text)
        block = AccountBlock.PEER_FLOOD if _PEER_FLOOD_NEEDLE in text else AccountBlock.FLOOD_WAIT
        return Failure(ErrorClass.ACCOUNT, reason, block, retry_after)
    if status == 409:
        # The only 409 of the contract: "Telegram session expired. Reconnect account …". Treating an
        # unexpected 409 as a recipient error would fail every participant of the account one by one.
        return Failure(ErrorClass.ACCOUNT, reason, AccountBlock.SESSION_EXPIRED)
    if status in (401, 403):
        # 403: demo account; 401: this service is not allowed to send (wrong internal secret). Neither
        # says anything about the recipient.
        return Failure(ErrorClass.ACCOUNT, reason, AccountBlock.ACCOUNT_UNAVAILABLE)
    if status == 404:
        if "contact" not in text and "account" in text:
            return Failure(ErrorClass.ACCOUNT, reason, AccountBlock.ACCOUNT_UNAVAILABLE)
        return Failure(ErrorClass.RECIPIENT, reason)
    if status == 400:
        if not is_recipient_reason(text) and _NOT_CONNECTED_NEEDLE in text:
            return Failure(ErrorClass.ACCOUNT, reason, AccountBlock.NOT_CONNECTED)
        return Failure(ErrorClass.RECIPIENT, reason)  # needles, validation, unsupported channel
    if status == 408:
        return Failure(ErrorClass.TRANSIENT, reason)  # the server never took the request
    if status in (500, 504):
        # 500 "This operation was aborted" / timeouts: Messaging stopped waiting, Telegram may have sent.
        # Any other 500 may come after Telegram accepted the message (Messaging stores the row only
        # after that), so it is in doubt too: a duplicate cold message is the failure to avoid.
        return Failure(ErrorClass.UNKNOWN, reason)
    if 400 <= status < 500:
        return Failure(ErrorClass.RECIPIENT, reason)
    # 502 "Downstream error" (Telegram refused), 503 circuit breaker open, other 5xx, and statuses that
    # should not reach here (1xx, 3xx): nothing was sent.
    return Failure(ErrorClass.TRANSIENT, reason)


def is_recipient_reason(reason: str) -> bool:
    """Whether a reason text names a recipient-permanent Telegram error."""
    low = reason.lower()
    return any(needle in low for needle in RECIPIENT_NEEDLES)


# Transport failures: which ones happen before any byte of the request left.
TRANSPORT_NOT_SENT = frozenset({"connect", "connect_timeout", "pool_timeout"})
TRANSPORT_MAYBE_SENT = frozenset(
    {"timeout", "read_timeout", "write_timeout", "reset", "protocol", "read", "write"}
)


def classify_transport(kind: str) -> Failure:
    """Classify a call that got no HTTP answer. ``connect`` (refused or timed out while connecting) and
    ``pool_timeout`` happened before sending: TRANSIENT. ``timeout``, ``reset``, ``protocol`` and any
    kind not known here happened after the request may have been sent: UNKNOWN."""
    if kind in TRANSPORT_NOT_SENT:
        return Failure(ErrorClass.TRANSIENT, f"messaging unreachable ({kind}): the request was not sent")
    return Failure(ErrorClass.UNKNOWN, f"no answer from messaging ({kind}): the message may have been sent")


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Delay before retry ``attempt`` (1 = the first retry): 2 s doubling per attempt, capped at 10 min,
    with "equal jitter" — uniform in [d/2, d) — so retries of many participants do not line up."""
    exponent = min(max(attempt, 1) - 1, 32)
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0**exponent)
    return ceiling / 2 + rng.random() * ceiling / 2
