"""The Messaging Service's answers, word for word (original-v1 §5.3), and the verdict that picks one.

Downstream (bd-accounts / Telegram) 4xx are relayed as ``{"error": reason, "message": reason}`` plus
``details`` for flood waits; the campaign service reads ``details.retryAfterSeconds`` and looks for the
``PEER_FLOOD`` substring, so these strings are part of the contract.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

RECIPIENT_ERRORS: dict[str, str] = {
    "privacy": "Telegram: recipient's privacy settings block messages from your account.",
    "premium": (
        "Telegram: recipient only accepts messages from Premium accounts (privacy). "
        "Use a Premium sender or ask the contact to change who can message them."
    ),
    "deactivated": "Recipient Telegram account is deactivated.",
    "not_found": (
        "User or chat not found. Check that the Telegram ID or username is correct "
        "and the account can message this peer."
    ),
    "write_forbidden": "Telegram: sending to this chat is not allowed (write forbidden).",
    "not_mutual_contact": "Telegram: cannot message this user (not a mutual contact per their privacy settings).",
    "premium_required": "Telegram: Premium is required for this action or recipient.",
    "blocked": "Telegram: USER_IS_BLOCKED (the user has blocked this account).",
}
ACCOUNT_ERRORS: dict[str, tuple[int, str]] = {
    "not_connected": (400, "BD account is not connected"),
    "session_expired": (409, "Telegram session expired. Reconnect account via QR or phone login."),
}
PEER_FLOOD = "Telegram rate limit (PEER_FLOOD). Send fewer messages to this user or wait before retrying."
DOWNSTREAM_ERROR = {
    "error": "Downstream error",
    "message": "500: RPC_CALL_FAIL (caused by messages.SendMessage)",
}
ABORTED = {"error": "Internal server error", "message": "This operation was aborted"}
UNSUPPORTED_CHANNEL = {"error": "Unsupported channel or sending failed"}
BD_ACCOUNT_REQUIRED = {"error": "bdAccountId is required for Telegram messages"}
UNAUTHORIZED = {"error": "Unauthorized", "code": "UNAUTHORIZED"}
NOT_RUNNING = {"error": "Downstream error", "message": "The sandbox is not running"}


def relayed(reason: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": reason, "message": reason}
    if details is not None:
        body["details"] = details
    return body


def wait_seconds(remaining: float, configured: float) -> float | int:
    """What a flood answer says is left: whole seconds as Telegram reports them, unless the sandbox was
    configured with a fractional wait (fast tests), which is then reported to the millisecond."""
    if float(configured).is_integer():
        return max(0, math.ceil(remaining - 1e-9))
    return max(0.001, round(remaining, 3))


def validation_failed(details: list[dict[str, str]]) -> dict[str, Any]:
    return {"error": "Validation failed", "code": "VALIDATION", "details": details}


@attrs.frozen
class Verdict:
    """What happens to one send: the answer, and whether (and when) the message is delivered."""

    outcome: str
    status: int
    # None: answer with the delivered message row.
    body: dict[str, Any] | None = None
    delivers: bool = False
    # Deliver only after ``hang_s``, long after the caller's timeout.
    hang: bool = False

    @classmethod
    def sent(cls) -> Verdict:
        return cls("sent", 200, delivers=True)

    @classmethod
    def timeout(cls) -> Verdict:
        return cls("timeout_delivered", 200, delivers=True, hang=True)

    @classmethod
    def abort(cls) -> Verdict:
        return cls("abort_delivered", 500, ABORTED, delivers=True)

    @classmethod
    def downstream_error(cls) -> Verdict:
        return cls("downstream_error", 502, DOWNSTREAM_ERROR)

    @classmethod
    def flood_wait(cls, seconds: float | int) -> Verdict:
        message = f"A wait of {seconds} seconds is required (caused by messages.SendMessage)"
        return cls("flood_wait", 429, relayed(message, {"retryAfterSeconds": seconds}))

    @classmethod
    def peer_flood(cls) -> Verdict:
        return cls("peer_flood", 429, relayed(PEER_FLOOD))

    @classmethod
    def recipient_error(cls, kind: str) -> Verdict:
        return cls(kind, 400, relayed(RECIPIENT_ERRORS[kind]))

    @classmethod
    def account_error(cls, kind: str) -> Verdict:
        status, reason = ACCOUNT_ERRORS[kind]
        return cls(kind, status, relayed(reason))
