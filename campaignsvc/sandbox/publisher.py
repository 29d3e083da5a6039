"""Events to RabbitMQ through aio-pika, on the trio-asyncio loop the caller opened.

Following docs/architecture.md's bridge rules: each operation is one asyncio function crossed once with
``aio_as_trio`` (connect+declare, publish, close); the connection is closed from trio only inside a
shielded ``move_on_after``. The channel uses publisher confirms and ``on_return_raises``, so a publish
that the broker did not take (nack, or no queue bound for the routing key) raises instead of passing
silently. aio-pika's and aiormq's errors are translated here, once, into :class:`EventDeliveryFailed`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aio_pika
import trio
import trio_asyncio
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from trio_asyncio import aio_as_trio

from campaignsvc.errors import CampaignsvcError
from campaignsvc.http.jsonenc import dumps
from campaignsvc.logs import get_logger

log = get_logger(__name__)

_CLOSE_TIMEOUT_S = 5.0


class EventDeliveryFailed(CampaignsvcError):
    """An event could not be handed to its target (broker or HTTP endpoint); ``retryable`` says whether
    trying again later may succeed."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


async def _open_aio(url: str, exchange_name: str) -> tuple[AbstractRobustConnection, AbstractExchange]:
    connection = await aio_pika.connect_robust(url, timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    except BaseException:
        await connection.close()
        raise
    return connection, exchange


async def _publish_aio(exchange: AbstractExchange, body: bytes, routing_key: str, message_id: str) -> None:
    message = aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        type=routing_key,
        timestamp=dt.datetime.now(dt.UTC),
    )
    await exchange.publish(message, routing_key=routing_key)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class EventPublisher:
    """One broker connection, opened on first use, reopened after a failure or when the target changes."""

    def __init__(self) -> None:
        self._lock = trio.Lock()
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._target: tuple[str, str] | None = None

    @property
    def connected(self) -> bool:
        return self._exchange is not None

    async def publish(self, url: str, exchange_name: str, envelope: dict[str, Any]) -> None:
        """Publish ``envelope`` (persistent, routing key = its type, message id = its id) and wait for the
        broker's confirm."""
        exchange = await self._exchange_for(url, exchange_name)
        try:
            await aio_as_trio(_publish_aio)(
                exchange, dumps(envelope).encode(), envelope["type"], envelope["id"]
            )
        except aio_pika.exceptions.DeliveryError as exc:
            # The connection is fine; the broker refused or could not route this one message.
            raise EventDeliveryFailed(_describe(exc)) from exc
        except Exception as exc:
            await self._drop(exchange)
            raise EventDeliveryFailed(_describe(exc)) from exc

    async def _exchange_for(self, url: str, exchange_name: str) -> AbstractExchange:
        async with self._lock:
            if self._exchange is not None and self._target == (url, exchange_name):
                return self._exchange
            await self._close()
            if trio_asyncio.current_loop.get() is None:
                raise EventDeliveryFailed(
                    "RabbitMQ delivery needs an asyncio loop: run the sandbox inside trio_asyncio.open_loop()",
                    retryable=False,
                )
            try:
                self._connection, self._exchange = await aio_as_trio(_open_aio)(url, exchange_name)
            except Exception as exc:
                raise EventDeliveryFailed(_describe(exc)) from exc
            self._target = (url, exchange_name)
            log.info("sandbox.amqp_connected", exchange=exchange_name)
            return self._exchange

    async def _drop(self, failed: AbstractExchange) -> None:
        async with self._lock:
            if self._exchange is failed:
                await self._close()

    async def _close(self) -> None:
        connection, self._connection, self._exchange, self._target = self._connection, None, None, None
        if connection is None:
            return
        with trio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
            try:
                await aio_as_trio(connection.close)()
            except Exception as exc:
                log.warning("sandbox.amqp_close_failed", error=_describe(exc))

    async def aclose(self) -> None:
        """Close the connection; safe to call from a ``finally`` of a cancelled scope."""
        with trio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
            async with self._lock:
                await self._close()
