"""The process tree: one trio run, one asyncio loop bridged inside it, one infrastructure nursery.

::

    trio.run(main) → trio_asyncio.open_loop() → database (embedded or DATABASE_URL)
      └─ nursery "infrastructure" — one-cancels-all
         ├─ Store        asyncpg pool
         ├─ Supervisor   actor nursery, isolate-and-restart
         └─ HTTP         hypercorn.trio.serve(quart-trio app)

Shutdown (SIGTERM/SIGINT): stop accepting HTTP and drain requests, stop the supervisor (in-flight sends
finish, bounded by SHUTDOWN_GRACE_SECONDS), then cancel what is left and close the pool.
"""

from __future__ import annotations

import signal
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from campaignsvc import heap
from campaignsvc.config import Settings
from campaignsvc.integrations.amqp import EventsService
from campaignsvc.integrations.control import ControlRelay
from campaignsvc.integrations.pipeline import PipelineClient
from campaignsvc.logs import get_logger
from campaignsvc.runtime import build
from campaignsvc.storage import migrate, notifications
from campaignsvc.storage.store import Store

log = get_logger(__name__)


async def migrate_database(dsn: str, settings: Settings) -> list[str]:
    applied = await migrate.apply(dsn, migrate.discover(crm_schema=settings.crm_schema))
    log.info("migrate.done", applied=applied, crm_schema=settings.crm_schema)
    return applied


async def _serve_http(
    app: object,
    settings: Settings,
    shutdown: trio.Event,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = HypercornConfig()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.graceful_timeout = settings.shutdown_grace_s
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 75
    try:
        await hypercorn_serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)  # type: ignore[arg-type]
    finally:
        done.set()


async def run_service(
    settings: Settings,
    dsn: str,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the service until ``shutdown`` is set; reports the bound URLs through ``task_status``."""
    async with Store.open(dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max) as store:
        pipeline = PipelineClient(
            settings.pipeline_service_url, internal_auth_secret=settings.internal_auth_secret
        )
        runtime = build(settings, store, pipeline=pipeline)
        events = EventsService(settings, store, runtime.inbound)
        runtime.services.amqp_state = events.state
        events_scope = trio.CancelScope()

        async def run_events(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with events_scope:
                await events.run(task_status=task_status)

        http_done = trio.Event()
        async with trio.open_nursery() as infrastructure:
            await runtime.start(infrastructure)
            await infrastructure.start(run_events)
            # Outbox rows wake the relay when they commit, whoever wrote them (migration 0008).
            await infrastructure.start(notifications.listen, dsn, notifications.OUTBOX, events.wake_relay)
            # Control messages to and from the other instances on this database.
            relay = ControlRelay(store, dsn, runtime.bus, runtime.supervisor.leases.boot_id)
            await infrastructure.start(relay.run)
            binds = await infrastructure.start(_serve_http, runtime.app(), settings, shutdown, http_done)
            log.info("service.listening", urls=binds)
            task_status.started(binds)
            with heap.frozen_survivors():
                infrastructure.start_soon(heap.thaw_periodically)
                await shutdown.wait()
            log.info("service.stopping")
            with trio.move_on_after(settings.shutdown_grace_s):
                await http_done.wait()
            # Stop consuming first: a handler cut short rolls back and the broker redelivers the event.
            events_scope.cancel()
            await runtime.supervisor.stop(settings.shutdown_grace_s)
            events.wake_relay()
            infrastructure.cancel_scope.cancel()
    log.info("service.stopped")


async def watch_signals(shutdown: trio.Event, abort: trio.CancelScope) -> None:
    """First SIGTERM/SIGINT: graceful shutdown. A second one: stop waiting and cancel everything."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if shutdown.is_set():
                log.warning("service.forced_stop", signal=signal.Signals(signum).name)
                abort.cancel()
                return
            log.info("service.signal", signal=signal.Signals(signum).name)
            shutdown.set()


async def serve_until_signalled(settings: Settings, dsn: str, shutdown: trio.Event | None = None) -> None:
    shutdown = trio.Event() if shutdown is None else shutdown
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(watch_signals, shutdown, nursery.cancel_scope))
        await run_service(settings, dsn, shutdown)
        nursery.cancel_scope.cancel()
