"""Inserting CRM rows: organizations, users, BD accounts, companies, contacts, pipelines.

campaignsvc never writes these in production (the CRM owns them); the demo seeds its organization with
these functions and the tests build their fixtures with them. Each is an asyncio function for
``Store.run(fn, ...)``; bulk inserts are one statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg


async def organization(conn: asyncpg.Connection, *, name: str, slug: str | None = None) -> uuid.UUID:
    slug = slug or f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:8]}"
    return await conn.fetchval(
        "INSERT INTO organizations (name, slug) VALUES ($1, $2) RETURNING id", name, slug
    )


async def user(
    conn: asyncpg.Connection,
    *,
    organization_id: uuid.UUID,
    email: str,
    role: str = "owner",
    first_name: str | None = None,
    last_name: str | None = None,
) -> uuid.UUID:
    user_id = await conn.fetchval(
        "INSERT INTO users (email, organization_id, role) VALUES ($1, $2, $3) RETURNING id",
        email,
        organization_id,
        role,
    )
    if first_name or last_name:
        await conn.execute(
            "INSERT INTO user_profiles (user_id, organization_id, first_name, last_name) VALUES ($1, $2, $3, $4)",
            user_id,
            organization_id,
            first_name,
            last_name,
        )
    return user_id


async def bd_account(conn: asyncpg.Connection, *, organization_id: uuid.UUID, **columns: Any) -> uuid.UUID:
    """A BD account; any ``bd_accounts`` column may be given (``telegram_id`` defaults to a random one)."""
    columns.setdefault("telegram_id", str(uuid.uuid4().int % 10**10))
    columns.setdefault("connection_state", "connected")
    columns["organization_id"] = organization_id
    names = list(columns)
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    return await conn.fetchval(
        f"INSERT INTO bd_accounts ({', '.join(names)}) VALUES ({placeholders}) RETURNING id",
        *columns.values(),
    )


async def company(conn: asyncpg.Connection, *, organization_id: uuid.UUID, name: str) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO companies (organization_id, name) VALUES ($1, $2) RETURNING id", organization_id, name
    )


CONTACT_COLUMNS = (
    "first_name",
    "last_name",
    "display_name",
    "username",
    "telegram_id",
    "email",
    "phone",
    "company_id",
)


async def contacts(
    conn: asyncpg.Connection, *, organization_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> list[uuid.UUID]:
    """Insert contacts in one statement; each row is a dict of ``CONTACT_COLUMNS`` (first_name required)."""
    columns = {name: [r.get(name) for r in rows] for name in CONTACT_COLUMNS}
    records = await conn.fetch(
        """
        INSERT INTO contacts (organization_id, first_name, last_name, display_name, username, telegram_id,
                              email, phone, company_id)
        SELECT $1, u.first_name, u.last_name, u.display_name, u.username, u.telegram_id, u.email, u.phone,
               u.company_id
        FROM unnest($2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[], $7::varchar[],
                    $8::varchar[], $9::uuid[])
             WITH ORDINALITY AS u (first_name, last_name, display_name, username, telegram_id, email, phone,
                                   company_id, n)
        ORDER BY u.n
        RETURNING id
        """,
        organization_id,
        *(columns[name] for name in CONTACT_COLUMNS),
    )
    return [r["id"] for r in records]


async def pipeline(
    conn: asyncpg.Connection, *, organization_id: uuid.UUID, name: str, stages: Sequence[str]
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A pipeline and its stages in order; returns (pipeline id, stage ids)."""
    pipeline_id = await conn.fetchval(
        "INSERT INTO pipelines (organization_id, name) VALUES ($1, $2) RETURNING id", organization_id, name
    )
    stage_ids = [
        await conn.fetchval(
            "INSERT INTO stages (pipeline_id, organization_id, name, order_index) VALUES ($1, $2, $3, $4) "
            "RETURNING id",
            pipeline_id,
            organization_id,
            stage,
            index,
        )
        for index, stage in enumerate(stages)
    ]
    return pipeline_id, stage_ids


async def lead(
    conn: asyncpg.Connection,
    *,
    organization_id: uuid.UUID,
    contact_id: uuid.UUID,
    pipeline_id: uuid.UUID,
    stage_id: uuid.UUID,
) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO leads (organization_id, contact_id, pipeline_id, stage_id) VALUES ($1, $2, $3, $4) "
        "RETURNING id",
        organization_id,
        contact_id,
        pipeline_id,
        stage_id,
    )
