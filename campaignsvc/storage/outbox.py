"""The transactional outbox (``campaign_outbox``): events are written in the transaction of the state
change that causes them and relayed to RabbitMQ afterwards, in ``seq`` order (SPEC R-EVT-2).

Every function here is an asyncio function taking the caller's connection, so it runs inside whatever
transaction ``Store.run`` opened.

Order: the relay reads unpublished rows by ``seq``. A ``seq`` is taken at insert time, so two
transactions that commit in the opposite order of their inserts can be relayed in commit order rather
than ``seq`` order; nothing is skipped either way (the relay reads every unpublished row, not "after the
last seq"). Writers that must order events of one campaign serialise on the campaign row first (the
guarded ``UPDATE``), then enqueue.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import attrs

# varchar(100) in the table; RabbitMQ allows 255 for a routing key.
_MAX_TYPE_LENGTH = 100
_MAX_ERROR_LENGTH = 2000
# One relay at a time per database keeps the publish order; the lock is held for one batch.
_RELAY_LOCK_KEY = 0x63737663_6F757462  # "csvc" "outb"

# The timestamp is the transaction's clock, so it matches the state change written with it.
_INSERT = """
INSERT INTO campaign_outbox (id, organization_id, event_type, envelope)
VALUES (
    $1, $2, $3,
    jsonb_set(
        $4::jsonb,
        '{timestamp}',
        to_jsonb(to_char(coalesce($5::timestamptz, now()) AT TIME ZONE 'UTC',
                         'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    )
)
"""


@attrs.frozen
class OutboxRow:
    seq: int
    id: UUID
    event_type: str
    envelope: dict[str, Any]
    attempts: int


async def enqueue(
    conn: asyncpg.Connection,
    *,
    event_type: str,
    organization_id: UUID | None,
    data: dict[str, Any],
    user_id: UUID | None = None,
    correlation_id: str | None = None,
    occurred_at: datetime | None = None,
) -> UUID:
    """Write one event (v1 envelope) to the outbox; returns the event id, which is also the AMQP
    ``message_id``. Call it inside the transaction of the change the event reports; its commit wakes the
    relay (the table's trigger notifies, storage/notifications.py)."""
    if not event_type or len(event_type) > _MAX_TYPE_LENGTH:
        raise ValueError(f"event_type must be 1..{_MAX_TYPE_LENGTH} characters, got {event_type!r}")
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict, got {type(data).__name__}")
    event_id = uuid.uuid4()
    envelope: dict[str, Any] = {
        "id": str(event_id),
        "type": event_type,
        "timestamp": None,  # set by the INSERT from the transaction clock
        "organizationId": str(organization_id) if organization_id is not None else None,
    }
    if user_id is not None:
        envelope["userId"] = str(user_id)
    if correlation_id is not None:
        envelope["correlationId"] = correlation_id
    envelope["data"] = data
    await conn.execute(_INSERT, event_id, organization_id, event_type, envelope, occurred_at)
    return event_id


def insert_many(first: int = 1) -> str:
    """Many events in one statement, in order: parameters ``$first`` to ``$first+3`` are the columns of
    :func:`rows` (another statement can embed it as a data-modifying CTE)."""
    a, b, c, d = (f"${first + i}" for i in range(4))
    return f"""
    INSERT INTO campaign_outbox (id, organization_id, event_type, envelope)
    SELECT e.id, e.org, e.type,
           jsonb_set(e.envelope, '{{timestamp}}',
                     to_jsonb(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
    FROM unnest({a}::uuid[], {b}::uuid[], {c}::varchar[], {d}::jsonb[]) WITH ORDINALITY AS e (id, org, type, envelope, n)
    ORDER BY e.n
    """


def rows(
    events: Sequence[tuple[str, UUID | None, dict[str, Any]]],
) -> tuple[list[UUID], list[UUID | None], list[str], list[dict[str, Any]]]:
    """The columns :func:`insert_many` takes for ``(event_type, organization_id, data)`` events: ids,
    organizations, types, v1 envelopes (their timestamp set by the insert)."""
    ids: list[UUID] = []
    orgs: list[UUID | None] = []
    types: list[str] = []
    envelopes: list[dict[str, Any]] = []
    for event_type, organization_id, data in events:
        if not event_type or len(event_type) > _MAX_TYPE_LENGTH:
            raise ValueError(f"event_type must be 1..{_MAX_TYPE_LENGTH} characters, got {event_type!r}")
        event_id = uuid.uuid4()
        ids.append(event_id)
        orgs.append(organization_id)
        types.append(event_type)
        envelopes.append(
            {
                "id": str(event_id),
                "type": event_type,
                "timestamp": None,
                "organizationId": str(organization_id) if organization_id is not None else None,
                "data": data,
            }
        )
    return ids, orgs, types, envelopes


async def enqueue_many(
    conn: asyncpg.Connection, events: Sequence[tuple[str, UUID | None, dict[str, Any]]]
) -> list[UUID]:
    """:func:`enqueue` for many ``(event_type, organization_id, data)`` in one statement, in order."""
    if not events:
        return []
    columns = rows(events)
    await conn.execute(insert_many(), *columns)
    return columns[0]


async def try_lock_relay(conn: asyncpg.Connection) -> bool:
    """Take the relay's transaction-scoped advisory lock; False when another relay holds it."""
    return await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK_KEY)


async def fetch_unpublished(conn: asyncpg.Connection, limit: int) -> list[OutboxRow]:
    rows = await conn.fetch(
        """
        SELECT seq, id, event_type, envelope, attempts
        FROM campaign_outbox
        WHERE published_at IS NULL
        ORDER BY seq
        LIMIT $1
        """,
        limit,
    )
    return [OutboxRow(**dict(row)) for row in rows]


async def mark_published(conn: asyncpg.Connection, seqs: Sequence[int]) -> int:
    """Mark rows as confirmed by the broker; returns how many changed."""
    if not seqs:
        return 0
    status = await conn.execute(
        """
        UPDATE campaign_outbox SET published_at = clock_timestamp()
        WHERE seq = ANY($1::bigint[]) AND published_at IS NULL
        """,
        list(seqs),
    )
    return _count(status)


async def record_failure(conn: asyncpg.Connection, seq: int, error: str) -> None:
    await conn.execute(
        "UPDATE campaign_outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = $1",
        seq,
        error[:_MAX_ERROR_LENGTH],
    )


async def outbox_backlog(conn: asyncpg.Connection) -> int:
    """Rows not yet confirmed by the broker."""
    return await conn.fetchval("SELECT count(*) FROM campaign_outbox WHERE published_at IS NULL")


async def prune_published(conn: asyncpg.Connection, older_than: timedelta) -> int:
    """Delete rows published more than ``older_than`` ago; returns how many."""
    status = await conn.execute(
        "DELETE FROM campaign_outbox WHERE published_at < now() - $1::interval",
        older_than,
    )
    return _count(status)


def _count(status: str) -> int:
    # asyncpg returns the command tag, e.g. "UPDATE 3" / "DELETE 0".
    return int(status.rsplit(" ", 1)[-1])
