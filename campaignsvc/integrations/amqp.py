"""Events over RabbitMQ, as the service tree starts them (SPEC R-EVT).

::

    EventsService.run — nursery "events", one-cancels-all (a crash here is a bug, not an outage)
      ├─ EventConsumer   queue campaign-service → Handler, own connection   (only with RABBITMQ_URL)
      ├─ OutboxRelay     campaign_outbox → exchange events, own connection   (only with RABBITMQ_URL)
      └─ housekeeping    prunes processed events and published outbox rows; backlog gauge

Without ``RABBITMQ_URL`` only housekeeping runs: events stay in the outbox and ``state()`` says
``not_configured`` (SPEC R-EVT-3). A broker outage never stops the service: the actors reconnect forever,
and ``state()`` says ``disconnected`` meanwhile.
"""

from __future__ import annotations

from datetime import timedelta

import trio

from campaignsvc.config import Settings
from campaignsvc.errors import StorageError
from campaignsvc.integrations import amqp_metrics as m
from campaignsvc.integrations.amqp_connection import BrokerLink, State, Topology
from campaignsvc.integrations.consumer import DEFAULT_PREFETCH, EventConsumer
from campaignsvc.integrations.events import Event, Handler
from campaignsvc.integrations.relay import DEFAULT_MAX_IN_FLIGHT, OutboxRelay
from campaignsvc.logs import get_logger
from campaignsvc.storage import outbox, processed_events
from campaignsvc.storage.store import Store

__all__ = [
    "BrokerLink",
    "Event",
    "EventConsumer",
    "EventsService",
    "Handler",
    "OutboxRelay",
    "State",
    "Topology",
]

log = get_logger(__name__)


class EventsService:
    """The broker side of the service: build it once, ``await nursery.start(events.run)``, give
    ``events.state`` to /health and call ``events.wake_relay()`` after committing outbox rows."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        handler: Handler,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        poll_interval: float = 1.0,
        processed_retention: timedelta = timedelta(days=14),
        published_retention: timedelta = timedelta(days=7),
        housekeeping_interval: float = 3600.0,
        backlog_interval: float = 15.0,
    ) -> None:
        self.topology = Topology(exchange=settings.rabbitmq_exchange, queue=settings.rabbitmq_queue)
        self._store = store
        self._processed_retention = processed_retention
        self._published_retention = published_retention
        self._housekeeping_interval = housekeeping_interval
        self._backlog_interval = backlog_interval
        self.consumer: EventConsumer | None = None
        self.relay: OutboxRelay | None = None
        if settings.rabbitmq_url:
            self.consumer = EventConsumer(settings.rabbitmq_url, self.topology, handler, prefetch=prefetch)
            self.relay = OutboxRelay(
                store,
                settings.rabbitmq_url,
                self.topology,
                max_in_flight=max_in_flight,
                poll_interval=poll_interval,
            )

    @property
    def configured(self) -> bool:
        return self.relay is not None

    def state(self) -> State:
        """For /health: ``not_configured`` without RABBITMQ_URL, ``ok`` when both connections are up."""
        if self.consumer is None or self.relay is None:
            return "not_configured"
        if self.consumer.state() == "ok" and self.relay.state() == "ok":
            return "ok"
        return "disconnected"

    def wake_relay(self) -> None:
        """Call after a commit that enqueued events; a no-op without RabbitMQ."""
        if self.relay is not None:
            self.relay.wake()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the actors and report started at once: a broker that is down must not hold up the
        service's start (the actors connect in the background)."""
        async with trio.open_nursery() as nursery:
            if self.consumer is not None:
                nursery.start_soon(self.consumer.run)
            if self.relay is not None:
                nursery.start_soon(self.relay.run)
            else:
                log.info("events.not_configured", detail="RABBITMQ_URL unset; events stay in the outbox")
            nursery.start_soon(self._housekeeping)
            task_status.started()

    async def _housekeeping(self) -> None:
        next_prune = trio.current_time()
        while True:
            try:
                if self.relay is None:  # otherwise the relay keeps the gauge fresh
                    m.OUTBOX_BACKLOG.set(await self._store.run(outbox.outbox_backlog, transaction=False))
                if trio.current_time() >= next_prune:
                    next_prune = trio.current_time() + self._housekeeping_interval
                    await self._prune()
            except StorageError as exc:
                log.warning("events.housekeeping_failed", error=str(exc))
            await trio.sleep(self._backlog_interval)

    async def _prune(self) -> None:
        events = await self._store.run(processed_events.prune, self._processed_retention)
        published = await self._store.run(outbox.prune_published, self._published_retention)
        if events or published:
            log.info("events.pruned", processed_events=events, outbox_rows=published)
