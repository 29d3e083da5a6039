"""Account leases (migrations/0015): which instance sends for which BD account, and the epochs that fence
the claims and outcomes of an instance that lost an account.

An instance is alive while its heartbeat (``campaign_instances.heartbeat_at``) is fresher than the lease
length; its leases last as long as it does, so one heartbeat renews all of them. A lease changes hands
only when its owner released it (between two sends) or is no longer alive; every change of hands raises
the lease's epoch. Taking an account over from an instance that died resolves what it left: its
``sending`` rows become in doubt (their participants wait out the quarantine, then the same key is sent
again, R-DEL-2), and the account's last start is moved to the moment the dead instance's leases expired,
because that instance may have started a call up to then (actors/leases.py: it never calls after it).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import attrs

from campaignsvc.storage import dispatch


@attrs.frozen
class Round:
    """What one heartbeat found: ``alive`` False when another process now runs under this instance's id
    (this one must stop); the accounts held, with their epochs; how many instances are alive; the
    heartbeat's time in the database."""

    alive: bool
    held: dict[uuid.UUID, int]
    instances: int
    share: int = 0  # ceil(accounts / instances alive)
    at: datetime | None = None
    taken_over: int = 0  # accounts taken this round from instances that died


async def join(
    conn: asyncpg.Connection, instance: str, boot_id: uuid.UUID, quarantine: timedelta
) -> dict[uuid.UUID, int]:
    """Register this boot under the instance's id and take back its own leases under new epochs (a
    process of an earlier boot under this id is fenced off); what that boot left ``sending`` is in doubt.
    Returns the leases held."""
    await conn.execute(
        """
        INSERT INTO campaign_instances (id, boot_id, started_at, heartbeat_at) VALUES ($1, $2, now(), now())
        ON CONFLICT (id) DO UPDATE SET boot_id = $2, started_at = now(), heartbeat_at = now()
        """,
        instance,
        boot_id,
    )
    rows = await conn.fetch(
        """
        UPDATE campaign_account_leases SET epoch = epoch + 1, taken_at = now()
        WHERE owner = $1 RETURNING bd_account_id, epoch
        """,
        instance,
    )
    held = {r["bd_account_id"]: r["epoch"] for r in rows}
    if held:
        await dispatch.recover_unfinished(conn, quarantine, list(held))
    return held


async def heartbeat(
    conn: asyncpg.Connection,
    instance: str,
    boot_id: uuid.UUID,
    lease: timedelta,
    quarantine: timedelta,
    *,
    release: Sequence[tuple[uuid.UUID, int]] = (),
    take: bool = True,
) -> Round:
    """One round, in one transaction: renew (the heartbeat), release the given leases, and take accounts
    up to a fair share (ceil(accounts / instances alive)) from the free ones and those of dead instances."""
    at = await conn.fetchval(
        "UPDATE campaign_instances SET heartbeat_at = now() WHERE id = $1 AND boot_id = $2 RETURNING now()",
        instance,
        boot_id,
    )
    if at is None:
        return Round(alive=False, held={}, instances=0)
    if release:
        # Every call of a released account started before this (the keeper stopped its limiter and
        # gave up the epoch first): its next owner counts the gap from now at the earliest.
        await conn.execute(
            """
            WITH released AS (
                UPDATE campaign_account_leases l SET owner = NULL, released_at = now()
                FROM unnest($2::uuid[], $3::bigint[]) AS r (id, epoch)
                WHERE l.bd_account_id = r.id AND l.epoch = r.epoch AND l.owner = $1
                RETURNING l.bd_account_id
            )
            INSERT INTO campaign_account_state (bd_account_id, last_send_at, updated_at)
            SELECT bd_account_id, now(), now() FROM released ORDER BY bd_account_id
            ON CONFLICT (bd_account_id) DO UPDATE
            SET last_send_at = GREATEST(campaign_account_state.last_send_at, EXCLUDED.last_send_at),
                updated_at = now()
            """,
            instance,
            [a for a, _ in release],
            [e for _, e in release],
        )
    counts = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM campaign_instances WHERE heartbeat_at > now() - $2::interval)::int AS instances,
               (SELECT count(*) FROM bd_accounts)::int AS accounts,
               (SELECT count(*) FROM campaign_account_leases WHERE owner = $1)::int AS held
        """,
        instance,
        lease,
    )
    instances = max(1, counts["instances"])
    share = math.ceil(counts["accounts"] / instances)
    taken_over = 0
    if take and share > counts["held"]:
        taken_over = await _take(conn, instance, lease, quarantine, share - counts["held"])
    # Instances gone for a day hold nothing worth keeping a row for (their leases count as dead anyway).
    await conn.execute(
        "DELETE FROM campaign_instances WHERE heartbeat_at < now() - interval '1 day' AND id <> $1", instance
    )
    rows = await conn.fetch(
        "SELECT bd_account_id, epoch FROM campaign_account_leases WHERE owner = $1", instance
    )
    return Round(
        alive=True,
        held={r["bd_account_id"]: r["epoch"] for r in rows},
        instances=instances,
        share=share,
        at=at,
        taken_over=taken_over,
    )


async def _take(
    conn: asyncpg.Connection, instance: str, lease: timedelta, quarantine: timedelta, wanted: int
) -> int:
    """Up to ``wanted`` accounts taken; returns how many were a dead instance's."""
    # Accounts seen for the first time get a free lease row.
    await conn.execute(
        """
        INSERT INTO campaign_account_leases (bd_account_id, owner, epoch)
        SELECT a.id, NULL, 0 FROM bd_accounts a
        WHERE NOT EXISTS (SELECT 1 FROM campaign_account_leases l WHERE l.bd_account_id = a.id)
        ON CONFLICT (bd_account_id) DO NOTHING
        """
    )
    # Free ones first, then those of dead instances; rows another instance is taking are skipped.
    taken = await conn.fetch(
        """
        WITH free AS (
            SELECT l.bd_account_id, l.owner AS old_owner,
                   (SELECT i.heartbeat_at FROM campaign_instances i WHERE i.id = l.owner) AS old_heartbeat
            FROM campaign_account_leases l
            WHERE l.owner IS NULL
               OR NOT EXISTS (SELECT 1 FROM campaign_instances i
                              WHERE i.id = l.owner AND i.heartbeat_at > now() - $2::interval)
            ORDER BY l.owner IS NOT NULL, l.bd_account_id
            LIMIT $3
            FOR UPDATE OF l SKIP LOCKED
        )
        UPDATE campaign_account_leases l
        SET owner = $1, epoch = l.epoch + 1, taken_at = now(), released_at = NULL
        FROM free WHERE l.bd_account_id = free.bd_account_id
        RETURNING l.bd_account_id, free.old_owner, free.old_heartbeat
        """,
        instance,
        lease,
        wanted,
    )
    if not taken:
        return 0
    await dispatch.recover_unfinished(conn, quarantine, [r["bd_account_id"] for r in taken])
    dead = [r for r in taken if r["old_owner"] is not None]
    if dead:
        # The dead instance may have started a call until its leases expired: the gap counts from then.
        await conn.execute(
            """
            INSERT INTO campaign_account_state (bd_account_id, last_send_at, updated_at)
            SELECT d.id, d.expired, now() FROM unnest($1::uuid[], $2::timestamptz[]) AS d (id, expired)
            WHERE d.expired IS NOT NULL
            ORDER BY d.id
            ON CONFLICT (bd_account_id) DO UPDATE
            SET last_send_at = GREATEST(campaign_account_state.last_send_at, EXCLUDED.last_send_at),
                updated_at = now()
            """,
            [r["bd_account_id"] for r in dead],
            [r["old_heartbeat"] + lease if r["old_heartbeat"] is not None else None for r in dead],
        )
    return len(dead)


async def leave(conn: asyncpg.Connection, instance: str, boot_id: uuid.UUID) -> None:
    """A clean shutdown: every lease released (its sends are recorded) and the instance gone, so others
    take its accounts at their next heartbeat instead of after the lease."""
    await conn.execute(
        """
        WITH me AS (DELETE FROM campaign_instances WHERE id = $1 AND boot_id = $2 RETURNING id)
        UPDATE campaign_account_leases SET owner = NULL, released_at = now()
        WHERE owner = $1 AND EXISTS (SELECT 1 FROM me)
        """,
        instance,
        boot_id,
    )


async def owners(
    conn: asyncpg.Connection, bd_account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """The instance holding each of the accounts (None: nobody)."""
    rows = await conn.fetch(
        "SELECT bd_account_id, owner FROM campaign_account_leases WHERE bd_account_id = ANY($1::uuid[])",
        list(bd_account_ids),
    )
    return {r["bd_account_id"]: r["owner"] for r in rows}
