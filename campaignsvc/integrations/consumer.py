"""The inbound event consumer: queue ``campaign-service`` → :class:`Handler`, acked after the handler's
commit (SPEC R-EVT-1).

Deliveries are handled one at a time, in queue order: the events of one conversation (an outbound
message seen, then the reply) keep their order, and the prefetch window hides the broker round trip.

Outcomes per delivery:

- not JSON or not a v1 envelope → the DLQ at once (header ``x-dlq-reason``), original acked;
- a type the handler does not know → acked, counted;
- the handler returned → acked;
- the handler raised → republished to the queue with ``x-retry-count`` + 1 and acked; after
  ``max_tries`` failed tries → the DLQ with the error in ``x-dlq-reason``;
- the handler raised :class:`DatabaseUnavailable` → consumption pauses and the same delivery is retried
  with backoff, without using up a try (an outage is not the event's fault);
- the channel died under a delivery → nothing more is done with it; the broker redelivers it and the
  handler's ``processed_events.claim`` makes the repeat harmless.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import trio
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueueIterator,
    AbstractRobustChannel,
    AbstractRobustQueue,
)
from aiormq.exceptions import ChannelInvalidStateError
from trio_asyncio import aio_as_trio

from campaignsvc.errors import BrokerError, BrokerUnavailable, DatabaseUnavailable, InvalidEvent
from campaignsvc.integrations import amqp_metrics as m
from campaignsvc.integrations.amqp_connection import (
    BrokerLink,
    State,
    Topology,
    declare_consumer,
    translated,
)
from campaignsvc.integrations.events import Event, Handler, parse_event
from campaignsvc.logs import get_logger

log = get_logger(__name__)

RETRY_COUNT_HEADER = "x-retry-count"
DLQ_REASON_HEADER = "x-dlq-reason"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"

# Measured on the 2-core reference machine, deliveries handled one at a time (events/s, median of 3;
# "2 ms RTT" through a TCP proxy that delays every segment by 1 ms each way):
#   prefetch            1     10     50    200
#   no-op, local      1159   1572   1801   1777
#   no-op, 2 ms RTT    302   1470   1655   1660
#   DB claim, local    382    353    434    451   (noisy: 2 cores shared with the broker and PostgreSQL)
#   DB claim, 2 ms RTT 186    437    423    447
# With a remote broker prefetch 1 pays a round trip per event; past 10-50 the trio-asyncio loop, not
# the network, is the limit. 50 is on the plateau everywhere; more only leaves more deliveries waiting
# behind a slow handler and redelivered together after a crash.
DEFAULT_PREFETCH = 50
_CLOSE_TIMEOUT_S = 5.0
_FORWARD_TIMEOUT_S = 15.0
_MAX_REASON_LENGTH = 1000


class _Outcome(enum.Enum):
    DONE = "done"
    FAILED = "failed"
    DELIVERY_LOST = "delivery_lost"


class EventConsumer:
    """Trio actor: consumes the service's queue and calls ``handler.handle`` for each valid event."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        handler: Handler,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        max_tries: int = 3,
        handler_timeout: float = 60.0,
        connection_name: str | None = None,
        reconnect_interval: float = 1.0,
    ) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self.topology = topology
        self.prefetch = prefetch
        self._handler = handler
        self._max_tries = max_tries
        self._handler_timeout = handler_timeout
        self.link = BrokerLink(
            url, role="consumer", connection_name=connection_name, reconnect_interval=reconnect_interval
        )
        self._channel: AbstractRobustChannel | None = None

    def state(self) -> State:
        return self.link.state()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, declare, then consume until cancelled; ``started`` once the queue is declared."""
        async with self.connected() as queue:
            task_status.started()
            await self.consume(queue)

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[AbstractRobustQueue]:
        """The connection (retried until it opens) and the declared queue; closed, shielded, on exit."""
        async with self.link.open() as connection:
            yield await self._declare(connection)

    async def consume(self, queue: AbstractRobustQueue) -> None:
        """Handle deliveries until cancelled; the broker consumer is cancelled on the way out."""
        log.info("events.consuming", queue=self.topology.queue, prefetch=self.prefetch)
        while True:
            try:
                await self._consume(queue)
            except BrokerError as exc:
                log.warning("events.consume_interrupted", error=str(exc))
            # The robust iterator gives up after a minute without the broker; start a new one.
            await trio.sleep(1.0)

    async def _declare(self, connection: Any) -> AbstractRobustQueue:
        delay = 0.5
        while True:
            try:
                with translated():
                    self._channel, queue = await aio_as_trio(declare_consumer)(
                        connection, self.topology, self.prefetch
                    )
                return queue
            except BrokerError as exc:
                level = log.warning if isinstance(exc, BrokerUnavailable) else log.error
                level("events.declare_failed", queue=self.topology.queue, error=str(exc))
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _consume(self, queue: AbstractRobustQueue) -> None:
        qiter = queue.iterator()
        try:
            with translated():
                await aio_as_trio(qiter.consume)()
            while True:
                # One bridge call per delivery, not ``aio_as_trio(qiter)`` iteration: trio-asyncio's
                # generator adapter reports a cancel as done while the asyncio side is still closing the
                # iterator, and an error from that close then reschedules a trio task that has moved on
                # (TrioInternalError). A plain call waits for the asyncio side to finish.
                with translated():
                    delivery = await aio_as_trio(_next_delivery)(qiter)
                if delivery is None:
                    return
                await self._process(delivery)
        finally:
            # Shielded: a cancel that lands while a delivery is being handled would otherwise cancel
            # basic.cancel too and leave a consumer on the broker (docs/architecture.md, the asyncio bridge).
            with trio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
                try:
                    await aio_as_trio(qiter.close)()
                except Exception as exc:
                    log.warning("events.consumer_close_failed", error=repr(exc))

    async def _process(self, delivery: AbstractIncomingMessage) -> None:
        if not _alive(delivery):
            return  # delivered on a channel that has since died; it comes back on the new one
        headers: dict[str, Any] = dict(delivery.headers or {})
        routing_key = str(headers.get(ORIGINAL_ROUTING_KEY_HEADER) or delivery.routing_key or "")
        try:
            event = parse_event(delivery.body, routing_key)
        except InvalidEvent as exc:
            log.warning(
                "events.invalid", routing_key=routing_key, message_id=delivery.message_id, reason=exc.reason
            )
            if await self._forward(
                delivery, self.topology.dead_letter_queue, headers, routing_key, exc.reason
            ):
                m.EVENTS_CONSUMED.labels(m.consumed_type_label(routing_key), "invalid").inc()
                m.EVENTS_DEAD_LETTERED.labels("malformed").inc()
            return
        label = m.consumed_type_label(event.type)
        if event.type not in self._handler.types:
            log.info("events.unknown_type", event_id=str(event.id), event_type=event.type)
            if await self._ack(delivery):
                m.EVENTS_CONSUMED.labels(label, "unknown").inc()
            return

        outcome, error = await self._call_handler(event, delivery)
        if outcome is _Outcome.DELIVERY_LOST:
            return
        if outcome is _Outcome.DONE:
            if await self._ack(delivery):
                m.EVENTS_CONSUMED.labels(label, "handled").inc()
            return

        tries = _retry_count(headers) + 1
        ids = {"event_id": str(event.id), "event_type": event.type, "try": tries}
        if tries >= self._max_tries:
            log.error("events.dead_lettered", **ids, error=error)
            if await self._forward(delivery, self.topology.dead_letter_queue, headers, routing_key, error):
                m.EVENTS_CONSUMED.labels(label, "dead_lettered").inc()
                m.EVENTS_DEAD_LETTERED.labels("handler_failed").inc()
        else:
            log.info("events.retry_scheduled", **ids, error=error)
            headers[RETRY_COUNT_HEADER] = tries
            if await self._forward(delivery, self.topology.queue, headers, routing_key, None):
                m.EVENTS_CONSUMED.labels(label, "retried").inc()

    async def _call_handler(self, event: Event, delivery: AbstractIncomingMessage) -> tuple[_Outcome, str]:
        delay = 0.5
        ids = {"event_id": str(event.id), "event_type": event.type}
        while True:
            try:
                with trio.move_on_after(self._handler_timeout) as deadline:
                    await self._handler.handle(event)
            except DatabaseUnavailable as exc:
                if not _alive(delivery):
                    return _Outcome.DELIVERY_LOST, ""
                log.warning("events.database_unavailable", **ids, error=str(exc), retry_in_s=delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            except Exception as exc:
                log.warning("events.handler_failed", **ids, exc_info=True)
                return _Outcome.FAILED, f"{type(exc).__name__}: {exc}"
            if deadline.cancelled_caught:
                log.warning("events.handler_timed_out", **ids, timeout_s=self._handler_timeout)
                return _Outcome.FAILED, f"handler timed out after {self._handler_timeout:g} s"
            return _Outcome.DONE, ""

    async def _ack(self, delivery: AbstractIncomingMessage) -> bool:
        try:
            with translated():
                await aio_as_trio(delivery.ack)()
            return True
        except BrokerError as exc:
            # The channel died; the broker redelivers the message and the claim makes it a no-op.
            log.info("events.ack_lost", message_id=delivery.message_id, error=str(exc))
            return False

    async def _forward(
        self,
        delivery: AbstractIncomingMessage,
        queue_name: str,
        headers: dict[str, Any],
        routing_key: str,
        reason: str | None,
    ) -> bool:
        """Publish a copy straight to ``queue_name`` (default exchange, so no other binding sees it),
        wait for the broker's confirm, then ack the original. True when both happened."""
        assert self._channel is not None
        headers = {**headers, ORIGINAL_ROUTING_KEY_HEADER: routing_key}
        if reason is not None:
            headers[DLQ_REASON_HEADER] = reason[:_MAX_REASON_LENGTH]
        try:
            with trio.fail_after(_FORWARD_TIMEOUT_S), translated():
                await aio_as_trio(_publish_then_ack)(self._channel, delivery, queue_name, headers)
            return True
        except (BrokerError, trio.TooSlowError) as exc:
            # Left unacked: it is redelivered when the channel closes, or nacked below.
            log.error(
                "events.forward_failed", queue=queue_name, message_id=delivery.message_id, error=repr(exc)
            )
            if _alive(delivery):
                await trio.sleep(1.0)
                with trio.move_on_after(_CLOSE_TIMEOUT_S):
                    try:
                        with translated():
                            await aio_as_trio(delivery.nack)(requeue=True)
                    except BrokerError:
                        pass
            return False


async def _next_delivery(qiter: AbstractQueueIterator) -> AbstractIncomingMessage | None:
    try:
        return await qiter.__anext__()
    except StopAsyncIteration:  # the robust iterator gave up waiting for the broker
        return None


async def _publish_then_ack(
    channel: AbstractRobustChannel,
    delivery: AbstractIncomingMessage,
    queue_name: str,
    headers: dict[str, Any],
) -> None:
    message = aio_pika.Message(
        body=delivery.body,
        headers=headers,
        content_type=delivery.content_type or "application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=delivery.message_id,
        correlation_id=delivery.correlation_id,
        timestamp=delivery.timestamp,
        type=delivery.type,
        app_id=delivery.app_id,
    )
    await channel.default_exchange.publish(message, routing_key=queue_name)
    await delivery.ack()


def _alive(delivery: AbstractIncomingMessage) -> bool:
    try:
        delivery.channel  # noqa: B018 - raises once the delivering channel is closed
    except ChannelInvalidStateError:
        return False
    return True


def _retry_count(headers: dict[str, Any]) -> int:
    try:
        return max(0, int(headers.get(RETRY_COUNT_HEADER) or 0))
    except (TypeError, ValueError):
        return 0
