"""The Messaging Service sandbox over real sockets: the send contract, Telegram-like failures, idempotency,
replies over HTTP and RabbitMQ, inspection, and the ``campaignsvc sandbox`` process."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from campaignsvc.errors import ConfigError
from campaignsvc.sandbox import SandboxConfig, SandboxState, run_sandbox
from campaignsvc.sandbox.answers import PEER_FLOOD, RECIPIENT_ERRORS
from tests.conftest import ROOT, free_port
from tests.integration.sandbox_helpers import (
    ACCOUNT,
    CONTACT,
    HEADERS,
    ORG,
    OTHER_ACCOUNT,
    USER,
    EventSink,
    body,
    close_tap,
    delete_exchange,
    envelope_of,
    open_tap,
    serve_event_sink,
    start_sandbox,
    wait_for_messages,
    wait_until,
)

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROW_FIELDS = {
    "id",
    "organization_id",
    "contact_id",
    "bd_account_id",
    "channel",
    "channel_id",
    "direction",
    "content",
    "status",
    "unread",
    "metadata",
    "sent_at",
    "created_at",
    "updated_at",
    "telegram_message_id",
    "telegram_date",
    "loaded_at",
    "reply_to_telegram_id",
    "telegram_entities",
    "telegram_media",
    "telegram_extra",
    "our_reactions",
    "reactions",
}


async def _send(http: httpx.AsyncClient, sandbox, payload, *, headers=HEADERS, **kwargs) -> httpx.Response:
    return await http.post(sandbox.send_url, json=payload, headers=headers, **kwargs)


# -- the send contract ------------------------------------------------------------------------------


async def test_send__success_answers_the_full_message_row_and_records_the_request(nursery):
    sandbox = await start_sandbox(nursery, latency_ms=5, jitter_ms=3, seed=3)
    async with httpx.AsyncClient() as http:
        response = await _send(http, sandbox, body(1))
        listed = (await http.get(f"{sandbox.url}/sandbox/received")).json()["items"]

    assert response.status_code == 200
    row = response.json()
    assert set(row) == ROW_FIELDS
    uuid.UUID(row["id"])
    assert row["organization_id"] == ORG
    assert row["contact_id"] == CONTACT
    assert row["bd_account_id"] == ACCOUNT
    assert (row["channel"], row["channel_id"]) == ("telegram", "700001")
    assert (row["direction"], row["status"], row["unread"]) == ("outbound", "delivered", False)
    assert row["content"] == "Hello 1"
    assert row["metadata"] == {"sentBy": USER, "idempotencyKey": "key-1", "source": "campaign"}
    for field in ("sent_at", "created_at", "updated_at", "telegram_date"):
        assert ISO_MS.match(row[field]), field
    assert row["telegram_message_id"].isdigit()

    [record] = sandbox.state.received
    assert (record.status, record.outcome, record.replay) == (200, "sent", False)
    assert record.message_id == row["id"]
    assert record.correlation_id == "corr-1"
    assert listed[0]["seq"] == 1
    assert ISO_MS.match(listed[0]["received_at"])
    assert isinstance(listed[0]["received_mono"], float)
    assert listed[0]["bdAccountId"] == ACCOUNT and listed[0]["idempotencyKey"] == "key-1"
    assert sandbox.state.messages[0]["id"] == row["id"]


async def test_send__empty_contact_id_means_none_and_a_file_alone_is_enough(nursery):
    sandbox = await start_sandbox(nursery)
    async with httpx.AsyncClient() as http:
        response = await _send(
            http, sandbox, body(2, contactId="", content=..., fileBase64="aGk=", fileName="a.txt")
        )
    assert response.status_code == 200
    assert response.json()["contact_id"] is None
    assert response.json()["telegram_media"] == {"fileName": "a.txt"}


@pytest.mark.parametrize(
    ("payload", "path", "message"),
    [
        (body(1, channelId=...), "channelId", "Required"),
        (body(1, channelId=""), "channelId", "String must contain at least 1 character(s)"),
        (body(1, channel="t" * 65), "channel", "String must contain at most 64 character(s)"),
        (body(1, contactId="not-a-uuid"), "contactId", "Invalid uuid"),
        (body(1, bdAccountId="acc-1"), "bdAccountId", "Invalid uuid"),
        (body(1, content="x" * 100_001), "content", "String must contain at most 100000 character(s)"),
        (body(1, content=""), "content", "Either content or fileBase64 is required"),
        (body(1, source="s" * 65), "source", "String must contain at most 64 character(s)"),
        (body(1, idempotencyKey="k" * 257), "idempotencyKey", "String must contain at most 256 character(s)"),
        (body(1, usernameHint=""), "usernameHint", "String must contain at least 1 character(s)"),
        (body(1, channelId=700001), "channelId", "Expected string, received number"),
        ([1, 2], "", "Expected object, received array"),
    ],
)
async def test_send__invalid_body_is_a_validation_error(nursery, payload, path, message):
    sandbox = await start_sandbox(nursery)
    async with httpx.AsyncClient() as http:
        response = await _send(http, sandbox, payload)
    assert response.status_code == 400
    assert response.json() == {
        "error": "Validation failed",
        "code": "VALIDATION",
        "details": [{"path": path, "message": message}],
    }
    assert sandbox.state.received[0].outcome == "validation"
    assert sandbox.state.messages == []


async def test_send__other_channels_and_a_missing_account_are_refused(nursery):
    sandbox = await start_sandbox(nursery)
    async with httpx.AsyncClient() as http:
        email = await _send(http, sandbox, body(1, channel="email"))
        no_account = await _send(http, sandbox, body(1, bdAccountId=None))
    assert (email.status_code, email.json()) == (400, {"error": "Unsupported channel or sending failed"})
    assert no_account.status_code == 400
    assert no_account.json() == {"error": "bdAccountId is required for Telegram messages"}


async def test_send__internal_auth_is_required_when_a_secret_is_configured(nursery):
    sandbox = await start_sandbox(nursery, internal_auth_secret="s3cret")
    async with httpx.AsyncClient() as http:
        refused = await _send(http, sandbox, body(1))
        allowed = await _send(http, sandbox, body(1), headers={**HEADERS, "X-Internal-Auth": "s3cret"})
    assert refused.status_code == 401
    assert allowed.status_code == 200


# -- idempotency ----------------------------------------------------------------------------------


async def test_idempotency__a_repeated_key_replays_the_first_row_without_sending(nursery):
    sandbox = await start_sandbox(nursery)
    async with httpx.AsyncClient() as http:
        first = await _send(http, sandbox, body(1))
        again = await _send(http, sandbox, body(1, content="changed", source="manual"))
        other = await _send(http, sandbox, body(2))
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert other.json()["id"] != first.json()["id"]
    assert len(sandbox.state.messages) == 2
    assert [r.replay for r in sandbox.state.received] == [False, True, False]
    assert sandbox.state.stats()["accounts"][ACCOUNT]["replays"] == 1


async def test_idempotency__concurrent_requests_with_one_key_send_once(nursery):
    sandbox = await start_sandbox(nursery, latency_ms=100)
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient() as http:

        async def one() -> None:
            answers.append(await _send(http, sandbox, body(1)))

        async with trio.open_nursery() as senders:
            for _ in range(5):
                senders.start_soon(one)
    assert [a.status_code for a in answers] == [200] * 5
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(sandbox.state.messages) == 1
    assert sorted(r.outcome for r in sandbox.state.received) == ["replay"] * 4 + ["sent"]


async def test_idempotency__a_key_whose_first_attempt_failed_can_send(nursery):
    sandbox = await start_sandbox(nursery, account_errors={ACCOUNT: "not_connected"})
    async with httpx.AsyncClient() as http:
        failed = await _send(http, sandbox, body(1))
        sandbox.state.update_config({"account_errors": {}})
        retried = await _send(http, sandbox, body(1))
    assert failed.status_code == 400
    assert retried.status_code == 200
    assert [r.outcome for r in sandbox.state.received] == ["not_connected", "sent"]


# -- Telegram limits ----------------------------------------------------------------------------------


async def test_flood_wait__a_too_fast_second_send_is_refused_until_the_wait_is_over(nursery):
    sandbox = await start_sandbox(nursery, account_min_gap_s=0.3, flood_wait_s=0.3)
    async with httpx.AsyncClient() as http:
        first = await _send(http, sandbox, body(1))
        flooded = await _send(http, sandbox, body(2))
        other_account = await _send(http, sandbox, body(3, bdAccountId=OTHER_ACCOUNT))
        await trio.sleep(0.35)
        recovered = await _send(http, sandbox, body(4))

    assert first.status_code == 200
    message = "A wait of 0.3 seconds is required (caused by messages.SendMessage)"
    assert flooded.status_code == 429
    assert flooded.json() == {"error": message, "message": message, "details": {"retryAfterSeconds": 0.3}}
    assert other_account.status_code == 200
    assert recovered.status_code == 200
    counters = sandbox.state.stats()["accounts"][ACCOUNT]
    assert (counters["sent"], counters["flood"]) == (2, 1)


async def test_flood_wait__the_block_holds_for_its_length_and_reports_what_is_left(nursery):
    now = [1000.0]
    state = SandboxState(SandboxConfig(account_min_gap_s=10, flood_wait_s=30), clock=lambda: now[0])
    url = await nursery.start(partial(run_sandbox, state.config, host="127.0.0.1", port=0, state=state))

    async with httpx.AsyncClient() as http:

        async def send_at(t: float, n: int) -> tuple[int, object]:
            now[0] = t
            response = await http.post(f"{url}/api/messaging/send", json=body(n), headers=HEADERS)
            return response.status_code, response.json().get("details", {}).get("retryAfterSeconds")

        answers = [
            await send_at(1000.0, 1),  # accepted
            await send_at(1005.0, 2),  # 5 s after it: blocked for 30 s
            await send_at(1020.0, 3),  # still blocked, 15 s left
            await send_at(1034.5, 4),  # 0.5 s left, reported in whole seconds
            await send_at(1035.0, 5),  # the block is over and the gap since 1000 is long enough
            await send_at(1036.0, 6),  # too soon after 1035: blocked again
        ]
    assert answers == [(200, None), (429, 30), (429, 15), (429, 1), (200, None), (429, 30)]
    [flooded] = [r for r in state.received if r.seq == 2]
    assert flooded.outcome == "flood_wait"


async def test_peer_flood__listed_accounts_and_accounts_past_the_threshold(nursery):
    sandbox = await start_sandbox(nursery, peer_flood_accounts=[OTHER_ACCOUNT], peer_flood_after=2)
    async with httpx.AsyncClient() as http:
        listed = await _send(http, sandbox, body(1, bdAccountId=OTHER_ACCOUNT))
        statuses = [(await _send(http, sandbox, body(n))).status_code for n in range(2, 6)]
    assert listed.status_code == 429
    assert listed.json() == {"error": PEER_FLOOD, "message": PEER_FLOOD}
    assert "PEER_FLOOD" in listed.json()["error"]
    assert statuses == [200, 200, 429, 429]
    assert sandbox.state.stats()["accounts"][ACCOUNT]["peerFlood"] == 2


@pytest.mark.parametrize("kind", sorted(RECIPIENT_ERRORS))
async def test_recipient_errors__each_kind_answers_its_exact_message(nursery, kind):
    by_contact = "c0ffee00-0000-4000-8000-0000000000ff"
    sandbox = await start_sandbox(nursery, recipient_errors={"700001": kind, by_contact: kind})
    async with httpx.AsyncClient() as http:
        by_channel = await _send(http, sandbox, body(1))
        via_contact = await _send(http, sandbox, body(2, contactId=by_contact))
        fine = await _send(http, sandbox, body(3))
    expected = {"error": RECIPIENT_ERRORS[kind], "message": RECIPIENT_ERRORS[kind]}
    assert (by_channel.status_code, by_channel.json()) == (400, expected)
    assert (via_contact.status_code, via_contact.json()) == (400, expected)
    assert fine.status_code == 200


def test_recipient_errors__messages_match_the_messaging_contract():
    assert (
        RECIPIENT_ERRORS["privacy"]
        == "Telegram: recipient's privacy settings block messages from your account."
    )
    assert RECIPIENT_ERRORS["deactivated"] == "Recipient Telegram account is deactivated."
    assert (
        RECIPIENT_ERRORS["write_forbidden"]
        == "Telegram: sending to this chat is not allowed (write forbidden)."
    )
    assert RECIPIENT_ERRORS["premium"].startswith(
        "Telegram: recipient only accepts messages from Premium accounts (privacy)."
    )
    assert RECIPIENT_ERRORS["not_found"].startswith("User or chat not found.")


async def test_account_errors__not_connected_and_session_expired(nursery):
    sandbox = await start_sandbox(
        nursery, account_errors={ACCOUNT: "not_connected", OTHER_ACCOUNT: "session_expired"}
    )
    async with httpx.AsyncClient() as http:
        not_connected = await _send(http, sandbox, body(1))
        expired = await _send(http, sandbox, body(2, bdAccountId=OTHER_ACCOUNT))
    assert not_connected.status_code == 400
    assert not_connected.json() == {
        "error": "BD account is not connected",
        "message": "BD account is not connected",
    }
    reason = "Telegram session expired. Reconnect account via QR or phone login."
    assert (expired.status_code, expired.json()) == (409, {"error": reason, "message": reason})
    assert sandbox.state.messages == []


# -- failure injection ------------------------------------------------------------------------------


async def test_timeout__the_send_hangs_past_the_caller_then_is_delivered_and_retries_replay_it(nursery):
    sandbox = await start_sandbox(nursery, timeout_rate=1.0, hang_s=0.5)
    state = sandbox.state
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ReadTimeout):
            await _send(http, sandbox, body(1), timeout=0.1)
        assert state.messages == [] and state.received[0].status is None
        # A retry while the first attempt is still hanging waits for it and gets its message.
        during = await _send(http, sandbox, body(1), timeout=5)
        after = await _send(http, sandbox, body(1), timeout=5)

    assert during.status_code == after.status_code == 200
    assert during.json()["id"] == after.json()["id"] == state.messages[0]["id"]
    assert len(state.messages) == 1
    assert [(r.status, r.outcome) for r in state.received] == [
        (200, "timeout_delivered"),
        (200, "replay"),
        (200, "replay"),
    ]


async def test_abort__the_message_is_delivered_but_the_answer_is_a_500(nursery):
    sandbox = await start_sandbox(nursery, abort_rate=1.0)
    async with httpx.AsyncClient() as http:
        aborted = await _send(http, sandbox, body(1))
        retried = await _send(http, sandbox, body(1))
    assert aborted.status_code == 500
    assert aborted.json() == {"error": "Internal server error", "message": "This operation was aborted"}
    assert retried.status_code == 200
    assert retried.json()["id"] == sandbox.state.messages[0]["id"]
    assert len(sandbox.state.messages) == 1


async def test_error_rate__a_downstream_error_sends_nothing(nursery):
    sandbox = await start_sandbox(nursery, error_rate=1.0)
    async with httpx.AsyncClient() as http:
        response = await _send(http, sandbox, body(1))
    assert response.status_code == 502
    assert response.json()["error"] == "Downstream error"
    assert sandbox.state.messages == []


async def test_failure_injection__the_same_seed_gives_the_same_outcomes(nursery):
    sandbox = await start_sandbox(nursery, seed=11, error_rate=0.3, abort_rate=0.2)

    async def run() -> list[int]:
        async with httpx.AsyncClient() as http:
            return [(await _send(http, sandbox, body(n))).status_code for n in range(30)]

    first = await run()
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{sandbox.url}/sandbox/reset")).status_code == 200
    assert sandbox.state.received == []
    second = await run()
    assert first == second
    assert {200, 500, 502} == set(first)


# -- replies and echoes ------------------------------------------------------------------------------


async def test_replies__delivered_over_http_once_per_recipient_with_echoes(nursery):
    sink = EventSink()
    sink_url = await serve_event_sink(nursery, sink)
    sandbox = await start_sandbox(
        nursery,
        reply_rate=1.0,
        reply_delay_s=[0.05, 0.1],
        echo_rate=1.0,
        events_url=sink_url,
        internal_auth_secret="s3cret",
        events_ingest_secret="ingest",
    )
    auth = {**HEADERS, "X-Internal-Auth": "s3cret"}
    async with httpx.AsyncClient() as http:
        sent = (await _send(http, sandbox, body(1), headers=auth)).json()
        await _send(http, sandbox, body(1, idempotencyKey="follow-up"), headers=auth)
    await sink.wait_for(3)  # two echoes, one reply
    await wait_until(sandbox.state, lambda: all(e.status == "delivered" for e in sandbox.state.events))

    envelopes = [envelope for _, envelope in sink.received]
    echoes = [e for e in envelopes if e["data"]["direction"] == "outbound"]
    [reply] = [e for e in envelopes if e["data"]["direction"] == "inbound"]
    assert len(echoes) == 2
    assert echoes[0]["data"]["messageId"] == sent["id"]
    assert reply["type"] == "message.received"
    uuid.UUID(reply["id"])
    assert ISO_MS.match(reply["timestamp"])
    assert reply["organizationId"] == ORG
    assert reply["data"] == {
        "messageId": reply["data"]["messageId"],
        "channel": "telegram",
        "channelId": "700001",
        "contactId": CONTACT,
        "bdAccountId": ACCOUNT,
        "content": SandboxConfig().reply_text,
        "direction": "inbound",
        "telegramMessageId": reply["data"]["telegramMessageId"],
        "createdAt": reply["timestamp"],
    }
    headers = {k.lower(): v for k, v in sink.received[0][0].items()}
    assert headers["x-organization-id"] == ORG
    assert headers["x-internal-auth"] == "s3cret"
    assert headers["x-events-ingest-secret"] == "ingest"
    assert "x-user-id" not in headers
    async with httpx.AsyncClient() as http:
        listed = (await http.get(f"{sandbox.url}/sandbox/events")).json()["items"]
    assert sorted(e["kind"] for e in listed) == ["echo", "echo", "reply"]
    assert all(e["status"] == "delivered" and e["target"] == "http" for e in listed)


async def test_replies__who_replies_depends_only_on_the_seed(nursery):
    config = SandboxConfig(seed=5, reply_rate=0.5, reply_delay_s=[0, 0])
    sandbox = await start_sandbox(nursery, config)

    async def repliers() -> set[str]:
        async with httpx.AsyncClient() as http:
            for n in range(40):
                await _send(http, sandbox, body(n))
        await wait_until(sandbox.state, lambda: all(e.status != "scheduled" for e in sandbox.state.events))
        return {e.envelope["data"]["channelId"] for e in sandbox.state.events}

    first = await repliers()
    sandbox.state.reset()
    assert first == await repliers()
    assert 5 < len(first) < 35
    assert {e.status for e in sandbox.state.events} == {"skipped"}  # no target configured
    expected = {f"70000{n}" for n in range(40) if SandboxState(config).reply_delay(f"70000{n}") is not None}
    assert first == expected


async def test_replies__failed_deliveries_are_retried_and_a_dead_target_does_not_stop_the_sandbox(nursery):
    sink = EventSink(statuses=[503, 503])
    sink_url = await serve_event_sink(nursery, sink)
    sandbox = await start_sandbox(
        nursery, reply_rate=1.0, reply_delay_s=[0, 0], events_url=sink_url, delivery_backoff_s=0.01
    )
    async with httpx.AsyncClient() as http:
        await _send(http, sandbox, body(1))
        await sink.wait_for(1)
        [event] = sandbox.state.events
        await wait_until(sandbox.state, lambda: event.status == "delivered")
        assert event.attempts == 3

        dead = f"http://127.0.0.1:{free_port()}"
        sandbox.state.update_config({"events_url": dead, "delivery_attempts": 2})
        await _send(http, sandbox, body(2))
        await wait_until(sandbox.state, lambda: sandbox.state.events[-1].status == "failed")
        assert sandbox.state.events[-1].attempts == 2
        assert "ConnectError" in sandbox.state.events[-1].last_error
        assert (await _send(http, sandbox, body(3))).status_code == 200


@pytest.mark.rabbitmq
async def test_replies__published_to_rabbitmq_as_persistent_message_received_events(aio_loop, amqp):
    tap = await open_tap(amqp.url, amqp.exchange)
    try:
        config = SandboxConfig(
            reply_rate=1.0, reply_delay_s=[0.02, 0.05], rabbitmq_url=amqp.url, rabbitmq_exchange=amqp.exchange
        )
        state = SandboxState(config)
        async with trio.open_nursery() as nursery:
            url = await nursery.start(partial(run_sandbox, config, host="127.0.0.1", port=0, state=state))
            async with httpx.AsyncClient() as http:
                for n in (1, 2):
                    payload = body(n)
                    assert (
                        await http.post(f"{url}/api/messaging/send", json=payload, headers=HEADERS)
                    ).is_success
            messages = await wait_for_messages(tap, 2)
            await wait_until(state, lambda: all(e.status == "delivered" for e in state.events))
            nursery.cancel_scope.cancel()
    finally:
        await close_tap(tap)

    envelopes = sorted((envelope_of(m) for m in messages), key=lambda e: e["data"]["channelId"])
    assert [e["data"]["channelId"] for e in envelopes] == ["700001", "700002"]
    for message, envelope in zip(messages, (envelope_of(m) for m in messages), strict=True):
        assert message.routing_key == "message.received"
        assert message.message_id == envelope["id"]
        assert message.delivery_mode == 2  # persistent
        assert envelope["type"] == "message.received"
        assert envelope["organizationId"] == ORG
        assert envelope["data"]["direction"] == "inbound"
    assert {e.target for e in state.events} == {"rabbitmq"}


@pytest.mark.rabbitmq
async def test_replies__unroutable_or_unreachable_broker_fails_the_event_not_the_sandbox(aio_loop, amqp):
    # No queue is bound to the exchange: the broker returns the message (NO_ROUTE) and it is retried.
    config = SandboxConfig(
        reply_rate=1.0,
        reply_delay_s=[0, 0],
        rabbitmq_url=amqp.url,
        rabbitmq_exchange=amqp.exchange,
        delivery_attempts=2,
        delivery_backoff_s=0.01,
    )
    state = SandboxState(config)
    try:
        async with trio.open_nursery() as nursery, httpx.AsyncClient() as http:
            url = await nursery.start(partial(run_sandbox, config, host="127.0.0.1", port=0, state=state))
            send_url = f"{url}/api/messaging/send"
            assert (await http.post(send_url, json=body(1), headers=HEADERS)).status_code == 200
            await wait_until(state, lambda: state.events[0].status == "failed")
            assert "NO_ROUTE" in state.events[0].last_error
            assert state.events[0].attempts == 2

            state.update_config({"rabbitmq_url": f"amqp://guest:guest@127.0.0.1:{free_port()}/"})
            assert (await http.post(send_url, json=body(2), headers=HEADERS)).status_code == 200
            await wait_until(state, lambda: state.events[-1].status == "failed", within_s=15)
            assert (await http.post(send_url, json=body(3), headers=HEADERS)).status_code == 200
            nursery.cancel_scope.cancel()
    finally:
        await delete_exchange(amqp.url, amqp.exchange)


# -- inspection and control -----------------------------------------------------------------------


async def test_inspection__received_filters_and_stats_count_per_status_and_account(nursery):
    sandbox = await start_sandbox(nursery, peer_flood_accounts=[OTHER_ACCOUNT])
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        await _send(http, sandbox, body(1))
        await _send(http, sandbox, body(1))
        await _send(http, sandbox, body(2, bdAccountId=OTHER_ACCOUNT))
        await _send(http, sandbox, body(3, channel="email"))
        mine = (await http.get("/sandbox/received", params={"bdAccountId": ACCOUNT})).json()["items"]
        later = (await http.get("/sandbox/received", params={"since_seq": 2})).json()["items"]
        stats = (await http.get("/sandbox/stats")).json()

    assert [r["seq"] for r in mine] == [1, 2, 4]
    assert [r["seq"] for r in later] == [3, 4]
    assert [r["status"] for r in later] == [429, 400]
    assert stats["byStatus"] == {"200": 2, "400": 1, "429": 1}
    assert stats["byOutcome"]["peer_flood"] == 1
    assert stats["accounts"][ACCOUNT] == {
        "requests": 2,
        "sent": 1,
        "flood": 0,
        "peerFlood": 0,
        "errors": 0,
        "replays": 1,
    }
    assert stats["accounts"][OTHER_ACCOUNT]["peerFlood"] == 1
    assert stats == sandbox.state.stats()


async def test_control__config_patch_is_validated_applied_and_reset_forgets(nursery):
    sandbox = await start_sandbox(nursery)
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        bad = await http.post("/sandbox/config", json={"error_rate": 2, "nope": 1})
        assert bad.status_code == 400
        assert bad.json()["details"] == [{"path": "nope", "message": "Unknown config field"}]
        bad_rate = await http.post("/sandbox/config", json={"reply_delay_s": [3, 1]})
        assert bad_rate.status_code == 400 and bad_rate.json()["code"] == "VALIDATION"

        changed = await http.post("/sandbox/config", json={"account_errors": {ACCOUNT: "session_expired"}})
        assert changed.json()["account_errors"] == {ACCOUNT: "session_expired"}
        assert (await _send(http, sandbox, body(1))).status_code == 409
        assert (await http.get("/sandbox/config")).json()["account_errors"] == {ACCOUNT: "session_expired"}

        assert (await http.post("/sandbox/reset")).json() == {"ok": True}
        assert (await http.get("/sandbox/received")).json()["items"] == []
        assert (await http.get("/sandbox/stats")).json()["requests"] == 0


async def test_run_sandbox__rabbitmq_without_an_asyncio_loop_fails_at_start():
    with pytest.raises(ConfigError, match="open_loop"):
        await run_sandbox(SandboxConfig(rabbitmq_url="amqp://guest:guest@127.0.0.1:5672/"), port=0)


# -- the process --------------------------------------------------------------------------------------


async def test_cli__sandbox_serves_until_sigterm_and_exits_0(tmp_path: Path):
    port = free_port()
    log_path = tmp_path / "sandbox.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaignsvc", "sandbox", "--port", str(port), "--seed", "3"],
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:
            with trio.fail_after(20):
                while True:
                    assert process.poll() is None, log_path.read_text()
                    try:
                        if (await http.get("/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await trio.sleep(0.05)
            sent = await http.post("/api/messaging/send", json=body(1), headers=HEADERS)
            assert sent.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = log_path.read_text()
    assert "sandbox.listening" in log and "sandbox.stopped" in log
    assert "Traceback" not in log
