"""What domain/waiting.explain needs from the database: the participants' rows (page rows, or the open
participants grouped by everything the explanation depends on), their accounts, and which due
participant is first in line on each account.

A group is (account, stored reason, when — none / due / later today / after the account's next local
midnight, position, which contact fields are empty):
every participant of a group gets the same explanation, except the first due one of an account (its
gap) — so counting and filtering by code costs one aggregate over the open participants, however many.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from campaignsvc.domain.waiting import FIELDS
from campaignsvc.storage.reporting import OWNED

# Each field of a row ``cp``: joined (``ct``, ``co``) in the aggregate, correlated where nothing is joined.
_JOINED = {f: f"ct.{f}" for f in FIELDS} | {"company_name": "co.name"}
_CORRELATED = {f: f"(SELECT ct.{f} FROM contacts ct WHERE ct.id = cp.contact_id)" for f in FIELDS} | {
    "company_name": """(SELECT co.name FROM contacts ct JOIN companies co ON co.id = ct.company_id
                        AND co.organization_id = ct.organization_id WHERE ct.id = cp.contact_id)"""
}
_NO_MASK = "'" + "0" * len(FIELDS) + "'"
_OPEN = "cp.status IN ('pending', 'sent')"
_CONTACT_JOINS = """
    LEFT JOIN contacts ct ON ct.id = cp.contact_id AND ct.organization_id = $2
    LEFT JOIN companies co ON co.id = ct.company_id AND co.organization_id = $2
"""
# When its reply wait started: the later of its last send and its last skipped step (storage/lifecycle).
_WAIT_SINCE = """GREATEST(cp.last_sent_at,
    (SELECT max(s.completed_at) FROM campaign_sends s
     WHERE s.campaign_participant_id = cp.id AND s.idempotency_key IS NOT NULL AND s.status = 'skipped'))"""


def _mask(columns: dict[str, str] | None) -> str:
    """Which of FIELDS are empty, as a string of 0/1; all zeros without ``columns`` (no step reads them)."""
    if columns is None:
        return _NO_MASK
    bits = (f"(CASE WHEN COALESCE(btrim({columns[f]}), '') = '' THEN '1' ELSE '0' END)" for f in FIELDS)
    return "(" + " || ".join(bits) + ")"


def _when(now: str, midnight: str) -> str:
    """0: no next send (a reply wait, or not scheduled yet); 1: due at ``now``; 2: later, before its
    account's next local ``midnight`` (NULL: no such boundary); 3: from then on."""
    return f"""(CASE WHEN cp.next_send_at IS NULL THEN 0 WHEN cp.next_send_at <= {now} THEN 1
                  WHEN {midnight} IS NULL OR cp.next_send_at < {midnight} THEN 2 ELSE 3 END)"""


async def account_zones(conn: asyncpg.Connection, org: uuid.UUID) -> list[asyncpg.Record]:
    """Every account of the organization with its time zone (its days start at its local midnight)."""
    return await conn.fetch("SELECT id, timezone FROM bd_accounts WHERE organization_id = $1", org)


# A due participant's place in its account's queue is counted up to this (the count costs one index entry
# per participant ahead); further back, it is "more than RANK_CAP ahead".
RANK_CAP = 500


def group_key(row: Any) -> tuple[Any, ...]:
    return (row["bd_account_id"], row["reason"], row["when_"], row["current_step"], row["mask"])


async def groups(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    now: datetime,
    midnights: Mapping[uuid.UUID, datetime],
    *,
    with_fields: bool,
) -> list[asyncpg.Record]:
    """The open participants grouped: (bd_account_id, reason, when_, current_step, mask, n), ``midnights``
    each account's next local midnight. ``mask`` says which of FIELDS are empty (only ``with_fields``: the
    contacts are joined only when a step reads them)."""
    return await conn.fetch(
        f"""
        SELECT cp.bd_account_id, COALESCE(cp.waiting_reason, '') AS reason, {_when("$3", "m.at")} AS when_,
               cp.current_step, {_mask(_JOINED if with_fields else None)} AS mask, count(*)::int AS n
        FROM campaign_participants cp {_CONTACT_JOINS if with_fields else ""}
        LEFT JOIN unnest($4::uuid[], $5::timestamptz[]) AS m (id, at) ON m.id = cp.bd_account_id
        WHERE cp.campaign_id = $1 AND {_OPEN} AND {OWNED}
        GROUP BY 1, 2, 3, 4, 5
        """,
        campaign_id,
        org,
        now,
        list(midnights),
        list(midnights.values()),
    )


async def heads(
    conn: asyncpg.Connection, campaign_id: uuid.UUID, now: datetime, *, with_fields: bool
) -> list[asyncpg.Record]:
    """Each account's first due participant of the campaign (in the order the campaign offers them), with
    its group's key."""
    return await conn.fetch(
        f"""
        SELECT cp.id, cp.bd_account_id, COALESCE(cp.waiting_reason, '') AS reason, 1 AS when_, cp.current_step,
               {_mask(_CORRELATED if with_fields else None)} AS mask
        FROM (SELECT DISTINCT ON (d.bd_account_id) d.id
              FROM campaign_participants d
              WHERE d.campaign_id = $1 AND d.status IN ('pending', 'sent') AND d.next_send_at <= $2
                AND d.bd_account_id IS NOT NULL
              ORDER BY d.bd_account_id, d.next_send_at, d.id) h
        JOIN campaign_participants cp ON cp.id = h.id
        """,
        campaign_id,
        now,
    )


async def page_facts(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, now: datetime, ids: Sequence[uuid.UUID]
) -> list[asyncpg.Record]:
    """What explains each of the given participants: its scheduling columns, its contact's fields, when its
    reply wait started and, when due, how many due participants of the campaign on its account go first."""
    return await conn.fetch(
        f"""
        SELECT cp.id, cp.status, cp.next_send_at, cp.waiting_reason, cp.current_step, cp.bd_account_id,
               COALESCE(cp.last_error, cp.metadata->>'lastError') AS last_error,
               CASE WHEN cp.next_send_at IS NULL AND cp.waiting_reason = 'reply' THEN {_WAIT_SINCE} END AS wait_since,
               ct.first_name, ct.last_name, ct.display_name, ct.username, co.name AS company_name,
               CASE WHEN cp.next_send_at <= $3 THEN (
                   SELECT count(*) FROM (
                       SELECT 1 FROM campaign_participants o
                       WHERE o.bd_account_id = cp.bd_account_id AND o.campaign_id = cp.campaign_id
                         AND o.status IN ('pending', 'sent') AND o.next_send_at IS NOT NULL
                         AND (o.next_send_at, o.id) < (cp.next_send_at, cp.id)
                       LIMIT $5) ahead
               ) ELSE 0 END::int AS rank
        FROM unnest($4::uuid[]) AS p (id)
        JOIN campaign_participants cp ON cp.id = p.id AND cp.campaign_id = $1
        {_CONTACT_JOINS}
        WHERE {OWNED}
        """,
        campaign_id,
        org,
        now,
        list(ids),
        RANK_CAP,
    )


def filter_sql(first_arg: int, *, with_fields: bool) -> str:
    """A WHERE fragment for the participants page (a query over ``cp`` joining nothing): the open
    participants of the groups given as arrays (accounts, reasons, whens, steps, masks) at
    ``$first_arg``…``$first_arg+4``, the time at ``$first_arg+5``, except the ids at ``$first_arg+6``,
    plus the ids at ``$first_arg+7``; the accounts' next midnights as arrays at ``$first_arg+8`` (ids) and
    ``$first_arg+9`` (times)."""
    a = first_arg
    midnight = f"""(SELECT m.at FROM unnest(${a + 8}::uuid[], ${a + 9}::timestamptz[]) AS m (id, at)
                    WHERE m.id = cp.bd_account_id)"""
    return f"""({_OPEN} AND (
        ((cp.bd_account_id, COALESCE(cp.waiting_reason, ''), {_when(f"${a + 5}", midnight)}, cp.current_step,
          {_mask(_CORRELATED if with_fields else None)})
         IN (SELECT * FROM unnest(${a}::uuid[], ${a + 1}::text[], ${a + 2}::int[], ${a + 3}::int[], ${a + 4}::text[]))
         AND NOT (cp.id = ANY(${a + 6}::uuid[])))
        OR cp.id = ANY(${a + 7}::uuid[])))"""


async def account_rows(
    conn: asyncpg.Connection, org: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[asyncpg.Record]:
    """The organization's accounts among ``ids`` with their display fields and block reason."""
    return await conn.fetch(
        """
        SELECT a.*, s.block_reason FROM bd_accounts a
        LEFT JOIN campaign_account_state s ON s.bd_account_id = a.id
        WHERE a.id = ANY($1::uuid[]) AND a.organization_id = $2
        """,
        list(ids),
        org,
    )
