"""Events over the real RabbitMQ with the real process: replies in, campaign events out through the outbox."""

from __future__ import annotations

import collections
import json
import socket
import uuid

import httpx
import pytest
import trio

from tests.conftest import free_port, start_service, stop_service
from tests.e2e.processes import HttpClient, start_sandbox_process
from tests.factories import make_org
from tests.integration import amqp_helpers as mq
from tests.integration.dispatch_helpers import Env, reply_event

pytestmark = pytest.mark.rabbitmq


async def _until(predicate, within: float = 20.0) -> None:
    with trio.fail_after(within):
        while not await predicate():
            await trio.sleep(0.05)


async def test_events__replies_in_and_campaign_events_out_survive_a_broker_disconnect(
    store, database_url, tmp_path, amqp
):
    sandbox_port = free_port()
    sandbox = await start_sandbox_process(tmp_path / "sandbox.log", sandbox_port, "--latency-ms", "20")
    capture = f"{amqp.queue}-capture"
    await mq.declare_capture_queue(amqp.url, amqp.exchange, capture, keys=("campaign.#", "lead.#"))
    service = await start_service(
        {
            "DATABASE_URL": database_url,
            "RABBITMQ_URL": amqp.url,
            "RABBITMQ_EXCHANGE": amqp.exchange,
            "RABBITMQ_QUEUE": amqp.queue,
            "MESSAGING_SERVICE_URL": f"http://127.0.0.1:{sandbox_port}",
            "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "0",
            "CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY": "0",
            "LOG_LEVEL": "warning",
        },
        tmp_path / "service.log",
    )
    try:
        org = await make_org(store)
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            env = Env(
                store=store,
                settings=None,
                sandbox=None,
                supervisor=None,
                services=None,
                client=HttpClient(http),
                org=org,
            )
            health = await env.api("GET", "/health")
            assert health["checks"]["rabbitmq"] in ("ok", "disconnected")
            await _until(lambda: _rabbit_ok(env))

            # A: stop-on-reply, duplicate delivery, outbound echo.
            account = await org.bd_account()
            replying = await org.contacts(3)
            a = await env.campaign(accounts=[account], contacts=replying, steps=[{}, {"delayMinutes": 30}])
            # B: an after_reply step released by a reply that arrives over RabbitMQ.
            (waiting,) = await org.contacts(1)
            b = await env.campaign(
                accounts=[await org.bd_account()],
                contacts=[waiting],
                steps=[{}, {"triggerType": "after_reply"}],
            )
            # C: a larger run during which the broker drops both connections.
            c_accounts = [await org.bd_account(), await org.bd_account()]
            c = await env.campaign(
                accounts=c_accounts,
                contacts=await org.contacts(20),
                steps=[{}, {}],
                audience={"sendDelaySeconds": 0.1},
            )
            for cid in (a, b, c):
                await env.api("POST", f"/api/campaigns/{cid}/start")

            await _until(lambda: _sent_steps(store, a, 3))
            rows = {r["contact_id"]: r for r in await env.participants(a)}
            target = rows[replying[0]]
            echo = reply_event(
                org,
                contact_id=replying[1],
                account_id=account,
                channel_id=rows[replying[1]]["channel_id"],
                direction="outbound",
            )
            reply = reply_event(
                org, contact_id=replying[0], account_id=account, channel_id=target["channel_id"]
            )
            await mq.publish_raw(amqp.url, amqp.exchange, "message.received", echo)
            await mq.publish_raw(amqp.url, amqp.exchange, "message.received", reply)
            await mq.publish_raw(amqp.url, amqp.exchange, "message.received", reply)  # the same event again
            started = trio.current_time()
            await _until(lambda: _status_is(store, target["id"], "replied"), within=10)
            reply_latency = trio.current_time() - started
            print(f"reply over RabbitMQ handled {reply_latency * 1000:.0f} ms after publish")

            # Poison first, then a good message: the poison goes to the DLQ, the good one is handled.
            await mq.publish_raw(amqp.url, amqp.exchange, "message.received", b"{not json")
            (b_row,) = await env.participants(b)
            await _until(lambda: _waiting_reply(store, b_row["id"]))
            await mq.publish_raw(
                amqp.url,
                amqp.exchange,
                "message.received",
                reply_event(
                    org, contact_id=waiting, account_id=b_row["bd_account_id"], channel_id=b_row["channel_id"]
                ),
            )

            # Drop the broker connections while C is sending.
            await _until(lambda: _sent_steps(store, c, 10))
            pid = service.process.pid
            for role in ("consumer", "publisher"):
                await mq.close_connection_named(f"campaignsvc-{role}@{socket.gethostname()}:{pid}")

            for cid in (b, c):
                await env.wait_status(cid, "completed", within=60)
            after = {r["contact_id"]: r["status"] for r in await env.participants(a)}
            assert after == {replying[0]: "replied", replying[1]: "sent", replying[2]: "sent"}
            assert (
                await store.fetchval("SELECT count(*) FROM campaign_processed_events") == 3
            )  # echo, reply, B's reply

        ready, _ = await mq.queue_counts(amqp.url, f"{amqp.queue}.dlq")
        assert ready == 1
        dead = await mq.drain(amqp.url, f"{amqp.queue}.dlq")
        assert "x-dlq-reason" in dead[0].headers

        async def outbox_drained() -> bool:
            return not await store.fetchval("SELECT count(*) FROM campaign_outbox WHERE published_at IS NULL")

        await _until(outbox_drained, within=30)
        published = await mq.drain(amqp.url, capture)
        by_type = collections.Counter(m.routing_key for m in published)
        expected = await store.fetch(
            "SELECT event_type, count(*) AS n FROM campaign_outbox GROUP BY event_type"
        )
        assert dict(by_type) == {r["event_type"]: r["n"] for r in expected}, (
            "an outbox event was lost or doubled"
        )
        assert len({m.message_id for m in published}) == len(published)
        completed = collections.Counter(
            json.loads(m.body)["data"]["campaignId"]
            for m in published
            if m.routing_key == "campaign.completed"
        )
        assert completed == {b: 1, c: 1}
        sent_c = [
            m
            for m in published
            if m.routing_key == "campaign.message.sent" and json.loads(m.body)["data"]["campaignId"] == c
        ]
        assert len(sent_c) == 40
        assert reply_latency < 10  # the real bound is the helper's timeout; the figure is reported, not gated
    finally:
        stop_service(service)
        sandbox.terminate()
        sandbox.wait(10)
        await mq.delete_all(
            amqp.url, exchanges=[amqp.exchange], queues=[amqp.queue, f"{amqp.queue}.dlq", capture]
        )


async def _rabbit_ok(env: Env) -> bool:
    return (await env.api("GET", "/health", expect=None))["checks"]["rabbitmq"] == "ok"


async def _sent_steps(store, campaign_id: str, n: int) -> bool:
    count = await store.fetchval(
        "SELECT count(*) FROM campaign_sends WHERE campaign_id = $1 AND status = 'sent'",
        uuid.UUID(campaign_id),
    )
    return count >= n


async def _status_is(store, participant_id, status: str) -> bool:
    return (
        await store.fetchval("SELECT status FROM campaign_participants WHERE id = $1", participant_id)
        == status
    )


async def _waiting_reply(store, participant_id) -> bool:
    return (
        await store.fetchval("SELECT waiting_reason FROM campaign_participants WHERE id = $1", participant_id)
        == "reply"
    )
