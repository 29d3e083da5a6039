"""Helpers for tests against the real RabbitMQ: plain (non-robust) connections for publishing, reading
and counting (a robust channel's passive declare returns its cached queue with stale counts), a forced
close of one named connection, a proxy that cuts the broker off, and a recording handler."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence, Set
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import asyncpg
import attrs
import trio
from prometheus_client import REGISTRY
from trio_asyncio import aio_as_trio

from campaignsvc.integrations.amqp_connection import BrokerLink
from campaignsvc.integrations.events import CONSUMED_TYPES, Event
from campaignsvc.storage import processed_events
from campaignsvc.storage.store import Store
from tests import servers


@attrs.frozen
class Received:
    body: bytes
    routing_key: str | None
    message_id: str | None
    content_type: str | None
    delivery_mode: int | None
    headers: dict[str, Any]

    def json(self) -> Any:
        return json.loads(self.body)


def envelope(event_type: str = "message.received", *, event_id: uuid.UUID | None = None, **data: Any) -> dict:
    return {
        "id": str(event_id or uuid.uuid4()),
        "type": event_type,
        "timestamp": "2026-01-02T03:04:05.678Z",
        "organizationId": str(uuid.uuid4()),
        "data": data or {"messageId": str(uuid.uuid4()), "channel": "telegram", "content": "hi"},
    }


async def _with_channel(url: str, fn: Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]) -> Any:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        return await fn(channel)
    finally:
        await connection.close()


def _run(url: str, fn: Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]) -> Awaitable[Any]:
    return aio_as_trio(_with_channel)(url, fn)


async def publish_raw(
    url: str,
    exchange: str,
    routing_key: str,
    body: bytes | str | dict,
    *,
    headers: dict[str, Any] | None = None,
) -> None:
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()

    async def publish(channel: aio_pika.abc.AbstractChannel) -> None:
        target = await channel.get_exchange(exchange, ensure=False) if exchange else channel.default_exchange
        await target.publish(
            aio_pika.Message(body, headers=headers or {}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=routing_key,
        )

    await _run(url, publish)


async def publish_many(url: str, exchange: str, items: Sequence[tuple[str, bytes | str | dict]]) -> None:
    """Publish ``(routing_key, body)`` pairs in order on one connection."""

    async def publish(channel: aio_pika.abc.AbstractChannel) -> None:
        target = await channel.get_exchange(exchange, ensure=False)
        for routing_key, body in items:
            raw = json.dumps(body).encode() if isinstance(body, dict) else body
            raw = raw.encode() if isinstance(raw, str) else raw
            await target.publish(aio_pika.Message(raw), routing_key=routing_key)

    await _run(url, publish)


async def declare_exchange(url: str, exchange: str) -> None:
    async def declare(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)

    await _run(url, declare)


async def declare_capture_queue(url: str, exchange: str, queue: str, keys: Sequence[str] = ("#",)) -> None:
    """A durable queue bound to ``exchange`` that a test reads with :func:`drain`."""

    async def declare(channel: aio_pika.abc.AbstractChannel) -> None:
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        q = await channel.declare_queue(queue, durable=True)
        for key in keys:
            await q.bind(ex, key)

    await _run(url, declare)


async def queue_counts(url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) from a passive declare on a fresh plain connection."""

    async def count(channel: aio_pika.abc.AbstractChannel) -> tuple[int, int]:
        q = await channel.declare_queue(queue, passive=True)
        result = q.declaration_result
        return result.message_count, result.consumer_count

    return await _run(url, count)


async def drain(url: str, queue: str) -> list[Received]:
    """Take every ready message off ``queue`` (acked), in queue order."""

    async def take(channel: aio_pika.abc.AbstractChannel) -> list[Received]:
        q = await channel.declare_queue(queue, passive=True)
        out: list[Received] = []
        while (message := await q.get(fail=False, no_ack=True)) is not None:
            out.append(
                Received(
                    body=message.body,
                    routing_key=message.routing_key,
                    message_id=message.message_id,
                    content_type=message.content_type,
                    delivery_mode=int(message.delivery_mode) if message.delivery_mode else None,
                    headers=dict(message.headers or {}),
                )
            )
        return out

    return await _run(url, take)


async def delete_all(url: str, *, exchanges: Sequence[str] = (), queues: Sequence[str] = ()) -> None:
    async def delete(channel: aio_pika.abc.AbstractChannel) -> None:
        for name in queues:
            await channel.queue_delete(name, if_unused=False, if_empty=False)
        for name in exchanges:
            await channel.exchange_delete(name, if_unused=False)

    await _run(url, delete)


async def close_connection_named(name: str) -> None:
    """Have the broker close the client connection called ``name`` (CONNECTION_FORCED), as a broker
    restart or an operator would. ``rabbitmqctl`` needs the node's cookie, i.e. root here; the command is
    the session's broker's (tests/servers.py: a node the session started has its own)."""
    ctl = servers.rabbitmqctl()
    listing = await trio.run_process(
        [*ctl, "list_connections", "pid", "client_properties", "-q", "--no-table-headers"],
        capture_stdout=True,
    )
    pids = [
        line.split("\t", 1)[0]
        for line in listing.stdout.decode().splitlines()
        if f'{{"connection_name","{name}"}}' in line
    ]
    assert pids, f"no broker connection named {name!r}"
    for pid in pids:
        await trio.run_process(
            [*ctl, "close_connection", pid, "test: forced close"], stdout=subprocess.DEVNULL
        )


async def force_reconnect(link: BrokerLink, *, within: float = 15.0) -> None:
    """Close ``link``'s connection from the broker side and wait until the robust connection is back
    on a new transport."""
    assert link.connection is not None
    before = link.connection.transport
    await close_connection_named(link.connection_name)

    def reconnected() -> bool:
        conn = link.connection
        return conn is not None and conn.transport not in (None, before) and link.state() == "ok"

    await wait_until(reconnected, within=within, what=f"{link.role} to reconnect")


def settled_deliveries() -> float:
    """Deliveries the consumer has finished with (acked, forwarded or dead-lettered), from its metric:
    take a reading before, wait for the difference."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "events_consumed"
        for sample in metric.samples
        if sample.name == "events_consumed_total"
    )


async def wait_until(predicate: Callable[[], Any], *, within: float = 10.0, what: str = "condition") -> None:
    with trio.move_on_after(within) as scope:
        while True:
            result = predicate()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return
            await trio.sleep(0.02)
    if scope.cancelled_caught:
        raise AssertionError(f"timed out after {within} s waiting for {what}")


@asynccontextmanager
async def running(actor: Any) -> AsyncIterator[None]:
    """Run ``actor.run`` until the block exits, then cancel it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        yield
        nursery.cancel_scope.cancel()


class BrokerProxy:
    """A TCP relay in front of RabbitMQ that a test can cut and restore: an outage (or a partition) of
    the broker for the connections that go through it, and nobody else on the shared broker."""

    def __init__(self, target: tuple[str, int] | None = None) -> None:
        self._target = target or servers.amqp_address()  # the session's broker
        self._up = True
        self._links: set[trio.CancelScope] = set()
        self.port = 0

    def url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started()
            await trio.serve_listeners(self._serve, listeners, handler_nursery=nursery)

    def cut(self) -> None:
        """Drop every connection through the proxy and refuse new ones until :meth:`restore`."""
        self._up = False
        for scope in list(self._links):
            scope.cancel()

    def restore(self) -> None:
        self._up = True

    async def _serve(self, client: trio.SocketStream) -> None:
        async with client:
            if not self._up:
                return
            with trio.CancelScope() as scope:
                self._links.add(scope)
                try:
                    server = await trio.open_tcp_stream(*self._target)
                    async with server, trio.open_nursery() as nursery:
                        nursery.start_soon(_pump, client, server, nursery.cancel_scope)
                        nursery.start_soon(_pump, server, client, nursery.cancel_scope)
                finally:
                    self._links.discard(scope)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, pair: trio.CancelScope) -> None:
    try:
        async for chunk in source:
            await sink.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    pair.cancel()  # one side went away: so does the other


class RecordingHandler:
    """Claims each event in a transaction (the contract of :class:`Handler`) and records what it did.

    ``fail`` maps an event id to how many times ``handle`` raises before it succeeds; ``delay`` makes
    every call slow, to build a backlog."""

    def __init__(
        self,
        store: Store,
        *,
        types: Set[str] = CONSUMED_TYPES,
        fail: dict[uuid.UUID, int] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.types = frozenset(types)
        self._store = store
        self._fail = dict(fail or {})
        self._delay = delay
        self.handled: list[Event] = []
        self.duplicates: list[Event] = []
        self.calls: list[uuid.UUID] = []

    @property
    def handled_ids(self) -> list[uuid.UUID]:
        return [event.id for event in self.handled]

    async def handle(self, event: Event) -> None:
        self.calls.append(event.id)
        if self._delay:
            await trio.sleep(self._delay)
        if self._fail.get(event.id, 0) > 0:
            self._fail[event.id] -= 1
            raise RuntimeError(f"handler broke on {event.id}")
        if await self._store.run(_claim, event):
            self.handled.append(event)
        else:
            self.duplicates.append(event)


async def _claim(conn: asyncpg.Connection, event: Event) -> bool:
    return await processed_events.claim(conn, event.id, event.type)
