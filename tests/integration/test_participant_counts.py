"""The counters of migrations/0010 (what GET /stats reads: participants per campaign and status, sent
ledger rows per campaign) always equal a count of the rows: after every kind of write, after random
sequences of them, under concurrent transactions, through the real dispatcher; and writers of one campaign
never deadlock on them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import uuid
from typing import Any

import asyncpg
import pytest
import trio
from trio_asyncio import aio_as_trio

from campaignsvc.http.jsonenc import dumps
from campaignsvc.http.models.reporting import stats_body
from campaignsvc.storage import migrate
from campaignsvc.storage import reporting as reporting_db
from campaignsvc.storage.store import Store
from tests.factories import Org, make_org
from tests.integration.dispatch_helpers import reply_event, start_env

STATUSES = ("pending", "sent", "completed", "replied", "failed", "stopped", "skipped")
SEND_STATUSES = ("sending", "sent", "sent", "failed", "deferred", "in_doubt", "skipped")
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

RECOUNT = """
SELECT campaign_id, status, count(*) AS total, count(first_sent_at) AS sent, count(read_at) AS read
FROM campaign_participants GROUP BY campaign_id, status
UNION ALL
SELECT campaign_id, '(ledger)', count(*), 0, 0 FROM campaign_sends
WHERE status = 'sent' AND campaign_id IS NOT NULL GROUP BY campaign_id
"""
COUNTERS = """
SELECT campaign_id, status, total, sent, read FROM campaign_participant_counts
UNION ALL
SELECT campaign_id, '(ledger)', sent, 0, 0 FROM campaign_send_counts
"""
# Both in one statement, so in one snapshot, whatever commits meanwhile.
BOTH = f"""
SELECT (SELECT array_agg(row(x.*)) FROM ({COUNTERS}) x) AS counters,
       (SELECT array_agg(row(x.*)) FROM ({RECOUNT}) x) AS recount
"""


def _by_key(rows: list[Any] | None) -> dict[tuple[uuid.UUID, str], tuple[int, int, int]]:
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows or ()}


async def assert_counted(store: Store) -> None:
    """The counters equal a recount: a participant counter per campaign and status, a '(ledger)' one per
    campaign for its sent rows."""
    row = await store.fetchrow(BOTH)
    assert row is not None
    assert _by_key(row["counters"]) == _by_key(row["recount"])


async def _campaign(store: Store, org: Org, name: str = "Counted") -> uuid.UUID:
    return await store.fetchval(
        "INSERT INTO campaigns (organization_id, name, status) VALUES ($1, $2, 'active') RETURNING id",
        org.id,
        name,
    )


# --- every kind of write ------------------------------------------------------------------------------


async def test_counters__follow_every_kind_of_write(store, org):
    a, b = await _campaign(store, org, "A"), await _campaign(store, org, "B")
    contacts = await org.contacts(12)
    await assert_counted(store)

    # A bulk insert, statuses, sends and reads mixed.
    await store.execute(
        """
        INSERT INTO campaign_participants (campaign_id, contact_id, status, last_sent_at, read_at, enqueue_order)
        SELECT $1, c, (ARRAY['pending', 'sent', 'sent', 'replied', 'failed', 'completed'])[1 + i % 6],
               CASE WHEN i % 6 IN (1, 2, 3) THEN $3::timestamptz END, CASE WHEN i % 6 = 2 THEN $3::timestamptz END, i
        FROM unnest($2::uuid[]) WITH ORDINALITY AS u (c, i)
        """,
        a,
        contacts,
        T0,
    )
    await assert_counted(store)
    # A first send (the 0003 trigger sets first_sent_at), a read mark, a status change.
    await store.execute(
        "UPDATE campaign_participants SET status = 'sent', last_sent_at = $2 WHERE campaign_id = $1 AND status = 'pending'",
        a,
        T0,
    )
    await store.execute(
        "UPDATE campaign_participants SET read_at = $2 WHERE campaign_id = $1 AND status = 'sent'", a, T0
    )
    await store.execute(
        "UPDATE campaign_participants SET status = 'completed' WHERE campaign_id = $1 AND status = 'replied'",
        a,
    )
    await assert_counted(store)
    # Ledger rows: claimed, sent, failed, one without a campaign (as the original wrote them); deleted
    # with their participant (cascade).
    await store.execute(
        """
        INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, campaign_id)
        SELECT id, 0, CASE WHEN enqueue_order % 3 = 0 THEN 'sent' ELSE 'sending' END,
               CASE WHEN enqueue_order <> 4 THEN campaign_id END
        FROM campaign_participants WHERE campaign_id = $1
        """,
        a,
    )
    await assert_counted(store)
    await store.execute(
        "UPDATE campaign_sends SET status = 'sent' WHERE status = 'sending' AND sequence_step = 0"
    )
    await store.execute("UPDATE campaign_sends SET status = 'failed' WHERE campaign_participant_id IN "
                        "(SELECT id FROM campaign_participants WHERE enqueue_order = 6)")  # fmt: skip
    await assert_counted(store)
    # Progress cleared: the 0003 trigger drops the first send and the read mark with it.
    await store.execute(
        "UPDATE campaign_participants SET last_sent_at = NULL, status = 'pending' WHERE campaign_id = $1 AND read_at IS NOT NULL",
        a,
    )
    # Updates that change nothing counted.
    await store.execute(
        "UPDATE campaign_participants SET next_send_at = now(), waiting_reason = 'gap' WHERE campaign_id = $1",
        a,
    )
    await assert_counted(store)
    # COPY (how enrolment writes a large audience).
    copied = await org.contacts(3)

    async def copy(conn: asyncpg.Connection) -> None:
        await conn.copy_records_to_table(
            "campaign_participants",
            records=[
                (b, c, "pending" if i else "sent", T0 if i == 0 else None) for i, c in enumerate(copied)
            ],
            columns=["campaign_id", "contact_id", "status", "last_sent_at"],
        )

    await store.run(copy)
    await assert_counted(store)
    # A participant moved to another campaign; an upsert that inserts some rows and updates others.
    await store.execute(
        "UPDATE campaign_participants SET campaign_id = $2 WHERE contact_id = $1", contacts[0], b
    )
    await store.execute(
        """
        INSERT INTO campaign_participants (campaign_id, contact_id, status, enqueue_order)
        SELECT $1, c, 'stopped', 0 FROM unnest($2::uuid[]) c
        ON CONFLICT (campaign_id, contact_id) DO UPDATE SET status = EXCLUDED.status
        """,
        b,
        contacts[:4],
    )
    await assert_counted(store)
    # Deletes: rows, a contact (cascade), the reset-progress statement (delete and insert in one).
    await store.execute("DELETE FROM campaign_participants WHERE campaign_id = $1 AND status = 'failed'", a)
    await store.execute("DELETE FROM contacts WHERE id = $1", contacts[1])
    await store.execute(
        """
        WITH old AS (DELETE FROM campaign_participants WHERE campaign_id = $1 RETURNING contact_id, enqueue_order)
        INSERT INTO campaign_participants (campaign_id, contact_id, status, enqueue_order)
        SELECT $1, contact_id, 'pending', enqueue_order FROM old
        """,
        b,
    )
    await assert_counted(store)

    # A savepoint rolled back, a transaction rolled back, a transaction of several statements.
    async def with_savepoint(conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE campaign_participants SET status = 'skipped' WHERE campaign_id = $1", a)
        try:
            async with conn.transaction():
                await conn.execute(
                    "UPDATE campaign_participants SET status = 'failed' WHERE campaign_id = $1", b
                )
                await conn.execute("DELETE FROM campaign_participants WHERE campaign_id = $1", a)
                raise _Undo
        except _Undo:
            pass
        await conn.execute(
            "UPDATE campaign_participants SET status = 'sent', last_sent_at = $2 WHERE campaign_id = $1",
            b,
            T0,
        )

    await store.run(with_savepoint)
    assert {
        r["status"]
        for r in await store.fetch("SELECT status FROM campaign_participants WHERE campaign_id = $1", a)
    } == {"skipped"}
    await assert_counted(store)

    async def rolled_back(conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM campaign_participants")
        raise _Undo

    with pytest.raises(_Undo):
        await store.run(rolled_back)
    assert await store.fetchval("SELECT count(*) FROM campaign_participants") > 0
    await assert_counted(store)

    # The counters applied early (SET CONSTRAINTS ALL IMMEDIATE), then more writes in the same transaction.
    async def applied_early(conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE campaign_participants SET status = 'replied' WHERE campaign_id = $1", b)
        await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        await conn.execute("UPDATE campaign_participants SET status = 'completed' WHERE campaign_id = $1", b)

    await store.run(applied_early)
    await assert_counted(store)

    # A campaign deleted (its participants go by cascade): no counter row is left behind.
    await store.execute("DELETE FROM campaigns WHERE id = $1", b)
    await assert_counted(store)
    assert (
        await store.fetchval("SELECT count(*) FROM campaign_participant_counts WHERE campaign_id = $1", b)
        == 0
    )
    # TRUNCATE empties them.
    await store.execute("TRUNCATE campaign_participants CASCADE")
    await assert_counted(store)
    assert await store.fetchval("SELECT count(*) FROM campaign_participant_counts") == 0


class _Undo(Exception):
    pass


async def test_counters__a_status_nobody_is_in_has_no_row(store, org):
    cid = await _campaign(store, org)
    (contact,) = await org.contacts(1)
    await store.execute(
        "INSERT INTO campaign_participants (campaign_id, contact_id) VALUES ($1, $2)", cid, contact
    )
    await store.execute(
        "UPDATE campaign_participants SET status = 'sent', last_sent_at = now() WHERE campaign_id = $1", cid
    )
    rows = await store.fetch(
        "SELECT status, total, sent, read FROM campaign_participant_counts WHERE campaign_id = $1", cid
    )
    assert [tuple(r) for r in rows] == [("sent", 1, 1, 0)]


# --- random sequences ---------------------------------------------------------------------------------


class World:
    """Random writes over a few campaigns and contacts of one organization, each a transaction."""

    def __init__(self, rng: random.Random, org: Org, campaigns: list[uuid.UUID], contacts: list[uuid.UUID]):
        self.rng = rng
        self.org = org
        self.campaigns = campaigns
        self.contacts = contacts

    def some(self, items: list[Any], most: int = 6) -> list[Any]:
        return self.rng.sample(items, self.rng.randint(1, min(most, len(items)))) if items else []

    async def statement(self, conn: asyncpg.Connection) -> None:
        """One random statement."""
        rng = self.rng
        cid = rng.choice(self.campaigns)
        ids = [
            r["id"]
            for r in await conn.fetch("SELECT id FROM campaign_participants WHERE campaign_id = $1", cid)
        ]
        kind = rng.choice(
            ("insert", "insert", "status", "status", "send", "read", "clear", "noop", "move", "delete", "upsert",
             "contact", "reset", "ledger", "ledger", "outcome", "outcome", "unledger", "reledger")
        )  # fmt: skip
        when = T0 + dt.timedelta(minutes=rng.randint(0, 10_000))
        if kind == "insert":
            await conn.execute(
                """
                INSERT INTO campaign_participants (campaign_id, contact_id, status, last_sent_at, read_at)
                SELECT $1, c, $3, CASE WHEN $4 THEN $5::timestamptz END, CASE WHEN $6 THEN $5::timestamptz END
                FROM unnest($2::uuid[]) c
                ON CONFLICT (campaign_id, contact_id) DO NOTHING
                """,
                cid, self.some(self.contacts), rng.choice(STATUSES), rng.random() < 0.5, when, rng.random() < 0.3,
            )  # fmt: skip
        elif kind == "status":
            await conn.execute(
                "UPDATE campaign_participants SET status = $2 WHERE id = ANY($1::uuid[])",
                self.some(ids), rng.choice(STATUSES),
            )  # fmt: skip
        elif kind == "send":
            await conn.execute(
                "UPDATE campaign_participants SET last_sent_at = $2, status = 'sent' WHERE id = ANY($1::uuid[])",
                self.some(ids), when,
            )  # fmt: skip
        elif kind == "read":
            await conn.execute(
                "UPDATE campaign_participants SET read_at = $2 WHERE id = ANY($1::uuid[])",
                self.some(ids),
                when,
            )
        elif kind == "clear":
            await conn.execute(
                "UPDATE campaign_participants SET last_sent_at = NULL WHERE id = ANY($1::uuid[])",
                self.some(ids),
            )
        elif kind == "noop":
            await conn.execute(
                "UPDATE campaign_participants SET next_send_at = $2 WHERE id = ANY($1::uuid[])",
                self.some(ids),
                when,
            )
        elif kind == "move":
            await conn.execute(
                """
                UPDATE campaign_participants cp SET campaign_id = $2 WHERE cp.id = ANY($1::uuid[])
                  AND NOT EXISTS (SELECT 1 FROM campaign_participants o WHERE o.campaign_id = $2 AND o.contact_id = cp.contact_id)
                """,
                self.some(ids, 1), rng.choice(self.campaigns),
            )  # fmt: skip
        elif kind == "delete":
            await conn.execute("DELETE FROM campaign_participants WHERE id = ANY($1::uuid[])", self.some(ids))
        elif kind == "upsert":
            await conn.execute(
                """
                INSERT INTO campaign_participants (campaign_id, contact_id, status) SELECT $1, c, $3 FROM unnest($2::uuid[]) c
                ON CONFLICT (campaign_id, contact_id) DO UPDATE SET status = EXCLUDED.status, read_at = NULL
                """,
                cid, self.some(self.contacts), rng.choice(STATUSES),
            )  # fmt: skip
        elif kind == "contact":
            victim = rng.choice(self.contacts)
            self.contacts.remove(victim)
            await conn.execute("DELETE FROM contacts WHERE id = $1", victim)
        elif kind == "reset":
            await conn.execute(
                """
                WITH old AS (DELETE FROM campaign_participants WHERE campaign_id = $1 RETURNING contact_id)
                INSERT INTO campaign_participants (campaign_id, contact_id) SELECT $1, contact_id FROM old
                """,
                cid,
            )
        elif kind == "ledger":  # ledger rows of some participants, a few without a campaign (the original's)
            await conn.execute(
                """
                INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, campaign_id)
                SELECT p, $2, $3, CASE WHEN $4 THEN cp.campaign_id END
                FROM unnest($1::uuid[]) p JOIN campaign_participants cp ON cp.id = p
                """,
                self.some(ids), rng.randint(0, 3), rng.choice(SEND_STATUSES), rng.random() < 0.9,
            )  # fmt: skip
        elif kind in ("outcome", "unledger", "reledger"):
            sends = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT s.id FROM campaign_sends s JOIN campaign_participants cp ON cp.id = s.campaign_participant_id "
                    "WHERE cp.campaign_id = $1",
                    cid,
                )
            ]
            if kind == "outcome":
                await conn.execute(
                    "UPDATE campaign_sends SET status = $2 WHERE id = ANY($1::uuid[])",
                    self.some(sends), rng.choice(SEND_STATUSES),
                )  # fmt: skip
            elif kind == "unledger":
                await conn.execute("DELETE FROM campaign_sends WHERE id = ANY($1::uuid[])", self.some(sends))
            else:
                await conn.execute(
                    "UPDATE campaign_sends SET campaign_id = $2 WHERE id = ANY($1::uuid[])",
                    self.some(sends, 2), rng.choice([*self.campaigns, None]),
                )  # fmt: skip

    async def transaction(self, conn: asyncpg.Connection) -> None:
        """One to three statements; sometimes a savepoint rolled back, sometimes the whole transaction."""
        shape = self.rng.choice(("one", "one", "several", "savepoint", "rollback"))
        async with conn.transaction():
            await self.statement(conn)
            if shape in ("several", "savepoint"):
                await self.statement(conn)
            if shape == "savepoint":
                try:
                    async with conn.transaction():
                        await self.statement(conn)
                        raise _Undo
                except _Undo:
                    pass
                await self.statement(conn)
            if shape == "rollback":
                raise _Undo


async def _world(store: Store, org: Org, rng: random.Random, contacts: int = 30) -> World:
    campaigns = [await _campaign(store, org, f"C{i}") for i in range(3)]
    return World(rng, org, campaigns, await org.contacts(contacts))


@pytest.mark.parametrize("seed", range(4))
async def test_counters__equal_a_recount_after_random_writes(store, org, seed):
    world = await _world(store, org, random.Random(seed))

    async def one(conn: asyncpg.Connection) -> None:
        try:
            await world.transaction(conn)
        except _Undo:
            pass

    for _ in range(60):
        await store.run(one, transaction=False)
        await assert_counted(store)


async def _sessions(database_url: str, count: int, session: Any) -> None:
    """``session(conn, rng)`` on ``count`` connections of their own, all at once."""

    async def one(seed: int) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("SET deadlock_timeout = '50ms'")
            await session(conn, random.Random(seed))
        finally:
            await conn.close()

    async def run_all() -> None:
        await asyncio.gather(*(one(seed) for seed in range(count)))

    await aio_as_trio(run_all)()


async def test_counters__equal_a_recount_after_concurrent_transactions(database_url, store, org):
    """Eight sessions writing the same campaigns at once, with pauses inside their transactions so they
    overlap. Deadlocks between participant rows (two transactions locking the same rows in opposite
    orders) are the workload's own, as many with the counters' triggers disabled; they roll back, and the
    counters must still be right."""
    world = await _world(store, org, random.Random(7), contacts=40)
    outcomes = {"committed": 0, "rolled_back": 0, "failed": 0}

    async def session(conn: asyncpg.Connection, rng: random.Random) -> None:
        local = World(rng, org, world.campaigns, list(world.contacts))
        for _ in range(30):
            try:
                async with conn.transaction():
                    for _ in range(rng.randint(1, 3)):
                        await local.statement(conn)
                        await asyncio.sleep(rng.random() * 0.01)
                    if rng.random() < 0.15:
                        raise _Undo
                outcomes["committed"] += 1
            except _Undo:
                outcomes["rolled_back"] += 1
            except (
                asyncpg.DeadlockDetectedError,
                asyncpg.UniqueViolationError,
                asyncpg.ForeignKeyViolationError,
            ):
                # A deadlock, two sessions inserting the same (campaign, contact), a contact another deleted.
                outcomes["failed"] += 1

    await _sessions(database_url, 8, session)
    assert outcomes["committed"] > 80, outcomes
    await assert_counted(store)


async def test_counters__add_no_deadlock_to_writers_that_lock_participants_in_one_order(
    database_url, store, org
):
    """Eight sessions whose transactions lock participants in id order (so they cannot deadlock on them),
    one to three statements each, all changing statuses, first sends and read marks of the same two
    campaigns. Counters updated in the statement would deadlock here (a transaction holding a counter row
    waits for a participant row whose holder waits for that counter); applied at commit, none does."""
    campaigns = [await _campaign(store, org, f"C{i}") for i in range(2)]
    contacts = await org.contacts(60)
    await store.execute(
        """
        INSERT INTO campaign_participants (campaign_id, contact_id, enqueue_order)
        SELECT c.id, ct, 0 FROM unnest($1::uuid[]) c (id), unnest($2::uuid[]) ct
        """,
        campaigns,
        contacts[:40],
    )
    ids = sorted(r["id"] for r in await store.fetch("SELECT id FROM campaign_participants"))
    spare = contacts[40:]  # each session inserts its own contacts: no unique-key waits between sessions
    changes = (
        "status = $2",
        "status = 'sent', last_sent_at = now()",
        "read_at = now()",
        "last_sent_at = NULL",
        "status = $2, last_sent_at = now(), read_at = now()",
    )
    outcomes = {"committed": 0, "deadlocks": 0}

    async def session(conn: asyncpg.Connection, rng: random.Random) -> None:
        mine = spare[rng.randrange(0, len(spare), 1) :][:2] if rng.random() < 0.5 else []
        for _ in range(25):
            chosen = sorted(rng.sample(ids, rng.randint(2, 12)))
            cuts = sorted(rng.sample(range(1, len(chosen)), min(rng.randint(0, 2), len(chosen) - 1)))
            chunks = [chosen[i:j] for i, j in zip([0, *cuts], [*cuts, len(chosen)], strict=True)]
            try:
                async with conn.transaction():
                    for chunk in chunks:  # ids only grow from one statement to the next
                        change = rng.choice(changes)
                        await conn.execute(
                            f"""
                            WITH locked AS (
                                SELECT id FROM campaign_participants WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
                            )
                            UPDATE campaign_participants cp SET {change}
                            FROM locked WHERE cp.id = locked.id
                            """,
                            chunk,
                            *([rng.choice(STATUSES)] if "$2" in change else []),
                        )
                        await asyncio.sleep(rng.random() * 0.005)
                    if mine and rng.random() < 0.2:
                        await conn.execute(
                            "INSERT INTO campaign_participants (campaign_id, contact_id, status) SELECT $1, c, 'pending' "
                            "FROM unnest($2::uuid[]) c ON CONFLICT DO NOTHING",
                            rng.choice(campaigns),
                            mine,
                        )
                outcomes["committed"] += 1
            except asyncpg.DeadlockDetectedError:
                outcomes["deadlocks"] += 1

    await _sessions(database_url, 8, session)
    assert outcomes == {"committed": 200, "deadlocks": 0}
    await assert_counted(store)


async def test_counters__writers_of_one_campaign_never_wait_for_each_other_in_a_cycle(
    database_url, store, org
):
    """A holds participant 1 and waits for participant 2, which B holds. Had A's first statement updated
    the counter row it shares with B, B's own status change would wait for A: a deadlock. Applied at
    commit, B commits, then A."""
    cid = await _campaign(store, org)
    contacts = await org.contacts(2)
    p1, p2 = [
        await store.fetchval(
            "INSERT INTO campaign_participants (campaign_id, contact_id) VALUES ($1, $2) RETURNING id", cid, c
        )
        for c in contacts
    ]
    sent = "UPDATE campaign_participants SET status = 'sent', last_sent_at = now() WHERE id = $1"

    async def scenario() -> None:
        a, b = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
        try:
            await a.execute("SET deadlock_timeout = '100ms'")
            ta, tb = a.transaction(), b.transaction()
            await ta.start()
            await tb.start()
            await a.execute(sent, p1)
            await asyncio.wait_for(b.execute(sent, p2), 2)  # B's status change does not wait for A
            waiting = asyncio.ensure_future(
                a.execute("UPDATE campaign_participants SET next_send_at = now() WHERE id = $1", p2)
            )
            await asyncio.sleep(0.3)
            assert not waiting.done()  # A waits for B's row, as it always did
            await asyncio.wait_for(tb.commit(), 2)
            await asyncio.wait_for(waiting, 2)
            await ta.commit()
        finally:
            await a.close()
            await b.close()

    await aio_as_trio(scenario)()
    rows = await store.fetch(
        "SELECT status, total, sent FROM campaign_participant_counts WHERE campaign_id = $1", cid
    )
    assert [tuple(r) for r in rows] == [("sent", 2, 2)]
    await assert_counted(store)


# --- migration and repair -----------------------------------------------------------------------------


async def _random_writes(store: Store, world: World, transactions: int) -> None:
    """A mix of participants and ledger rows in every campaign, then random transactions."""
    await store.execute(
        """
        INSERT INTO campaign_participants (campaign_id, contact_id, status, last_sent_at)
        SELECT c, ct, (ARRAY['pending', 'sent', 'replied'])[1 + abs(hashtext(ct::text)) % 3], $3
        FROM unnest($1::uuid[]) c, unnest($2::uuid[]) ct
        ON CONFLICT (campaign_id, contact_id) DO NOTHING
        """,
        world.campaigns,
        world.contacts[:10],
        T0,
    )
    await store.execute(
        "INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, campaign_id) "
        "SELECT id, 0, 'sent', campaign_id FROM campaign_participants WHERE status <> 'pending'"
    )

    async def one(conn: asyncpg.Connection) -> None:
        try:
            await world.transaction(conn)
        except _Undo:
            pass

    for _ in range(transactions):
        await store.run(one, transaction=False)


async def test_migration__backfills_the_rows_written_before_it(empty_database_url):
    everything = migrate.discover(crm_schema="standalone")
    before = [m for m in everything if not (m.migration_set == "campaign" and m.name >= "0010")]
    await migrate.apply(empty_database_url, before)
    async with Store.open(empty_database_url, min_size=1, max_size=2) as store:
        org = await make_org(store)
        world = await _world(store, org, random.Random(3))
        await _random_writes(store, world, 30)
        # The random transactions may have removed every sent row: the backfill must have some to count.
        await store.execute(
            "INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, campaign_id) "
            "SELECT id, 5, 'sent', campaign_id FROM campaign_participants LIMIT 3"
        )
        assert await store.fetchval("SELECT to_regclass('campaign_participant_counts')") is None
        await migrate.apply(empty_database_url, everything)
        assert await store.fetchval("SELECT count(*) FROM campaign_sends WHERE status = 'sent'") > 0
        await assert_counted(store)
        await _random_writes(store, world, 10)  # and kept from then on
        await assert_counted(store)


async def test_rebuild__repairs_counters_a_writer_bypassed(store, org):
    world = await _world(store, org, random.Random(11))
    await _random_writes(store, world, 20)

    async def bypassing(conn: asyncpg.Connection) -> None:
        await conn.execute("SET LOCAL session_replication_role = replica")  # no triggers fire
        await conn.execute("UPDATE campaign_participants SET status = 'stopped'")
        await conn.execute("DELETE FROM campaign_sends")

    await store.run(bypassing)
    row = await store.fetchrow(BOTH)
    assert row is not None and _by_key(row["counters"]) != _by_key(row["recount"])
    await store.execute("SELECT campaignsvc_counts_rebuild()")
    await assert_counted(store)


# --- the real dispatcher ------------------------------------------------------------------------------


async def test_dispatched_campaigns__counters_and_stats_equal_a_recount(nursery, store, org):
    """Sends (one recipient refusing), replies, a pause, removals, more participants, a stop and a reset
    through the API and the dispatcher; then the counters equal a recount and GET /stats answers what the
    recount gives, byte for byte."""
    env = await start_env(nursery, store, org)
    accounts = [await org.bd_account(), await org.bd_account()]
    contacts = await org.contacts(24)
    refusing = await store.fetchval("SELECT telegram_id FROM contacts WHERE id = $1", contacts[5])
    env.sandbox.state.update_config({"recipient_errors": {refusing: "privacy"}})
    first = await env.campaign(
        accounts=accounts, contacts=contacts[:16], steps=[{}, {"delayMinutes": 0}, {"delayHours": 10}]
    )
    second = await env.campaign(accounts=accounts[:1], contacts=contacts[10:], steps=[{}])
    await env.api("POST", f"/api/campaigns/{first}/start")
    await env.api("POST", f"/api/campaigns/{second}/start")
    await env.wait_sent(20)
    await env.wait_status(second, "completed")
    for row in (await env.participants(first))[:4]:
        if row["channel_id"]:
            event = reply_event(
                org,
                contact_id=row["contact_id"],
                account_id=row["bd_account_id"],
                channel_id=row["channel_id"],
            )
            await env.api("POST", "/api/campaigns/events", event)
    await env.api("POST", f"/api/campaigns/{first}/pause")
    await env.api("DELETE", f"/api/campaigns/{first}/participants/{contacts[15]}", expect=None)
    await env.api("POST", f"/api/campaigns/{first}/resume")
    await env.api(
        "POST", f"/api/campaigns/{first}/participants/add", {"contactIds": [str(c) for c in contacts[16:20]]}
    )
    await trio.sleep(0.5)
    await env.api("POST", f"/api/campaigns/{first}/stop")
    await env.api("POST", f"/api/campaigns/{second}/reset-progress", expect=None)
    await trio.sleep(0.3)
    await assert_counted(store)

    for cid in (first, second):
        body, expected = await _stats_and_recount(env.client, store, org, uuid.UUID(cid))
        assert body == expected
    body, _ = await _stats_and_recount(env.client, store, org, uuid.UUID(first))
    served = json.loads(body)
    assert served["total"] == 19 and served["total_replied"] >= 1 and served["contactsSent"] >= 10


async def _stats_and_recount(client: Any, store: Store, org: Org, cid: uuid.UUID) -> tuple[bytes, bytes]:
    """GET /stats, and the body the recount gives, once nothing changed the campaign between them."""

    async def recount() -> bytes:
        body = stats_body(
            await store.run(reporting_db.participant_counts, org.id, cid, recount=True),
            await store.run(reporting_db.outcome_summary, org.id, cid, recount=True),
        )
        return dumps(body).encode() + b"\n"

    for _ in range(20):
        before = await recount()
        response = await client.get(f"/api/campaigns/{cid}/stats", headers=org.headers())
        assert response.status_code == 200
        served = await response.get_data()
        if await recount() == before:
            # What the counters serve comes first, byte for byte; then what stats adds beyond them.
            counted, _, added = served.rstrip(b"\n").rpartition(b',"repliesByIntent":')
            assert set(json.loads(b'{"repliesByIntent":' + added)) == {
                "repliesByIntent",
                "waiting",
                "waitingAsOf",
            }
            return counted + b"}\n", before
        await trio.sleep(0.2)
    raise AssertionError("the campaign kept changing")


async def test_stats__byte_for_byte_what_the_recount_gives_for_every_campaign_state(client, org, store):
    """Empty, one status, every status, sent and read marks in every combination, failures with and
    without an error: the response from the counters is the one from counting the rows."""
    rng = random.Random(5)
    contacts = await org.contacts(40)
    cases: list[uuid.UUID] = []
    for shape in range(8):
        response = await client.post("/api/campaigns", json={"name": f"S{shape}"}, headers=org.headers())
        cid = uuid.UUID((await response.get_json())["id"])
        cases.append(cid)
        statuses = STATUSES[:shape] if shape < 7 else ("failed",)
        for c in rng.sample(contacts, 5 * shape):
            sent = rng.random() < 0.6
            await store.execute(
                """
                INSERT INTO campaign_participants (campaign_id, contact_id, status, last_sent_at, read_at, last_error, failed_at)
                VALUES ($1, $2, $3, $4, $5, $6, $4)
                """,
                cid, c, rng.choice(statuses) if statuses else "pending", T0 if sent else None,
                T0 if sent and rng.random() < 0.5 else None, rng.choice((None, "PRIVACY_RESTRICTED")),
            )  # fmt: skip
    for cid in cases:
        served, expected = await _stats_and_recount(client, store, org, cid)
        assert served == expected
