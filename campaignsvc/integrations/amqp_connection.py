"""RabbitMQ connections, reached from trio through trio-asyncio, and the one boundary where aio-pika and
socket errors become :mod:`campaignsvc.errors` exceptions.

The consumer and the relay each hold their own connection (RabbitMQ throttles a publishing connection
under memory pressure; acks on a separate connection keep flowing). A connection is an aio-pika robust
connection: once opened it reconnects by itself, restores its channels, exchanges, queues, bindings,
QoS and consumers. Opening it the first time is retried here, forever, with exponential backoff, so the
service starts (and serves HTTP) while RabbitMQ is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import aio_pika
import aiormq
import attrs
import pamqp.exceptions
import trio
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection, AbstractRobustQueue
from aio_pika.robust_connection import RobustConnection
from trio_asyncio import aio_as_trio
from yarl import URL

from campaignsvc.errors import BrokerError, BrokerUnavailable
from campaignsvc.integrations import amqp_metrics as m
from campaignsvc.integrations.events import CONSUMED_TYPES
from campaignsvc.logs import get_logger

log = get_logger(__name__)

State = Literal["ok", "disconnected", "not_configured"]

_CLOSE_TIMEOUT_S = 5.0
_CONNECT_TIMEOUT_S = 10.0

# Broker answers that mean "fix the configuration", not "wait": still retried (RabbitMQ is optional and a
# permission can be granted at run time), but logged as errors.
_PERMANENT = (
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.ChannelNotFoundEntity,
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ChannelLockedResource,
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.IncompatibleProtocolError,
)


# What a lost or refused connection looks like. aiormq ends a handshake cut short with
# StopAsyncIteration (it must never escape into an async generator), and a closed channel is a
# RuntimeError subclass.
_UNAVAILABLE = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    pamqp.exceptions.PAMQPException,
    ConnectionError,
    OSError,
    EOFError,
    StopAsyncIteration,
)


def translate(exc: BaseException) -> BrokerError | None:
    """The project exception for a driver exception, or None when it is not a broker error."""
    if isinstance(exc, BrokerError):
        return None
    if isinstance(exc, _PERMANENT):
        return BrokerError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return BrokerUnavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return BrokerUnavailable("timed out talking to RabbitMQ")
    return None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise driver errors as project exceptions, keeping the original as ``__cause__``."""
    try:
        yield
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc


@attrs.frozen
class Topology:
    """Names on the broker: the topic exchange, the service's queue, what it is bound to, its DLQ."""

    exchange: str = "events"
    queue: str = "campaign-service"
    bindings: tuple[str, ...] = tuple(sorted(CONSUMED_TYPES))

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dlq"


class _BackoffRobustConnection(RobustConnection):
    """A robust connection whose pause between reconnect attempts grows with the outage: the base
    interval for the first seconds, then a quarter of the time since the connection was lost, capped.
    A short blip reconnects at once; a long outage is not hammered."""

    max_reconnect_interval: float = 30.0

    def __init__(self, url: URL, **kwargs: Any) -> None:
        self._lost_at: float | None = None
        super().__init__(url, **kwargs)

    @property
    def reconnect_interval(self) -> float:
        if self._lost_at is None:
            return self._base_interval
        outage = self.loop.time() - self._lost_at
        return min(self.max_reconnect_interval, max(self._base_interval, outage / 4))

    @reconnect_interval.setter
    def reconnect_interval(self, value: float) -> None:
        self._base_interval = float(value)

    async def _on_connection_close(self, closing: asyncio.Future) -> None:
        if self._lost_at is None:
            self._lost_at = self.loop.time()
        await super()._on_connection_close(closing)

    async def _on_connected(self) -> None:
        await super()._on_connected()
        self._lost_at = None


async def _connect(url: str, name: str, reconnect_interval: float) -> AbstractRobustConnection:
    connection = _BackoffRobustConnection(
        URL(url),
        client_properties={"connection_name": name},
        reconnect_interval=reconnect_interval,
    )
    try:
        await connection.connect(timeout=_CONNECT_TIMEOUT_S)
    except BaseException as exc:
        # A failed first attempt leaves the object half made; close it so nothing keeps retrying.
        await asyncio.shield(connection.close())
        if isinstance(exc, RuntimeError) and not isinstance(exc, _UNAVAILABLE):
            # aio-pika counts any RuntimeError of a connection attempt as a connection failure.
            raise ConnectionError(f"RuntimeError: {exc}") from exc
        raise
    return connection


class BrokerLink:
    """One robust connection for one role ("consumer", "publisher"), with its state for /health."""

    def __init__(
        self,
        url: str,
        *,
        role: str,
        connection_name: str | None = None,
        reconnect_interval: float = 1.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self.url = url
        self.role = role
        # Named so an operator can tell the connections apart in the management UI / rabbitmqctl.
        self.connection_name = connection_name or f"campaignsvc-{role}@{socket.gethostname()}:{os.getpid()}"
        self._reconnect_interval = reconnect_interval
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self.connection: AbstractRobustConnection | None = None

    def state(self) -> State:
        conn = self.connection
        if conn is not None and conn.connected.is_set() and not conn.is_closed:
            return "ok"
        return "disconnected"

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[AbstractRobustConnection]:
        """Connect (retrying forever with backoff); close the connection, shielded, on exit."""
        delay = self._initial_backoff
        while True:
            try:
                with translated():
                    connection = await aio_as_trio(_connect)(
                        self.url, self.connection_name, self._reconnect_interval
                    )
                break
            except BrokerError as exc:
                level = log.warning if isinstance(exc, BrokerUnavailable) else log.error
                level("amqp.connect_failed", role=self.role, error=str(exc), retry_in_s=round(delay, 2))
                await trio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._max_backoff)
        self.connection = connection
        m.AMQP_CONNECTED.labels(self.role).set_function(lambda: 1 if self.state() == "ok" else 0)
        log.info("amqp.connected", role=self.role, connection=self.connection_name)
        try:
            yield connection
        finally:
            m.AMQP_CONNECTED.labels(self.role).set_function(lambda: 0)
            self.connection = None
            with trio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
                await aio_as_trio(connection.close)()
            log.info("amqp.closed", role=self.role)


async def declare_consumer(
    connection: AbstractRobustConnection, topology: Topology, prefetch: int
) -> tuple[AbstractRobustChannel, AbstractRobustQueue]:
    """The consumer's channel (confirms on, for retries and dead letters) and its bound queue; the DLQ
    is declared too so dead-lettering never hits NO_ROUTE."""
    channel = connection.channel(publisher_confirms=True, on_return_raises=True)
    await channel.initialize()
    await channel.set_qos(prefetch_count=prefetch)
    exchange = await channel.declare_exchange(topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(topology.queue, durable=True)
    for routing_key in topology.bindings:
        await queue.bind(exchange, routing_key)
    await channel.declare_queue(topology.dead_letter_queue, durable=True)
    return channel, queue


async def declare_publisher(
    connection: AbstractRobustConnection, topology: Topology
) -> tuple[AbstractRobustChannel, aio_pika.abc.AbstractExchange]:
    """The relay's channel: publisher confirms, and a NO_ROUTE return raises instead of passing."""
    channel = connection.channel(publisher_confirms=True, on_return_raises=True)
    await channel.initialize()
    exchange = await channel.declare_exchange(topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    return channel, exchange
