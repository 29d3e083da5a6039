"""The asyncpg pool, reached from trio through trio-asyncio.

Every database operation is an *asyncio* function ``fn(conn, *args)`` that ``Store.run`` executes in one
bridge crossing: the connection is acquired, used and released on the asyncio side, so a trio cancellation
cancels the query and still returns the connection to the pool (never ``async with
aio_as_trio(pool.acquire())`` — that leaks the connection when cancelled; see docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import trio
from trio_asyncio import aio_as_trio

from campaignsvc.storage.errors import translated

R = TypeVar("R")
Op = Callable[..., Awaitable[R]]

_CLOSE_TIMEOUT_S = 10.0


# asyncpg looks up an array type's codec the first time a connection meets it (three round-trips, 5–13 ms
# here). Meeting every array type the SQL uses in one statement when the connection opens keeps that off
# the send path: otherwise the first sends after boot paid it once per type on each pool connection.
_ARRAY_TYPES = ("uuid", "text", "varchar", "int", "bigint", "smallint", "bool", "timestamptz", "jsonb")
_MEET_ARRAY_TYPES = "SELECT " + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_ARRAY_TYPES, start=1))


async def init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )
    await conn.fetchrow(_MEET_ARRAY_TYPES, *([[]] * len(_ARRAY_TYPES)))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


async def _reset_nothing(conn: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's reset query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL):
    nothing here keeps session state on a pooled connection — settings are ``SET LOCAL``/transaction-scoped,
    advisory locks are ``_xact_``, and LISTEN uses a dedicated connection. It cost one round-trip per
    operation (1.75 statements per send in the throughput benchmark). asyncpg still rolls back an open
    transaction and drops listeners before calling this."""


async def _connect_pool(dsn: str, min_size: int, max_size: int, statement_timeout_ms: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_reset_nothing,
        command_timeout=None,
        server_settings={
            "application_name": "campaignsvc",
            "statement_timeout": str(statement_timeout_ms),
            "TimeZone": "UTC",
        },
    )


async def _run_on_pool(
    pool: asyncpg.Pool,
    fn: Op[R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    transaction: bool,
    acquire_timeout: float,
) -> R:
    async with pool.acquire(timeout=acquire_timeout) as conn:
        if not transaction:
            return await fn(conn, *args, **kwargs)
        async with conn.transaction():
            return await fn(conn, *args, **kwargs)


class Store:
    """The connection pool and the one way to use it from trio."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float = 10.0) -> None:
        self.pool = pool
        self._acquire_timeout = acquire_timeout
        self._run = aio_as_trio(_run_on_pool)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 20,
        statement_timeout_ms: int = 30_000,
        acquire_timeout: float = 10.0,
    ) -> AsyncIterator[Store]:
        """Open the pool (must run inside ``trio_asyncio.open_loop()``); close it, shielded, on exit."""
        with translated():
            pool = await aio_as_trio(_connect_pool)(dsn, min_size, max_size, statement_timeout_ms)
        try:
            yield cls(pool, acquire_timeout=acquire_timeout)
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT_S, shield=True) as scope:
                await aio_as_trio(pool.close)()
            if scope.cancelled_caught:
                pool.terminate()

    async def run(self, fn: Op[R], *args: Any, transaction: bool = True, **kwargs: Any) -> R:
        """Run the asyncio function ``fn(conn, *args, **kwargs)`` on a pooled connection, in a transaction
        unless ``transaction=False``; driver errors come out as :mod:`campaignsvc.errors` exceptions."""
        with translated():
            return await self._run(self.pool, fn, args, kwargs, transaction, self._acquire_timeout)

    # Single statements, for callers that need nothing more.
    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.run(_fetch, sql, args, transaction=False)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self.run(_fetchrow, sql, args, transaction=False)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.run(_fetchval, sql, args, transaction=False)

    async def execute(self, sql: str, *args: Any) -> str:
        return await self.run(_execute, sql, args, transaction=False)

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        return await self.fetchval("SELECT 1") == 1

    def stats(self) -> dict[str, int]:
        return {
            "size": self.pool.get_size(),
            "idle": self.pool.get_idle_size(),
            "max": self.pool.get_max_size(),
        }


async def _fetch(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> list[asyncpg.Record]:
    return await conn.fetch(sql, *args)


async def _fetchrow(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> asyncpg.Record | None:
    return await conn.fetchrow(sql, *args)


async def _fetchval(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> Any:
    return await conn.fetchval(sql, *args)


async def _execute(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> str:
    return await conn.execute(sql, *args)
