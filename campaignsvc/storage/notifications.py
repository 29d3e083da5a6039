"""PostgreSQL notifications into trio (LISTEN on a dedicated connection: the pool's connections are shared).

A notification arrives when the transaction that sent it commits. The connection is re-opened after it
is lost; on every (re)connection the callback runs once, so what was committed while nobody listened is
caught up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import trio
from trio_asyncio import aio_as_trio

from campaignsvc.errors import StorageError
from campaignsvc.logs import get_logger
from campaignsvc.storage.errors import translated

log = get_logger(__name__)

# Sent by the trigger on campaign_outbox (migration 0008) when rows are inserted.
OUTBOX = "campaign_outbox"
# Control messages between instances (integrations/control.py).
CONTROL = "campaignsvc_control"


async def notify(conn: asyncpg.Connection, channel: str, payload: str) -> None:
    """Send a notification (delivered to listeners when the surrounding transaction, if any, commits)."""
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)


async def listen(
    dsn: str,
    channel: str,
    on_notify: Callable[[], None],
    *,
    on_payload: Callable[[str], None] | None = None,
    retry_s: float = 1.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``on_notify`` (sync, never blocking) for every notification on ``channel``, until cancelled —
    or, given ``on_payload``, that with each notification's payload and ``on_notify`` only on every
    (re)connection. Ready once the first connection listens, or failed to."""
    ready: trio.TaskStatus[None] | None = task_status
    while True:
        lost = trio.Event()
        conn: asyncpg.Connection | None = None
        try:
            with translated():
                conn = await aio_as_trio(asyncpg.connect)(
                    dsn, server_settings={"application_name": "campaignsvc-listen"}
                )

                def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                    if on_payload is not None:
                        on_payload(payload)
                    else:
                        on_notify()

                await aio_as_trio(conn.add_listener)(channel, notified)
            conn.add_termination_listener(lambda _, lost=lost: lost.set())
            on_notify()
            if ready is not None:
                ready.started()
                ready = None
            await lost.wait()
            log.warning("listen.lost", channel=channel)
        except (StorageError, OSError) as exc:
            log.warning("listen.unavailable", channel=channel, error=str(exc), retry_in_s=retry_s)
            if ready is not None:
                ready.started()
                ready = None
        finally:
            if conn is not None:
                with trio.move_on_after(5, shield=True):
                    await aio_as_trio(conn.close)()
        await trio.sleep(retry_s)
