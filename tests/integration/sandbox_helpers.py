"""Helpers for the sandbox tests: start it in-process, build send bodies, receive its events over HTTP or
from a temporary RabbitMQ queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import aio_pika
import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import jsonify, request
from quart_trio import QuartTrio
from trio_asyncio import aio_as_trio

from campaignsvc.sandbox import SandboxConfig, SandboxState, run_sandbox

ORG = "0b7e3c58-6a1f-4c2e-9d1a-3f5b2c7e9a10"
USER = "5f0c2d3e-1b4a-4e6f-8a9b-7c1d2e3f4a5b"
ACCOUNT = "a1b2c3d4-0000-4000-8000-000000000001"
OTHER_ACCOUNT = "a1b2c3d4-0000-4000-8000-000000000002"
CONTACT = "c0ffee00-0000-4000-8000-000000000001"
HEADERS = {"X-Organization-Id": ORG, "X-User-Id": USER, "X-Correlation-Id": "corr-1"}


@attrs.frozen
class Sandbox:
    url: str
    state: SandboxState

    @property
    def send_url(self) -> str:
        return f"{self.url}/api/messaging/send"


async def start_sandbox(nursery: trio.Nursery, config: SandboxConfig | None = None, **fields: Any) -> Sandbox:
    """Serve a sandbox on an ephemeral port inside ``nursery``; ``fields`` build the config."""
    config = config if config is not None else SandboxConfig(**fields)
    state = SandboxState(config)
    url = await nursery.start(partial(run_sandbox, config, host="127.0.0.1", port=0, state=state))
    return Sandbox(url=url, state=state)


def body(n: int | str = 1, **overrides: Any) -> dict[str, Any]:
    """A valid campaign send to recipient ``n``."""
    value: dict[str, Any] = {
        "contactId": CONTACT,
        "channel": "telegram",
        "channelId": f"70000{n}",
        "content": f"Hello {n}",
        "bdAccountId": ACCOUNT,
        "source": "campaign",
        "idempotencyKey": f"key-{n}",
    }
    value.update(overrides)
    return {k: v for k, v in value.items() if v is not ...}


async def wait_until(state: SandboxState, predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    with trio.fail_after(within_s):
        await state.wait_for(predicate)


async def serve_app(nursery: trio.Nursery, app: QuartTrio) -> str:
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    binds = await nursery.start(partial(hypercorn_serve, app, config))  # type: ignore[arg-type]
    return binds[0]


@attrs.define
class EventSink:
    """A stand-in for the campaign service's ``POST /api/campaigns/events``."""

    received: list[tuple[dict[str, str], dict[str, Any]]] = attrs.field(factory=list)
    # Statuses to answer first, in order; 202 afterwards.
    statuses: list[int] = attrs.field(factory=list)
    attempts: int = 0
    changed: trio.Event = attrs.field(factory=trio.Event)

    def app(self) -> QuartTrio:
        app = QuartTrio("event-sink")

        @app.post("/api/campaigns/events")
        async def events() -> Any:
            self.attempts += 1
            envelope = await request.get_json()
            try:
                if self.statuses:
                    return jsonify({"error": "not now"}), self.statuses.pop(0)
                self.received.append((dict(request.headers), envelope))
                return jsonify({"ok": True}), 202
            finally:
                self.changed.set()
                self.changed = trio.Event()

        return app

    async def wait_for(self, count: int, within_s: float = 5.0) -> None:
        with trio.fail_after(within_s):
            while len(self.received) < count:
                await self.changed.wait()


async def serve_event_sink(nursery: trio.Nursery, sink: EventSink) -> str:
    return await serve_app(nursery, sink.app())


@attrs.frozen
class AmqpTap:
    connection: Any
    queue: Any
    exchange: str


async def _open_tap_aio(url: str, exchange: str, routing_key: str) -> AmqpTap:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(declared, routing_key)
    except BaseException:
        await connection.close()
        raise
    return AmqpTap(connection=connection, queue=queue, exchange=exchange)


async def _take_aio(tap: AmqpTap) -> list[Any]:
    taken = []
    while (message := await tap.queue.get(no_ack=True, fail=False)) is not None:
        taken.append(message)
    return taken


async def _close_tap_aio(tap: AmqpTap) -> None:
    try:
        channel = await tap.connection.channel()
        await channel.exchange_delete(tap.exchange)
    finally:
        await tap.connection.close()


async def open_tap(url: str, exchange: str, routing_key: str = "message.received") -> AmqpTap:
    """A temporary queue bound to ``exchange`` (declared as the sandbox declares it)."""
    return await aio_as_trio(_open_tap_aio)(url, exchange, routing_key)


async def take(tap: AmqpTap) -> list[Any]:
    return await aio_as_trio(_take_aio)(tap)


async def wait_for_messages(tap: AmqpTap, count: int, within_s: float = 10.0) -> list[Any]:
    taken: list[Any] = []
    with trio.fail_after(within_s):
        while len(taken) < count:
            taken += await take(tap)
            if len(taken) < count:
                await trio.sleep(0.02)
    return taken


async def close_tap(tap: AmqpTap) -> None:
    with trio.move_on_after(5, shield=True):
        await aio_as_trio(_close_tap_aio)(tap)


async def _delete_exchange_aio(url: str, exchange: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


async def delete_exchange(url: str, exchange: str) -> None:
    with trio.move_on_after(5, shield=True):
        await aio_as_trio(_delete_exchange_aio)(url, exchange)


def envelope_of(message: Any) -> dict[str, Any]:
    return json.loads(message.body)
