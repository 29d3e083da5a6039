"""Serving the sandbox inside the caller's trio tree.

::

    run_sandbox (caller's nursery; inside trio_asyncio.open_loop() when RabbitMQ is used)
      └─ nursery "sandbox" — one-cancels-all
         ├─ hypercorn.trio.serve(create_sandbox_app(state))
         ├─ sends in progress (engine)         } outlive their request,
         └─ scheduled replies/echoes (replies)  } never the sandbox

Stops when ``shutdown`` is set (hypercorn drains requests for ``grace_s``, then the rest is cancelled)
or when the caller cancels it; the broker connection is closed last, shielded.
"""

from __future__ import annotations

from functools import partial

import httpx
import trio
import trio_asyncio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from campaignsvc.errors import ConfigError
from campaignsvc.logs import get_logger
from campaignsvc.sandbox.app import create_sandbox_app
from campaignsvc.sandbox.config import SandboxConfig
from campaignsvc.sandbox.publisher import EventPublisher
from campaignsvc.sandbox.replies import EventDispatcher
from campaignsvc.sandbox.state import Runtime, SandboxState

log = get_logger(__name__)


async def _serve(
    app: object,
    host: str,
    port: int,
    shutdown: trio.Event,
    grace_s: float,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = grace_s
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 75
    try:
        await hypercorn_serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)  # type: ignore[arg-type]
    finally:
        done.set()


async def run_sandbox(
    config: SandboxConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 3003,
    state: SandboxState | None = None,
    shutdown: trio.Event | None = None,
    grace_s: float = 2.0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the sandbox until ``shutdown`` is set or the caller cancels; reports the base URL.

    Pass ``state`` to keep a handle on what the sandbox records (its config is set to ``config``); port 0
    binds an ephemeral port. RabbitMQ delivery needs the caller's ``trio_asyncio.open_loop()``.
    """
    if config.rabbitmq_url is not None and trio_asyncio.current_loop.get() is None:
        raise ConfigError(
            "rabbitmq_url", "RabbitMQ delivery needs trio_asyncio.open_loop() around the sandbox"
        )
    if state is None:
        state = SandboxState(config)
    else:
        state.config = config
    shutdown = trio.Event() if shutdown is None else shutdown
    publisher = EventPublisher()
    try:
        async with (
            httpx.AsyncClient(timeout=config.delivery_timeout_s) as http,
            trio.open_nursery() as nursery,
        ):
            dispatcher = EventDispatcher(state, nursery, http, publisher)
            state.runtime = Runtime(nursery=nursery, after_delivery=dispatcher.after_delivery)
            http_done = trio.Event()
            app = create_sandbox_app(state)
            binds = await nursery.start(partial(_serve, app, host, port, shutdown, grace_s, http_done))
            url = binds[0]
            log.info("sandbox.listening", url=url, seed=config.seed)
            task_status.started(url)
            await shutdown.wait()
            log.info("sandbox.stopping")
            with trio.move_on_after(grace_s + 1.0):
                await http_done.wait()
            nursery.cancel_scope.cancel()
    finally:
        state.runtime = None
        await publisher.aclose()
    log.info("sandbox.stopped")
