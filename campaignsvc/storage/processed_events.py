"""Inbound events already handled (``campaign_processed_events``): idempotency by event id.

A handler calls :func:`claim` inside the transaction that applies the event. A redelivery of the same
event finds the row and changes nothing; if the handler's transaction rolls back, the claim rolls back
with it and the next delivery is handled for real.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg


async def claim(conn: asyncpg.Connection, event_id: UUID, event_type: str) -> bool:
    """True when this is the first time ``event_id`` is seen (the caller applies the event); False for
    a duplicate (the caller does nothing)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO campaign_processed_events (event_id, event_type) VALUES ($1, $2)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING true
        """,
        event_id,
        event_type,
    )
    return bool(inserted)


async def prune(conn: asyncpg.Connection, older_than: timedelta) -> int:
    """Forget events processed more than ``older_than`` ago; returns how many rows went.

    The retention must exceed the longest time a duplicate can still arrive (broker redelivery after an
    outage, a gateway replaying ``POST /api/campaigns/events``)."""
    status = await conn.execute(
        "DELETE FROM campaign_processed_events WHERE processed_at < now() - $1::interval",
        older_than,
    )
    return int(status.rsplit(" ", 1)[-1])
