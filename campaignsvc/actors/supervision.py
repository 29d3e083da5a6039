"""Isolate and restart: how every long-lived actor (campaign actor, account limiter) runs.

An actor that raises is logged with its identity, counted (``campaign_actor_restarts_total``) and run
again after a backoff; it never cancels another actor. The backoff doubles per crash up to a minute,
starts over once a run lasted :data:`HEALTHY_RUN_S`, and never exceeds :data:`OUTAGE_BACKOFF_S` when the
database went away (nobody's bug, and everyone's at once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from campaignsvc import metrics
from campaignsvc.errors import DatabaseUnavailable
from campaignsvc.logs import get_logger

log = get_logger(__name__)

MAX_BACKOFF_S = 60.0
# A database outage is nobody's bug: an actor it stopped comes back this soon, however often it happened.
OUTAGE_BACKOFF_S = 2.0
# An actor that ran this long before crashing starts its backoff from the beginning again.
HEALTHY_RUN_S = 30.0

# One run of an actor: ``run(task_status=…)``, calling ``task_status.started()`` once it is ready.
Run = Callable[..., Awaitable[None]]


def restart_delay(failures: int, exc: BaseException) -> float:
    """Backoff before restart ``failures`` of an actor. Every database restart crashed each busy limiter
    once or twice, and a count that never reset left limiters asleep for 30-60 s after a third outage."""
    delay = min(MAX_BACKOFF_S, 0.5 * 2.0 ** min(failures, 8))
    return min(delay, OUTAGE_BACKOFF_S) if isinstance(exc, DatabaseUnavailable) else delay


def _cause(exc: BaseException) -> BaseException:
    """The error itself, out of the one-error groups trio's nurseries wrap it in."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def supervise(
    kind: str,
    identity: Mapping[str, str],
    run: Run,
    *,
    crashed: Callable[[BaseException], Any] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the actor until a run returns, restarting it when it raises. ``crashed`` (sync) runs after a
    crash, before the backoff. Readiness is real: the caller's ``nursery.start`` returns once the first
    run says it is ready — or has ended or crashed (the caller never waits for a restart)."""
    ready: trio.TaskStatus[None] | None = task_status
    failures = 0
    while True:
        began = trio.current_time()
        try:
            async with trio.open_nursery() as inner:
                await inner.start(run)  # raises if the run ends or crashes before it is ready
                if ready is not None:
                    ready.started()
                    ready = None
            return
        except Exception as group:
            exc = _cause(group)
            failures = 1 if trio.current_time() - began > HEALTHY_RUN_S else failures + 1
            metrics.ACTOR_RESTARTS.labels(kind).inc()
            delay = restart_delay(failures, exc)
            log.exception(f"{kind}.crashed", **identity, restarts=failures, retry_in_s=delay, error=str(exc))
            if crashed is not None:
                crashed(exc)
            if ready is not None:
                ready.started()
                ready = None
            await trio.sleep(delay)
