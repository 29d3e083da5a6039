"""Outbox rows wake the relay when they commit, whoever wrote them (migration 0008's trigger and
storage/notifications.listen), and the listener comes back after losing its connection."""

from __future__ import annotations

import functools

import trio

from campaignsvc.storage import notifications, outbox
from campaignsvc.storage.store import Store


class Heard:
    def __init__(self) -> None:
        self.count = 0
        self._changed = trio.Event()

    def __call__(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = trio.Event()

    async def more_than(self, n: int, within_s: float = 10.0) -> None:
        with trio.fail_after(within_s):
            while self.count <= n:
                await self._changed.wait()


async def _write_event(conn) -> None:
    await outbox.enqueue(conn, event_type="campaign.test", organization_id=None, data={})


async def _write_event_slowly(conn) -> None:
    await _write_event(conn)
    await conn.execute("SELECT pg_sleep(0.5)")  # the row is written, the transaction still open


async def test_an_outbox_row__notifies_on_commit_not_before(nursery, store: Store, database_url: str):
    heard = Heard()
    await nursery.start(notifications.listen, database_url, notifications.OUTBOX, heard)
    assert heard.count == 1  # the catch-up call on connecting
    nursery.start_soon(store.run, _write_event_slowly)
    await trio.sleep(0.3)
    assert heard.count == 1  # written, not committed: nothing yet
    await heard.more_than(1)
    assert (
        await store.fetchval("SELECT count(*) FROM campaign_outbox WHERE event_type = 'campaign.test'") == 1
    )


async def test_the_listener__reconnects_and_catches_up_after_losing_its_connection(
    nursery, store: Store, database_url: str
):
    heard = Heard()
    await nursery.start(
        functools.partial(notifications.listen, retry_s=0.1), database_url, notifications.OUTBOX, heard
    )
    killed = await store.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'campaignsvc-listen' AND datname = current_database()"
    )
    assert killed == 1
    await heard.more_than(1)  # reconnected: the catch-up call
    after_reconnect = heard.count
    await store.run(_write_event)
    await heard.more_than(after_reconnect)  # and it hears new rows again
