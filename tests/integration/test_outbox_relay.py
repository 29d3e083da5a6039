"""The transactional outbox and its relay against the real PostgreSQL and RabbitMQ: only committed rows
leave, in seq order, with the event id as message id; nothing is lost when the broker drops the
connection; the events service wires consumer and relay (or neither, without RABBITMQ_URL)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aio_pika
import pytest
import trio
from prometheus_client import REGISTRY

from campaignsvc.config import Settings
from campaignsvc.integrations.amqp import EventsService
from campaignsvc.integrations.amqp_connection import Topology
from campaignsvc.integrations.relay import OutboxRelay
from campaignsvc.storage import outbox, processed_events
from campaignsvc.storage.store import Store
from tests.conftest import AmqpNames
from tests.integration.amqp_helpers import (
    BrokerProxy,
    RecordingHandler,
    declare_capture_queue,
    delete_all,
    drain,
    envelope,
    force_reconnect,
    publish_raw,
    queue_counts,
    running,
    wait_until,
)

pytestmark = pytest.mark.rabbitmq

ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
async def broker(aio_loop: object, amqp: AmqpNames) -> AsyncIterator[AmqpNames]:
    """The exchange with the fixture's queue bound to every key, to read what the relay published."""
    await declare_capture_queue(amqp.url, amqp.exchange, amqp.queue)
    try:
        yield amqp
    finally:
        with trio.move_on_after(10, shield=True):
            await delete_all(
                amqp.url,
                exchanges=[amqp.exchange],
                queues=[amqp.queue, f"{amqp.queue}.dlq", f"{amqp.queue}-capture"],
            )


def make_relay(store: Store, broker: AmqpNames, **kwargs) -> OutboxRelay:
    kwargs.setdefault("reconnect_interval", 0.2)
    return OutboxRelay(
        store,
        broker.url,
        Topology(exchange=broker.exchange, queue=broker.queue),
        connection_name=f"csvc-test-relay-{uuid.uuid4().hex[:8]}",
        **kwargs,
    )


async def enqueue(store: Store, count: int, event_type: str = "campaign.started") -> list[uuid.UUID]:
    """``count`` events written in one committed transaction."""
    org = uuid.uuid4()

    async def write(conn) -> list[uuid.UUID]:
        return [
            await outbox.enqueue(
                conn,
                event_type=event_type,
                organization_id=org,
                data={"campaignId": str(uuid.uuid4()), "n": i},
            )
            for i in range(count)
        ]

    return await store.run(write)


async def backlog(store: Store) -> int:
    return await store.run(outbox.outbox_backlog, transaction=False)


async def ids_in_seq_order(store: Store) -> list[uuid.UUID]:
    return [row["id"] for row in await store.fetch("SELECT id FROM campaign_outbox ORDER BY seq")]


def first_occurrences(message_ids: list[str | None]) -> list[uuid.UUID]:
    seen: dict[uuid.UUID, None] = {}
    for message_id in message_ids:
        assert message_id is not None
        seen.setdefault(uuid.UUID(message_id), None)
    return list(seen)


async def test_outbox__enqueue_writes_the_v1_envelope(store):
    org, user = uuid.uuid4(), uuid.uuid4()

    async def write(conn):
        full = await outbox.enqueue(
            conn,
            event_type="campaign.created",
            organization_id=org,
            data={"campaignId": "c1"},
            user_id=user,
            correlation_id="req-7",
        )
        bare = await outbox.enqueue(conn, event_type="campaign.paused", organization_id=None, data={})
        return full, bare

    full_id, bare_id = await store.run(write)
    rows = {r["id"]: r for r in await store.fetch("SELECT * FROM campaign_outbox")}
    full = rows[full_id]["envelope"]
    assert full == {
        "id": str(full_id),
        "type": "campaign.created",
        "timestamp": full["timestamp"],
        "organizationId": str(org),
        "userId": str(user),
        "correlationId": "req-7",
        "data": {"campaignId": "c1"},
    }
    assert ISO_MS_Z.match(full["timestamp"])
    assert rows[full_id]["organization_id"] == org
    assert rows[full_id]["event_type"] == "campaign.created"
    bare = rows[bare_id]["envelope"]
    assert set(bare) == {"id", "type", "timestamp", "organizationId", "data"}
    assert bare["organizationId"] is None
    assert await backlog(store) == 2


async def test_processed_events__claim_once_and_prune(store):
    event_id = uuid.uuid4()
    assert await store.run(processed_events.claim, event_id, "message.received") is True
    assert await store.run(processed_events.claim, event_id, "message.received") is False
    assert await store.run(processed_events.prune, timedelta(days=1)) == 0
    await store.execute("UPDATE campaign_processed_events SET processed_at = now() - interval '2 days'")
    assert await store.run(processed_events.prune, timedelta(days=1)) == 1


async def test_relay__rows_of_a_rolled_back_transaction_are_never_published(store, broker):
    async def write_then_fail(conn):
        await outbox.enqueue(conn, event_type="campaign.started", organization_id=uuid.uuid4(), data={})
        raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await store.run(write_then_fail)
    [committed] = await enqueue(store, 1)
    async with running(make_relay(store, broker)):
        await wait_until(_zero(backlog, store), what="the outbox to drain")
    published = await drain(broker.url, broker.queue)
    assert [m.message_id for m in published] == [str(committed)]
    assert await store.fetchval("SELECT count(*) FROM campaign_outbox") == 1


async def test_relay__publishes_committed_rows_in_seq_order_with_the_event_id(store, broker):
    for event_type in ("campaign.created", "campaign.started", "campaign.message.sent"):
        await enqueue(store, 70, event_type)
    async with running(make_relay(store, broker, batch_size=50, max_in_flight=20)):
        await wait_until(_zero(backlog, store), what="the outbox to drain")
    published = await drain(broker.url, broker.queue)
    rows = {r["id"]: r for r in await store.fetch("SELECT * FROM campaign_outbox")}
    assert [uuid.UUID(m.message_id) for m in published] == await ids_in_seq_order(store)
    for message in published:
        row = rows[uuid.UUID(message.message_id)]
        assert message.routing_key == row["event_type"]
        assert message.content_type == "application/json"
        assert message.delivery_mode == 2
        assert message.json() == row["envelope"]
        assert row["published_at"] is not None


async def test_relay__wake_publishes_before_the_next_poll(store, broker):
    relay = make_relay(store, broker, poll_interval=60)
    async with running(relay):
        await trio.sleep(0.2)  # the first (empty) drain is done; the relay now waits up to 60 s
        [event_id] = await enqueue(store, 1)
        relay.wake()
        await wait_until(_zero(backlog, store), within=5, what="the woken relay")
    [message] = await drain(broker.url, broker.queue)
    assert message.message_id == str(event_id)


async def test_relay__unroutable_event_is_marked_published_and_does_not_block(store, broker):
    # An exchange where only campaign.started is bound: campaign.message.failed comes back NO_ROUTE.
    bare = AmqpNames(url=broker.url, exchange=f"{broker.exchange}-bare", queue=f"{broker.queue}-capture")
    await declare_capture_queue(bare.url, bare.exchange, bare.queue, keys=("campaign.started",))
    before = sample("outbox_unroutable_total", type="campaign.message.failed")
    try:
        [lost] = await enqueue(store, 1, "campaign.message.failed")
        [kept] = await enqueue(store, 1, "campaign.started")
        async with running(make_relay(store, bare)):
            await wait_until(_zero(backlog, store), what="the outbox to drain")
            # Counted once the batch's result is back on the trio side, just after its commit.
            await wait_until(
                lambda: sample("outbox_unroutable_total", type="campaign.message.failed") == before + 1,
                what="the unroutable count",
            )
        assert [m.message_id for m in await drain(bare.url, bare.queue)] == [str(kept)]
        assert await store.fetchval(
            "SELECT published_at IS NOT NULL FROM campaign_outbox WHERE id = $1", lost
        )
    finally:
        with trio.move_on_after(10, shield=True):
            await delete_all(bare.url, exchanges=[bare.exchange])


async def test_relay__broker_closing_the_connection_loses_nothing_and_keeps_order(store, broker):
    relay = make_relay(store, broker, batch_size=20, max_in_flight=10)
    written = trio.Event()

    async def writer() -> None:
        for _ in range(30):
            await enqueue(store, 10)
            relay.wake()
            await trio.sleep(0.03)
        written.set()

    async with running(relay), trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await wait_until(
            lambda: store.fetchval("SELECT count(*) > 60 FROM campaign_outbox"), what="some rows"
        )
        await force_reconnect(relay.link)
        await written.wait()
        await wait_until(_zero(backlog, store), within=20, what="the outbox to drain after the reconnect")
    published = await drain(broker.url, broker.queue)
    expected = await ids_in_seq_order(store)
    assert len(expected) == 300
    # At least once: a publish in flight at the close may come twice, but every event arrives and the
    # first arrival of each is in seq order.
    assert first_occurrences([m.message_id for m in published]) == expected


async def test_relay__two_relays_on_one_database_keep_the_order(store, broker):
    await enqueue(store, 200)
    async with (
        running(make_relay(store, broker, batch_size=25)),
        running(make_relay(store, broker, batch_size=25)),
    ):
        await wait_until(_zero(backlog, store), what="the outbox to drain")
    published = await drain(broker.url, broker.queue)
    assert [uuid.UUID(m.message_id) for m in published] == await ids_in_seq_order(store)


async def test_events_service__consumes_and_relays_with_rabbitmq(store, amqp, aio_loop):
    capture = f"{amqp.queue}-capture"
    settings = Settings.from_env(
        {}, rabbitmq_url=amqp.url, rabbitmq_exchange=amqp.exchange, rabbitmq_queue=amqp.queue
    )
    handler = RecordingHandler(store)
    events = EventsService(settings, store, handler, poll_interval=60)
    try:
        async with running(events):
            await wait_until(lambda: events.state() == "ok", what="both connections")

            async def consuming() -> bool:
                try:
                    return (await queue_counts(amqp.url, amqp.queue))[1] == 1
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    return False  # not declared yet

            # Connected is not yet bound: wait for the consumer before publishing to the exchange.
            await wait_until(consuming, what="the consumer")
            await declare_capture_queue(amqp.url, amqp.exchange, capture, keys=("campaign.#",))
            inbound = envelope("message.received")
            await publish_raw(amqp.url, amqp.exchange, "message.received", inbound)
            [outbound] = await enqueue(store, 1, "campaign.completed")
            events.wake_relay()
            await wait_until(lambda: handler.handled, what="the inbound event")
            await wait_until(_zero(backlog, store), what="the outbound event")
        assert handler.handled_ids == [uuid.UUID(inbound["id"])]
        assert [m.message_id for m in await drain(amqp.url, capture)] == [str(outbound)]
    finally:
        with trio.move_on_after(10, shield=True):
            await delete_all(
                amqp.url, exchanges=[amqp.exchange], queues=[amqp.queue, f"{amqp.queue}.dlq", capture]
            )


async def test_events_service__without_rabbitmq_url_events_stay_in_the_outbox(store):
    events = EventsService(Settings.from_env({}), store, RecordingHandler(store), backlog_interval=0.05)
    assert events.state() == "not_configured"
    assert events.relay is None and events.consumer is None
    async with running(events):
        await enqueue(store, 3)
        events.wake_relay()  # a no-op, not an error
        await wait_until(lambda: sample("outbox_backlog") == 3, what="the backlog gauge")
    assert await backlog(store) == 3


def _zero(count, store):
    async def check() -> bool:
        return await count(store) == 0

    return check


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_relay__catches_up_in_order_after_a_broker_outage(store, broker, nursery):
    proxy = BrokerProxy()
    await nursery.start(proxy.run)
    relay = OutboxRelay(
        store, proxy.url(), Topology(exchange=broker.exchange, queue=broker.queue), reconnect_interval=0.2
    )
    async with running(relay):
        await enqueue(store, 20)
        relay.wake()
        await wait_until(_zero(backlog, store), what="the events before the outage")
        proxy.cut()
        await wait_until(lambda: relay.state() == "disconnected", what="the outage to be noticed")
        for _ in range(5):
            await enqueue(store, 20)
            relay.wake()
        await trio.sleep(0.5)
        assert await backlog(store) == 100  # kept, not dropped, while the broker is away
        await wait_until(lambda: sample("outbox_backlog") == 100, within=5, what="the backlog gauge")
        proxy.restore()
        await wait_until(_zero(backlog, store), within=15, what="the relay to catch up")
    published = await drain(broker.url, broker.queue)
    assert first_occurrences([m.message_id for m in published]) == await ids_in_seq_order(store)


async def test_events_service__starts_while_the_broker_is_down_and_relays_once_it_is_up(
    store, broker, nursery
):
    proxy = BrokerProxy()
    await nursery.start(proxy.run)
    proxy.cut()
    settings = Settings.from_env(
        {}, rabbitmq_url=proxy.url(), rabbitmq_exchange=broker.exchange, rabbitmq_queue=f"{broker.queue}-svc"
    )
    events = EventsService(settings, store, RecordingHandler(store), poll_interval=0.1)
    try:
        async with running(events):  # started at once: the broker is optional
            [event_id] = await enqueue(store, 1)
            events.wake_relay()
            await trio.sleep(1.0)  # a few refused attempts
            assert events.state() == "disconnected"
            assert await backlog(store) == 1
            proxy.restore()
            await wait_until(lambda: events.state() == "ok", within=15, what="the first connection")
            await wait_until(_zero(backlog, store), what="the relay")
        assert [m.message_id for m in await drain(broker.url, broker.queue)] == [str(event_id)]
    finally:
        with trio.move_on_after(10, shield=True):
            await delete_all(broker.url, queues=[f"{broker.queue}-svc", f"{broker.queue}-svc.dlq"])
