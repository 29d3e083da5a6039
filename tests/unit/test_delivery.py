from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignsvc.domain.delivery import (
    AccountBlock,
    ErrorClass,
    Failure,
    backoff_s,
    classify_response,
    classify_transport,
    is_recipient_reason,
    reason_of,
)


def relayed(reason: str, **extra) -> dict:
    """How Messaging relays a downstream 4xx: ``{"error": reason, "message": reason, "details"?}``."""
    return {"error": reason, "message": reason, **extra}


# Every bd-accounts recipient reason of original-v1 §5.3, as Messaging relays it (400).
RECIPIENT_REASONS = [
    "User or chat not found. Check that the Telegram ID or username is correct and the account can message this peer.",
    "Telegram: recipient only accepts messages from Premium accounts (privacy). Ask them to write first.",
    "Telegram: recipient's privacy settings block messages from your account.",
    "Telegram: sending to this chat is not allowed (write forbidden).",
    "Telegram: cannot message this user (not a mutual contact per their privacy settings).",
    "Telegram: Premium is required for this action or recipient.",
    "Recipient Telegram account is deactivated.",
    "400: PRIVACY_PREMIUM_REQUIRED (caused by messages.SendMessage)",
    "USER_PRIVACY_RESTRICTED",
    "CHAT_WRITE_FORBIDDEN",
    "USER_NOT_MUTUAL_CONTACT",
    "File too large: maximum file size is 2 GB",
]


@pytest.mark.parametrize("reason", RECIPIENT_REASONS)
def test_classify__each_recipient_reason_of_bd_accounts_fails_the_participant(reason):
    assert classify_response(400, relayed(reason)) == Failure(ErrorClass.RECIPIENT, reason)
    assert is_recipient_reason(reason)


@pytest.mark.parametrize(
    "body",
    [
        {"error": "Validation failed", "code": "VALIDATION", "details": [{"path": ["channelId"]}]},
        {"error": "Unsupported channel or sending failed"},
        {"error": "bdAccountId is required for Telegram messages"},
    ],
)
def test_classify__messaging_400_validation_errors_are_recipient_permanent(body):
    failure = classify_response(400, body)
    assert failure.error_class is ErrorClass.RECIPIENT
    assert failure.reason == body["error"]
    assert failure.block is None


def test_classify__404_contact_not_found_is_recipient():
    assert classify_response(404, {"error": "Contact not found", "code": "NOT_FOUND"}) == Failure(
        ErrorClass.RECIPIENT, "Contact not found"
    )


def test_classify__413_file_too_large_is_recipient():
    body = {"error": "File too large", "message": "Estimated file size exceeds 2 GB"}
    assert classify_response(413, body) == Failure(ErrorClass.RECIPIENT, "Estimated file size exceeds 2 GB")


def test_classify__400_not_connected_blocks_the_account():
    assert classify_response(400, relayed("BD account is not connected")) == Failure(
        ErrorClass.ACCOUNT, "BD account is not connected", AccountBlock.NOT_CONNECTED
    )


def test_classify__409_session_expired_blocks_the_account():
    reason = "Telegram session expired. Reconnect account via QR or phone login."
    assert classify_response(409, relayed(reason)) == Failure(
        ErrorClass.ACCOUNT, reason, AccountBlock.SESSION_EXPIRED
    )
    assert classify_response(409, None).block is AccountBlock.SESSION_EXPIRED


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, relayed("Demo accounts cannot send messages")),
        (403, None),
        (404, relayed("BD account not found")),
        (404, {"error": "Account not found", "code": "NOT_FOUND"}),
        (401, {"error": "Unauthorized"}),
    ],
)
def test_classify__demo_missing_or_unauthorised_account_is_unavailable(status, body):
    failure = classify_response(status, body)
    assert failure.error_class is ErrorClass.ACCOUNT
    assert failure.block is AccountBlock.ACCOUNT_UNAVAILABLE


def test_classify__429_flood_wait_with_retry_after():
    body = relayed(
        "A wait of 120 seconds is required (caused by messages.SendMessage)",
        details={"retryAfterSeconds": 120},
    )
    assert classify_response(429, body) == Failure(
        ErrorClass.ACCOUNT, body["message"], AccountBlock.FLOOD_WAIT, 120.0
    )


def test_classify__429_without_details_reads_the_wait_from_the_text_or_leaves_none():
    assert classify_response(429, relayed("A wait of 77 seconds is required")).retry_after_s == 77.0
    assert classify_response(429, {"error": "Too many requests"}) == Failure(
        ErrorClass.ACCOUNT, "Too many requests", AccountBlock.FLOOD_WAIT, None
    )


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"retryAfterSeconds": "45"}, 45.0),
        ({"retryAfterSeconds": -3}, None),
        ({"retryAfterSeconds": True}, None),
        ({}, None),
        ("x", None),
    ],
)
def test_classify__429_retry_after_must_be_a_non_negative_number(details, expected):
    assert classify_response(429, relayed("FLOOD_WAIT", details=details)).retry_after_s == expected


def test_classify__429_peer_flood():
    reason = "Telegram rate limit (PEER_FLOOD). Send fewer messages to this user or wait before retrying."
    assert classify_response(429, relayed(reason)) == Failure(
        ErrorClass.ACCOUNT, reason, AccountBlock.PEER_FLOOD
    )
    with_details = classify_response(429, relayed(reason, details={"retryAfterSeconds": 3600}))
    assert with_details.block is AccountBlock.PEER_FLOOD
    assert with_details.retry_after_s == 3600.0


@pytest.mark.parametrize(
    "body",
    [
        {"error": "Internal server error", "message": "This operation was aborted"},
        {"error": "Internal server error", "message": "The operation was aborted due to timeout"},
        {"error": "Internal server error", "message": "Request timed out"},
        {"error": "Internal server error"},
        "Internal Server Error",
        None,
    ],
)
def test_classify__500_means_the_message_may_have_been_sent(body):
    assert classify_response(500, body).error_class is ErrorClass.UNKNOWN


def test_classify__504_gateway_timeout_is_unknown():
    assert classify_response(504, "<html>Gateway Time-out</html>").error_class is ErrorClass.UNKNOWN


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            502,
            {
                "error": "Downstream error",
                "message": "RPCError 500: INTERNAL (caused by messages.SendMessage)",
            },
        ),
        (
            503,
            {
                "error": "Downstream error",
                "message": "bd-accounts-service circuit breaker is open — retry later",
            },
        ),
        (503, None),
        (507, {"error": "Insufficient storage"}),
    ],
)
def test_classify__other_5xx_are_transient(status, body):
    assert classify_response(status, body).error_class is ErrorClass.TRANSIENT


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (422, ErrorClass.RECIPIENT),
        (418, ErrorClass.RECIPIENT),
        (408, ErrorClass.TRANSIENT),
        (302, ErrorClass.TRANSIENT),
    ],
)
def test_classify__other_statuses(status, expected):
    assert classify_response(status, {"error": "x"}).error_class is expected


def test_classify__a_success_is_not_a_failure():
    with pytest.raises(ValueError):
        classify_response(200, {})


def test_reason_of__message_then_error_then_text_capped_at_500():
    assert reason_of(400, {"error": "E", "message": "M"}) == "M"
    assert reason_of(400, {"error": "E", "message": "  "}) == "E"
    assert reason_of(400, {"code": "X"}) == '{"code": "X"}'
    assert reason_of(400, {}) == "HTTP 400"
    assert reason_of(503, None) == "HTTP 503"
    assert reason_of(503, "") == "HTTP 503"
    assert reason_of(502, b"Bad gateway\n") == "Bad gateway"
    assert reason_of(400, "x" * 2000) == "x" * 500
    assert len(classify_response(400, {"message": "y" * 900}).reason) == 500


def test_classify_transport__refused_before_sending_is_transient():
    assert classify_transport("connect").error_class is ErrorClass.TRANSIENT
    assert classify_transport("pool_timeout").error_class is ErrorClass.TRANSIENT


@pytest.mark.parametrize(
    "kind", ["timeout", "read_timeout", "write_timeout", "reset", "protocol", "something-new"]
)
def test_classify_transport__after_the_request_left_is_unknown(kind):
    failure = classify_transport(kind)
    assert failure.error_class is ErrorClass.UNKNOWN
    assert kind in failure.reason


def test_error_enums_are_strings_for_storage():
    assert ErrorClass.UNKNOWN == "unknown"
    assert AccountBlock.PEER_FLOOD == "peer_flood"


# --- backoff -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(0, 1, 2), (1, 1, 2), (2, 2, 4), (3, 4, 8), (9, 256, 512), (10, 300, 600), (10_000, 300, 600)],
)
def test_backoff__doubles_from_2_s_with_jitter_capped_at_10_min(attempt, low, high):
    rng = random.Random(attempt)
    for _ in range(50):
        assert low <= backoff_s(attempt, rng) < high


@settings(max_examples=100, deadline=None)
@given(st.integers(-5, 10**6), st.integers(0, 2**32))
def test_backoff__always_within_one_and_six_hundred_seconds(attempt, seed):
    assert 1 <= backoff_s(attempt, random.Random(seed)) <= 600


def test_backoff__jitter_spreads_retries():
    rng = random.Random(3)
    assert len({round(backoff_s(4, rng), 3) for _ in range(100)}) > 90
