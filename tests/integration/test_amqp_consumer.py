"""The event consumer against the real RabbitMQ and PostgreSQL: ack after the handler's commit,
idempotency by event id, dead-lettering, retries, cancellation without a leaked consumer, reconnects."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import trio
from trio_asyncio import aio_as_trio

from campaignsvc.errors import DatabaseUnavailable, InvalidEvent
from campaignsvc.integrations.amqp_connection import Topology
from campaignsvc.integrations.consumer import (
    DLQ_REASON_HEADER,
    RETRY_COUNT_HEADER,
    EventConsumer,
    _next_delivery,
)
from campaignsvc.integrations.events import parse_event
from campaignsvc.storage.store import Store
from tests.conftest import AmqpNames
from tests.integration.amqp_helpers import (
    BrokerProxy,
    RecordingHandler,
    delete_all,
    drain,
    envelope,
    force_reconnect,
    publish_many,
    publish_raw,
    queue_counts,
    running,
    settled_deliveries,
    wait_until,
)

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def broker(aio_loop: object, amqp: AmqpNames) -> AsyncIterator[AmqpNames]:
    """The fixture's unique names, deleted from the broker afterwards."""
    try:
        yield amqp
    finally:
        with trio.move_on_after(10, shield=True):
            await delete_all(amqp.url, exchanges=[amqp.exchange], queues=[amqp.queue, f"{amqp.queue}.dlq"])


def make_consumer(broker: AmqpNames, handler: RecordingHandler, **kwargs) -> EventConsumer:
    kwargs.setdefault("reconnect_interval", 0.2)
    return EventConsumer(
        broker.url,
        Topology(exchange=broker.exchange, queue=broker.queue),
        handler,
        connection_name=f"csvc-test-consumer-{uuid.uuid4().hex[:8]}",
        **kwargs,
    )


async def processed_count(store: Store) -> int:
    return await store.fetchval("SELECT count(*) FROM campaign_processed_events")


async def test_consumer__good_event_is_handled_then_acked(store, broker):
    handler = RecordingHandler(store)
    event = envelope("message.received", content="hello")
    before = settled_deliveries()
    async with running(make_consumer(broker, handler)):
        await publish_raw(broker.url, broker.exchange, "message.received", event)
        await wait_until(lambda: settled_deliveries() - before == 1, what="the event to be handled and acked")
    # Stopped: an unacked delivery would be back in the queue now.
    assert await queue_counts(broker.url, broker.queue) == (0, 0)
    [handled] = handler.handled
    assert str(handled.id) == event["id"]
    assert handled.type == "message.received"
    assert str(handled.organization_id) == event["organizationId"]
    assert handled.data["content"] == "hello"
    assert handled.timestamp == event["timestamp"]
    assert handled.raw == event
    assert await processed_count(store) == 1


async def test_consumer__same_event_id_twice_is_handled_once(store, broker):
    handler = RecordingHandler(store)
    event = envelope("lead.created", contactId=str(uuid.uuid4()))
    before = settled_deliveries()
    async with running(make_consumer(broker, handler)):
        await publish_many(broker.url, broker.exchange, [("lead.created", event), ("lead.created", event)])
        await wait_until(lambda: settled_deliveries() - before == 2, what="both deliveries")
    assert handler.handled_ids == [uuid.UUID(event["id"])]
    assert [e.id for e in handler.duplicates] == [uuid.UUID(event["id"])]
    assert await processed_count(store) == 1
    assert await queue_counts(broker.url, broker.queue) == (0, 0)


async def test_consumer__malformed_json_and_bad_envelope_go_to_dlq_and_the_next_event_is_handled(
    store, broker
):
    handler = RecordingHandler(store)
    good = envelope("bd_account.flood.cleared", bdAccountId=str(uuid.uuid4()))
    no_org = {**envelope("lead.created"), "organizationId": "not-a-uuid"}
    wrong_type = envelope("something.else")
    before = settled_deliveries()
    async with running(make_consumer(broker, handler)):
        await publish_many(
            broker.url,
            broker.exchange,
            [
                ("message.received", b"{not json"),
                ("lead.created", no_org),
                ("lead.stage.changed", wrong_type),
                ("message.received", json.dumps([1, 2])),
                ("bd_account.flood.cleared", good),
            ],
        )
        await wait_until(lambda: settled_deliveries() - before == 5, what="all five deliveries")
    assert handler.handled_ids == [uuid.UUID(good["id"])]
    dead = await drain(broker.url, f"{broker.queue}.dlq")
    reasons = [m.headers[DLQ_REASON_HEADER] for m in dead]
    assert len(reasons) == 4
    assert reasons[0].startswith("malformed JSON")
    assert reasons[1].startswith("organizationId:")
    assert reasons[2].startswith("type: 'something.else' does not match routing key 'lead.stage.changed'")
    assert reasons[3].startswith("envelope must be a JSON object")
    assert dead[0].body == b"{not json"  # the original bytes, to inspect and replay
    assert dead[1].headers["x-original-routing-key"] == "lead.created"
    assert await queue_counts(broker.url, broker.queue) == (0, 0)


async def test_consumer__handler_failing_three_times_dead_letters_with_the_error(store, broker):
    event = envelope("message.received")
    handler = RecordingHandler(store, fail={uuid.UUID(event["id"]): 3})
    before = settled_deliveries()
    async with running(make_consumer(broker, handler)):
        await publish_raw(broker.url, broker.exchange, "message.received", event)
        await wait_until(lambda: settled_deliveries() - before == 3, what="two retries and the dead letter")
    [dead] = await drain(broker.url, f"{broker.queue}.dlq")
    assert len(handler.calls) == 3
    assert handler.handled == []
    assert dead.json() == event
    assert dead.headers[DLQ_REASON_HEADER] == f"RuntimeError: handler broke on {event['id']}"
    assert dead.headers[RETRY_COUNT_HEADER] == 2
    assert dead.headers["x-original-routing-key"] == "message.received"
    assert await processed_count(store) == 0
    assert await queue_counts(broker.url, broker.queue) == (0, 0)


async def test_consumer__handler_failing_once_is_retried_and_handled(store, broker):
    event = envelope("lead.stage.changed", toStageId=str(uuid.uuid4()))
    handler = RecordingHandler(store, fail={uuid.UUID(event["id"]): 1})
    before = settled_deliveries()
    async with running(make_consumer(broker, handler)):
        await publish_raw(broker.url, broker.exchange, "lead.stage.changed", event)
        await wait_until(lambda: settled_deliveries() - before == 2, what="the retry and the success")
    assert handler.calls == [uuid.UUID(event["id"])] * 2
    assert handler.handled_ids == [uuid.UUID(event["id"])]
    assert await queue_counts(broker.url, f"{broker.queue}.dlq") == (0, 0)
    assert await queue_counts(broker.url, broker.queue) == (0, 0)


async def test_consumer__handler_running_past_its_timeout_counts_as_a_failed_try(store, broker):
    event = envelope("message.received")
    handler = RecordingHandler(store, delay=5)
    before = settled_deliveries()
    async with running(make_consumer(broker, handler, handler_timeout=0.1)):
        await publish_raw(broker.url, broker.exchange, "message.received", event)
        await wait_until(lambda: settled_deliveries() - before == 3, what="three timed-out tries")
    [dead] = await drain(broker.url, f"{broker.queue}.dlq")
    assert dead.headers[DLQ_REASON_HEADER] == "handler timed out after 0.1 s"
    assert handler.handled == []


async def test_consumer__unknown_type_is_acked_and_not_handled(store, broker):
    handler = RecordingHandler(store, types={"message.received"})
    ignored = envelope("bd_account.spam.cleared", bdAccountId=str(uuid.uuid4()))
    wanted = envelope("message.received")
    before = settled_deliveries()
    async with running(make_consumer(broker, handler)):
        await publish_many(
            broker.url, broker.exchange, [("bd_account.spam.cleared", ignored), ("message.received", wanted)]
        )
        await wait_until(lambda: settled_deliveries() - before == 2, what="both deliveries")
    assert handler.calls == [uuid.UUID(wanted["id"])]
    assert await queue_counts(broker.url, broker.queue) == (0, 0)
    assert await queue_counts(broker.url, f"{broker.queue}.dlq") == (0, 0)


async def test_consumer__cancelled_with_a_backlog_leaves_no_consumer_on_the_broker(store, broker):
    handler = RecordingHandler(store, delay=0.05)
    consumer = make_consumer(broker, handler, prefetch=10)
    events = [envelope("message.received") for _ in range(40)]
    async with consumer.connected() as queue:
        await publish_many(broker.url, broker.exchange, [("message.received", e) for e in events])
        with trio.move_on_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consumer.consume, queue)
                await wait_until(lambda: len(handler.handled) >= 3, what="a few events")
                # Lands while a delivery is being handled and more sit prefetched: only a shielded close
                # still sends basic.cancel.
                nursery.cancel_scope.cancel()
        # The connection is still open: only a basic.cancel can have removed the consumer.
        assert consumer.state() == "ok"
        _, consumers = await queue_counts(broker.url, broker.queue)
        assert consumers == 0
    # Whatever was prefetched goes back to the queue, and nothing is lost. The event handled just as the
    # cancel landed may not have been acked yet: it comes back too, and the processed-events claim makes
    # its redelivery a no-op. The broker requeues after answering the close, so the count may lag.
    unhandled = len(events) - len(handler.handled)
    ready = -1
    with trio.move_on_after(5):
        while (ready := (await queue_counts(broker.url, broker.queue))[0]) < unhandled:
            await trio.sleep(0.05)
    assert unhandled <= ready <= unhandled + 1


async def test_consumer__resumes_after_the_broker_closes_its_connection(store, broker):
    handler = RecordingHandler(store)
    consumer = make_consumer(broker, handler, prefetch=5)
    first = [envelope("message.received") for _ in range(20)]
    second = [envelope("lead.created") for _ in range(20)]
    async with running(consumer):
        await publish_many(broker.url, broker.exchange, [("message.received", e) for e in first])
        await force_reconnect(consumer.link)
        await publish_many(broker.url, broker.exchange, [("lead.created", e) for e in second])
        expected = {uuid.UUID(e["id"]) for e in first + second}
        await wait_until(lambda: set(handler.handled_ids) == expected, within=15, what="every event")
    # Each event's effect happened once, whatever the broker redelivered; anything left in the queue is
    # a redelivery of an event already handled (its ack raced the stop).
    assert len(handler.handled) == len(expected)
    assert await processed_count(store) == len(expected)
    leftover = await drain(broker.url, broker.queue)
    assert {uuid.UUID(m.json()["id"]) for m in leftover} <= expected


async def test_consumer__database_outage_pauses_without_using_up_tries(store, broker):
    event = envelope("message.received")

    class FlakyDatabase(RecordingHandler):
        outages = 2

        async def handle(self, ev):
            if self.outages:
                self.outages -= 1
                self.calls.append(ev.id)
                raise DatabaseUnavailable("connection refused")
            await super().handle(ev)

    handler = FlakyDatabase(store)
    before = settled_deliveries()
    async with running(make_consumer(broker, handler)):
        await publish_raw(broker.url, broker.exchange, "message.received", event)
        await wait_until(lambda: settled_deliveries() - before == 1, what="the event after the outage")
    assert len(handler.calls) == 3
    assert await queue_counts(broker.url, f"{broker.queue}.dlq") == (0, 0)


@pytest.mark.parametrize(
    ("body", "routing_key", "reason"),
    [
        (b"\xff\xfe", "message.received", "malformed JSON"),
        (b"", "message.received", "malformed JSON"),
        (b'"text"', "message.received", "envelope must be a JSON object"),
        ({"type": 5}, "message.received", "type: must be a non-empty string"),
        ({"type": ""}, "message.received", "type: must be a non-empty string"),
        ({"id": "nope"}, None, "id: 'nope' is not a UUID"),
        ({"organizationId": None}, None, "organizationId: must be a UUID string"),
        ({"data": []}, None, "data: must be a JSON object"),
        ({"timestamp": 1700000000}, None, "timestamp: must be an ISO string"),
        ({"type": "campaign.created"}, "campaign-service", "type: 'campaign.created' does not match"),
    ],
)
def test_parse_event__rejects_with_a_reason(body, routing_key, reason):
    if isinstance(body, dict):
        base = envelope("message.received")
        body = json.dumps({**base, **body}).encode()
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body, routing_key or "message.received")
    assert caught.value.reason.startswith(reason)


def test_parse_event__accepts_a_known_type_under_another_routing_key():
    # A retry is sent straight to the queue, so its routing key is the queue's name.
    raw = envelope("lead.created")
    event = parse_event(json.dumps(raw), "campaign-service")
    assert (event.type, str(event.id), event.raw) == ("lead.created", raw["id"], raw)


async def test_consumer__resumes_after_a_broker_outage(store, broker, nursery):
    proxy = BrokerProxy()
    await nursery.start(proxy.run)
    handler = RecordingHandler(store)
    consumer = EventConsumer(
        proxy.url(),
        Topology(exchange=broker.exchange, queue=broker.queue),
        handler,
        reconnect_interval=0.2,
    )
    before = [envelope("message.received") for _ in range(10)]
    during = [envelope("message.received") for _ in range(10)]
    async with running(consumer):
        await publish_many(broker.url, broker.exchange, [("message.received", e) for e in before])
        await wait_until(lambda: len(handler.handled) == 10, what="the events before the outage")
        proxy.cut()
        await wait_until(lambda: consumer.state() == "disconnected", what="the outage to be noticed")
        await publish_many(broker.url, broker.exchange, [("message.received", e) for e in during])
        await trio.sleep(0.5)
        assert len(handler.handled) == 10
        proxy.restore()
        await wait_until(
            lambda: len(handler.handled) == 20, within=15, what="the events sent during the outage"
        )
        assert consumer.state() == "ok"
    assert set(handler.handled_ids) == {uuid.UUID(e["id"]) for e in before + during}


class _IteratorFailingToClose:
    """Like aio-pika's QueueIterator when the channel dies under it: a cancelled ``__anext__`` closes
    the iterator, and the close fails."""

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)
            raise RuntimeError("close failed") from None


async def test_bridge__a_cancelled_read_reports_its_close_error_in_place(aio_loop):
    # The consumer reads with one bridge call per delivery: the asyncio side's late error comes out of
    # that call, and no later, unrelated trio wait receives it.
    with pytest.raises(RuntimeError, match="close failed"), trio.move_on_after(0.05):
        await aio_as_trio(_next_delivery)(_IteratorFailingToClose())
    await trio.sleep(0.05)
