"""The trio ↔ asyncpg bridge: cancellation, lost connections, error translation, no leaked connections."""

from __future__ import annotations

import time

import pytest
import trio

from campaignsvc.errors import DatabaseUnavailable, QueryTimeout, UniqueViolation
from campaignsvc.storage.store import Store


async def _active_sleeps(store: Store) -> int:
    return await store.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%' AND pid <> pg_backend_pid()"
    )


async def test_store__cancelled_query_is_cancelled_on_the_server_and_the_connection_returns(store):
    started = time.monotonic()
    with trio.move_on_after(0.3) as scope:
        await store.execute("SELECT pg_sleep(10)")
    assert scope.cancelled_caught
    assert time.monotonic() - started < 2
    # The server-side query is gone and the pool is whole again.
    with trio.fail_after(5):
        while await _active_sleeps(store):
            await trio.sleep(0.05)
    assert store.stats()["idle"] == store.stats()["size"]


async def test_store__many_cancellations_do_not_exhaust_the_pool(store):
    for _ in range(store.stats()["max"] * 2):
        with trio.move_on_after(0.05):
            await store.execute("SELECT pg_sleep(5)")
    with trio.fail_after(5):
        assert await store.fetchval("SELECT 41 + 1") == 42


async def test_store__cancelled_transaction_is_rolled_back(store):
    await store.execute("CREATE TABLE t (v int)")

    async def insert_then_sleep(conn):
        await conn.execute("INSERT INTO t VALUES (1)")
        await conn.execute("SELECT pg_sleep(10)")

    with trio.move_on_after(0.3):
        await store.run(insert_then_sleep)
    assert await store.fetchval("SELECT count(*) FROM t") == 0


async def test_store__connection_killed_mid_query_raises_database_unavailable(store):
    async def victim():
        with pytest.raises(DatabaseUnavailable):
            await store.execute("SELECT pg_sleep(10)")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(victim)
        with trio.fail_after(5):
            while not await _active_sleeps(store):
                await trio.sleep(0.02)
        await store.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'SELECT pg_sleep(%' AND pid <> pg_backend_pid()"
        )
    # The pool replaces the dead connection.
    with trio.fail_after(5):
        assert await store.fetchval("SELECT 1") == 1


async def test_store__unreachable_database_is_a_clear_error(aio_loop):
    with trio.fail_after(15), pytest.raises(DatabaseUnavailable, match="cannot reach PostgreSQL"):
        async with Store.open("postgresql://postgres@127.0.0.1:1/nowhere", min_size=1, max_size=1):
            pass


async def test_store__statement_timeout_is_translated(database_url):
    async with Store.open(database_url, min_size=1, max_size=1, statement_timeout_ms=100) as store:
        with pytest.raises(QueryTimeout):
            await store.execute("SELECT pg_sleep(2)")
        assert await store.fetchval("SELECT 1") == 1


async def test_store__unique_violation_names_the_constraint(store, org):
    await store.execute("CREATE TABLE u (v int CONSTRAINT u_v_key UNIQUE)")
    await store.execute("INSERT INTO u VALUES (1)")
    with pytest.raises(UniqueViolation) as err:
        await store.execute("INSERT INTO u VALUES (1)")
    assert err.value.constraint == "u_v_key"


async def test_store__jsonb_round_trips_as_python_objects(store):
    value = {"a": [1, 2, {"b": None}], "s": "ü"}
    assert await store.fetchval("SELECT $1::jsonb", value) == value


async def test_http__handler_awaits_asyncpg_through_the_bridge(services, client):
    response = await client.get("/ready")
    assert response.status_code == 200
    body = await response.get_json()
    checks = body.pop("checks")
    assert body == {"ready": True, "service": "campaign-service"}
    held = checks.pop("accountsHeld")
    assert isinstance(held, int) and held >= 0
    assert checks == {
        "db": "ok",
        "rabbitmq": "not_configured",
        "supervisor": "running",
        "instance": services.settings.instance_id,
        "leases": "ok",
    }


async def test_http__health_reports_database_down_as_503(services, client):
    services.store.pool.terminate()  # every query now fails at once
    response = await client.get("/health")
    assert response.status_code == 503
    body = await response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["db"] == "error"


async def test_http__unknown_route_is_a_404_envelope(client):
    response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    assert await response.get_json() == {"error": "Not found", "code": "NOT_FOUND"}


async def test_http__metrics_are_prometheus_text(client):
    await client.get("/health")
    response = await client.get("/metrics")
    text = (await response.get_data()).decode()
    assert response.status_code == 200
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in text
    assert "process_resident_memory_bytes" in text
