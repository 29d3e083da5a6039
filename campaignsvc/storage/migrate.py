"""Ordered plain-SQL migrations, applied under a PostgreSQL advisory lock and recorded in a table.

Two sets: ``migrations/crm/`` (the CRM baseline, only when ``CRM_SCHEMA=standalone``) and ``migrations/``
(the campaign tables, always). A file is applied once, in its own transaction; an applied file whose
content changed is an error, never silently re-run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import asyncpg
import attrs
from trio_asyncio import aio_as_trio

from campaignsvc.errors import MigrationError
from campaignsvc.storage.errors import translated

# Any constant works; every instance of the service must agree on it.
_LOCK_KEY = 0x63616D70  # "camp"

_TRACKING_TABLE = """
CREATE TABLE IF NOT EXISTS campaignsvc_migrations (
    migration_set varchar(32) NOT NULL,
    name varchar(255) NOT NULL,
    checksum char(64) NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration_set, name)
)
"""


@attrs.frozen
class Migration:
    migration_set: str  # "crm" or "campaign"
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_root() -> Path:
    """``MIGRATIONS_DIR`` if set, else the ``migrations/`` folder beside the package."""
    env = os.environ.get("MIGRATIONS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "migrations"


def discover(root: Path | None = None, *, crm_schema: str = "standalone") -> list[Migration]:
    root = default_root() if root is None else root
    if not root.is_dir():
        raise MigrationError(f"migrations folder not found: {root} (set MIGRATIONS_DIR)")
    found: list[Migration] = []
    if crm_schema == "standalone":
        found += [Migration("crm", p.name, p.read_text()) for p in sorted((root / "crm").glob("*.sql"))]
    found += [Migration("campaign", p.name, p.read_text()) for p in sorted(root.glob("*.sql"))]
    return found


async def apply(dsn: str, migrations: list[Migration]) -> list[str]:
    """Apply what is not applied yet; returns the names applied now (empty when up to date)."""
    with translated():
        return await aio_as_trio(_apply_aio)(dsn, migrations)


async def _apply_aio(dsn: str, migrations: list[Migration]) -> list[str]:
    # A dedicated connection: the session advisory lock must outlive each file's transaction.
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "campaignsvc-migrate"})
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(_TRACKING_TABLE)
            rows = await conn.fetch("SELECT migration_set, name, checksum FROM campaignsvc_migrations")
            done = {(r["migration_set"], r["name"]): r["checksum"].strip() for r in rows}
            applied: list[str] = []
            for m in migrations:
                key = (m.migration_set, m.name)
                if key in done:
                    if done[key] != m.checksum:
                        raise MigrationError(
                            f"migration {m.migration_set}/{m.name} changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(m.sql)
                        await conn.execute(
                            "INSERT INTO campaignsvc_migrations (migration_set, name, checksum) "
                            "VALUES ($1, $2, $3)",
                            m.migration_set,
                            m.name,
                            m.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{m.migration_set}/{m.name}: {exc}") from exc
                applied.append(f"{m.migration_set}/{m.name}")
            return applied
        finally:
            if not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def ensure_database(admin_dsn: str, name: str) -> bool:
    """Create database ``name`` through ``admin_dsn`` if it does not exist; True when created."""
    with translated():
        return await aio_as_trio(_ensure_database_aio)(admin_dsn, name)


async def _ensure_database_aio(admin_dsn: str, name: str) -> bool:
    conn = await asyncpg.connect(admin_dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False  # another process won the race
        return True
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    with translated():
        await aio_as_trio(_drop_database_aio)(admin_dsn, name)


async def _drop_database_aio(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()
