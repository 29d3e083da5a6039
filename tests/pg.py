"""Test databases on the real PostgreSQL: one template per run, built by the real migrations, and one
clone per test (``CREATE DATABASE … TEMPLATE``, about 0.1 s). The server is the session's
(``CAMPAIGNSVC_TEST_PG``, read at every call: tests/servers.py may point it at an embedded server)."""

from __future__ import annotations

import os
import re
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
import trio
import trio_asyncio
from trio_asyncio import aio_as_trio

from campaignsvc.storage import migrate
from tests import servers

_NAME = re.compile(r"^csvc_(\d+)_")


def url_for(database: str) -> str:
    parts = urlsplit(servers.pg_url())
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _admin(sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(servers.pg_url())
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return await aio_as_trio(run)()


async def drop_stale_databases() -> None:
    """Drop databases left by test runs whose process is gone (a crashed or killed run)."""
    rows = await _admin("SELECT datname FROM pg_database WHERE datname LIKE 'csvc\\_%'")
    for row in rows:
        match = _NAME.match(row["datname"])
        if match and not psutil.pid_exists(int(match.group(1))):
            await _admin(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')


async def _build_template(name: str, crm_schema: str) -> None:
    async with trio_asyncio.open_loop():
        await drop_stale_databases()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _admin(f'CREATE DATABASE "{name}"')
        await migrate.apply(url_for(name), migrate.discover(crm_schema=crm_schema))


def build_template(crm_schema: str = "standalone") -> str:
    name = f"csvc_{os.getpid()}_tpl_{crm_schema}"
    trio.run(_build_template, name, crm_schema)
    return name


def drop_database_sync(name: str) -> None:
    async def run() -> None:
        async with trio_asyncio.open_loop():
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    trio.run(run)


async def clone(template: str) -> str:
    """A new database copied from ``template``; returns its name."""
    name = f"csvc_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


async def create_empty() -> str:
    name = f"csvc_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    return name


async def drop(name: str) -> None:
    with trio.CancelScope(shield=True):
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
