"""Reads behind the pre-launch checks (usecases/preflight.py): the campaign's accounts with their block
state, the audience's contacts without a channel, and the remaining audience grouped by what the checks
read of each contact (domain/preflight.key_fields), through a cursor. Asyncio functions for
``Store.run``, scoped by organization."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import asyncpg
from asyncpg.cursor import CursorFactory

from campaignsvc.domain.audience import Audience
from campaignsvc.storage import enrolment

_ACCOUNT_COLUMNS = """
    a.id, a.is_active, a.timezone, a.working_hours_start, a.working_hours_end, a.working_days,
    a.max_dm_per_day, a.send_blocked_until, a.flood_wait_until, a.flood_reason, a.spam_restricted_at,
    a.display_name, a.first_name, a.last_name, a.username, a.phone_number, a.telegram_id, s.block_reason
"""


async def accounts(
    conn: asyncpg.Connection, org: uuid.UUID, wanted: Sequence[uuid.UUID]
) -> list[asyncpg.Record]:
    """The audience's accounts in its order, ``id`` NULL for one that is not the organization's; without
    any named, the organization's first active account (the one a start falls back to, as
    storage/enrolment.sending_accounts picks it)."""
    if wanted:
        return await conn.fetch(
            f"""
            SELECT w.id AS wanted_id, {_ACCOUNT_COLUMNS}
            FROM unnest($2::uuid[]) WITH ORDINALITY AS w (id, n)
            LEFT JOIN bd_accounts a ON a.id = w.id AND a.organization_id = $1
            LEFT JOIN campaign_account_state s ON s.bd_account_id = a.id
            ORDER BY w.n
            """,
            org,
            list(wanted),
        )
    return await conn.fetch(
        f"""
        SELECT a.id AS wanted_id, {_ACCOUNT_COLUMNS}
        FROM bd_accounts a LEFT JOIN campaign_account_state s ON s.bd_account_id = a.id
        WHERE a.organization_id = $1 AND a.is_active
        ORDER BY a.created_at, a.id
        LIMIT 1
        """,
        org,
    )


_NO_CHANNEL = f"NOT {enrolment.has_channel('ct')}"


async def unreachable(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, audience: Audience, sample: int
) -> tuple[int, list[tuple[int, uuid.UUID]]]:
    """The contacts the audience selects — as storage/enrolment.audience_contacts does, before its limit —
    that are left out for having neither a Telegram id nor a username: their number and the first
    ``sample`` of them as (position, id)."""
    if audience.contact_ids:
        query = f"""
            SELECT ct.id, w.n AS position
            FROM unnest($2::uuid[]) WITH ORDINALITY AS w (id, n)
            JOIN contacts ct ON ct.id = w.id AND ct.organization_id = $1 AND ct.deleted_at IS NULL
            WHERE {_NO_CHANNEL}
            """
        args: list[object] = [org, list(audience.contact_ids)]
    else:
        query = f"""
            SELECT ct.id, row_number() OVER (ORDER BY ct.created_at, ct.id) AS position
            FROM contacts ct
            WHERE ct.organization_id = $1 AND ct.deleted_at IS NULL AND {_NO_CHANNEL}
              AND ($2::uuid IS NULL OR ct.company_id = $2)
              AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM leads l WHERE l.contact_id = ct.id AND l.pipeline_id = $3
                                               AND l.organization_id = $1 AND l.deleted_at IS NULL))
              AND (NOT $4 OR NOT EXISTS (SELECT 1 FROM campaign_participants cp JOIN campaigns c ON c.id = cp.campaign_id
                                         WHERE cp.contact_id = ct.id AND c.organization_id = $1 AND c.deleted_at IS NULL
                                           AND c.id <> $5))
            """
        args = [org, audience.company_id, audience.pipeline_id, audience.only_new, campaign_id]
    row = await conn.fetchrow(
        f"""
        SELECT count(*)::int AS n,
               (array_agg(u.position ORDER BY u.position))[1:{int(sample)}] AS positions,
               (array_agg(u.id ORDER BY u.position))[1:{int(sample)}] AS ids
        FROM ({query}) u
        """,
        *args,
    )
    return row["n"], list(zip(row["positions"] or (), row["ids"] or (), strict=True))


# The contact fields a group may be keyed by (domain/preflight.key_fields), as columns of ct and co.
_COLUMNS = {
    "first_name": "ct.first_name",
    "last_name": "ct.last_name",
    "display_name": "ct.display_name",
    "username": "ct.username",
    "email": "ct.email",
    "phone": "ct.phone",
    "telegram_id": "ct.telegram_id",
    "company_name": "co.name",
}


SAMPLE = 5  # contacts of each group returned, the first by position


def _keyed(fields: Mapping[str, bool]) -> str:
    """Each field as it is (True) or as its stand-in (False): 'x' when it holds a letter or a digit, else
    the value itself ('' for NULL)."""
    return ",\n".join(
        f"{_COLUMNS[name]} AS {name}"
        if exact
        else f"CASE WHEN {_COLUMNS[name]} ~ '[[:alnum:]]' THEN 'x' ELSE COALESCE({_COLUMNS[name]}, '') END AS {name}"
        for name, exact in fields.items()
    )


def _grouped(source: str, keys: Sequence[str], fields: Mapping[str, bool], pipelines: bool) -> str:
    """The contacts of ``source`` (a FROM clause naming them ``ct``, with ``pos``, ``ct_id``, their columns
    and those of ``keys``) grouped by ``keys``, their keyed fields, their leads' (pipeline, stage) in the pipelines $3 names, and whether each is an open
    participant of another active campaign of the organization ($1) than $2: per group, its size and its
    first contacts by ``pos``."""
    leads = (
        """
        LEFT JOIN (SELECT l.contact_id, array_agg(l.pipeline_id ORDER BY l.pipeline_id) AS pipelines,
                          array_agg(l.stage_id ORDER BY l.pipeline_id) AS stages
                   FROM leads l
                   WHERE l.organization_id = $1 AND l.deleted_at IS NULL AND l.pipeline_id = ANY($3::uuid[])
                   GROUP BY l.contact_id) ls ON ls.contact_id = ct.ct_id
        """
        if pipelines
        else "LEFT JOIN (SELECT NULL::uuid AS contact_id, NULL::uuid[] AS pipelines, NULL::uuid[] AS stages) ls ON false"
    )
    names = [*keys, *fields, "lead_pipelines", "lead_stages", "elsewhere"]
    return f"""
        WITH a AS MATERIALIZED (
            SELECT pos, ct_id AS id, {", ".join(keys) + "," if keys else ""}
                   {_keyed(fields)},
                   ls.pipelines AS lead_pipelines, ls.stages AS lead_stages,
                   EXISTS (SELECT 1 FROM campaign_participants op JOIN campaigns oc ON oc.id = op.campaign_id
                           WHERE op.contact_id = ct_id AND op.campaign_id <> $2 AND op.status IN ('pending', 'sent')
                             AND oc.organization_id = $1 AND oc.status = 'active' AND oc.deleted_at IS NULL)
                       AS elsewhere
            {source}
            LEFT JOIN companies co ON co.id = ct.company_id AND co.organization_id = ct.organization_id
            {leads}
        )
        SELECT {", ".join(names)}, count(*)::int AS n,
               (array_agg(pos ORDER BY pos))[1:{SAMPLE}] AS positions,
               (array_agg(id ORDER BY pos))[1:{SAMPLE}] AS ids
        FROM a
        GROUP BY {", ".join(names)}
    """


def audience_groups(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    contact_ids: Sequence[uuid.UUID],
    fields: Mapping[str, bool],
    pipelines: Sequence[uuid.UUID],
    prefetch: int,
) -> CursorFactory:
    """A cursor (``async for``, inside a transaction) over the groups of these contacts, ``pos`` being
    each one's place in ``contact_ids``."""
    ids = f"${3 + bool(pipelines)}"
    source = f"""
        FROM (SELECT w.n AS pos, ct.id AS ct_id, ct.company_id, ct.organization_id, ct.first_name, ct.last_name,
                     ct.display_name, ct.username, ct.email, ct.phone, ct.telegram_id
              FROM unnest({ids}::uuid[]) WITH ORDINALITY AS w (id, n)
              JOIN contacts ct ON ct.id = w.id AND ct.organization_id = $1) ct
    """
    return conn.cursor(
        _grouped(source, [], fields, bool(pipelines)),
        org,
        campaign_id,
        *([list(pipelines)] if pipelines else []),
        list(contact_ids),
        prefetch=prefetch,
    )


def participant_groups(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    fields: Mapping[str, bool],
    pipelines: Sequence[uuid.UUID],
    prefetch: int,
) -> CursorFactory:
    """A cursor over the groups of the campaign's participants with something left to send (pending or
    sent), ``pos`` being each one's place in the queue, keyed also by the step each is at, whether it
    replied, and whether it can be sent to (its channel, or a contact of the organization, not deleted,
    with a Telegram id or username to take one from)."""
    source = f"""
        FROM (SELECT row_number() OVER (ORDER BY cp.enqueue_order, cp.created_at, cp.id) AS pos,
                     cp.contact_id AS ct_id, cp.current_step, cp.replied_at IS NOT NULL AS replied,
                     (c.id IS NOT NULL AND c.deleted_at IS NULL
                      AND (NULLIF(cp.channel_id, '') IS NOT NULL OR {enrolment.has_channel("c")}))
                         AS reachable,
                     c.company_id, c.organization_id, c.first_name, c.last_name, c.display_name, c.username,
                     c.email, c.phone, c.telegram_id
              FROM campaign_participants cp
              LEFT JOIN contacts c ON c.id = cp.contact_id AND c.organization_id = $1
              WHERE cp.campaign_id = $2 AND cp.status IN ('pending', 'sent')) ct
    """
    return conn.cursor(
        _grouped(source, ["current_step", "replied", "reachable"], fields, bool(pipelines)),
        org,
        campaign_id,
        *([list(pipelines)] if pipelines else []),
        prefetch=prefetch,
    )


async def other_campaigns(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    contact_ids: Sequence[uuid.UUID],
    limit: int,
) -> list[str]:
    """Names of the other active campaigns these contacts are open participants of (at most ``limit``)."""
    rows = await conn.fetch(
        """
        SELECT c.name FROM campaigns c
        WHERE c.organization_id = $1 AND c.id <> $2 AND c.status = 'active' AND c.deleted_at IS NULL
          AND EXISTS (SELECT 1 FROM campaign_participants cp WHERE cp.campaign_id = c.id
                      AND cp.contact_id = ANY($3::uuid[]) AND cp.status IN ('pending', 'sent'))
        ORDER BY c.name, c.id
        LIMIT $4
        """,
        org,
        campaign_id,
        list(contact_ids),
        limit,
    )
    return [r["name"] for r in rows]
