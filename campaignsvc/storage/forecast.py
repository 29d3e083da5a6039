"""Forecast reads (usecases/forecast.py): where the campaign's open participants stand, aggregated per
account, step and due time, and the state of the accounts that send for it. Nothing is written."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from campaignsvc.storage import enrolment, ramps


async def positions(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> list[asyncpg.Record]:
    """The open participants (pending, sent) with a due time, per account, step and whether they were
    ever contacted (``fresh``): their due times in order (``dues``; overdue ones keep theirs: the
    dispatcher sends them in that order). One scan of the campaign's due participants, a few rows."""
    return await conn.fetch(
        """
        SELECT cp.bd_account_id, cp.current_step AS step,
               (cp.last_sent_at IS NULL AND cp.first_sent_at IS NULL) AS fresh,
               array_agg(cp.next_send_at ORDER BY cp.next_send_at) AS dues
        FROM campaign_participants cp
        WHERE cp.campaign_id = $1 AND cp.status IN ('pending', 'sent') AND cp.next_send_at IS NOT NULL
          AND cp.bd_account_id IS NOT NULL
        GROUP BY 1, 2, 3
        """,
        campaign_id,
    )


async def unscheduled(conn: asyncpg.Connection, campaign_id: uuid.UUID) -> list[asyncpg.Record]:
    """Participants never scheduled that enrolment will place (pending, no due time, nothing sent, a
    contact it can write to), per account they already have (``bd_account_id`` null when none); and each
    account's participants in the campaign (``load``), which enrolment balances."""
    never = (
        "cp.status = 'pending' AND cp.next_send_at IS NULL AND cp.last_sent_at IS NULL "
        "AND cp.waiting_reason IS DISTINCT FROM 'reply'"
    )
    # Nothing to read (one index probe) unless some participant was never scheduled.
    return await conn.fetch(
        f"""
        SELECT cp.bd_account_id,
               count(*) FILTER (WHERE {never}
                                  AND EXISTS (SELECT 1 FROM contacts ct WHERE ct.id = cp.contact_id AND {enrolment.reachable("ct")}))::int
                   AS n,
               count(*)::int AS load
        FROM campaign_participants cp
        WHERE cp.campaign_id = $1
          AND EXISTS (SELECT 1 FROM campaign_participants cp WHERE cp.campaign_id = $1 AND {never})
        GROUP BY 1
        """,
        campaign_id,
    )


async def accounts(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, ids: Sequence[uuid.UUID], now: datetime
) -> list[asyncpg.Record]:
    """The organization's accounts among ``ids``, in that order: their rules (the ``bd_accounts`` row and
    its ramp's ``ramp_*`` columns), the
    latest send start (as storage/accounts.limiter_states reads it: the later of the latest claim's planned
    start and the latest recorded call), a pause for this campaign, and how many other active campaigns
    have due participants on each."""
    return await conn.fetch(
        f"""
        SELECT a.id, a.is_active, a.timezone, a.working_hours_start, a.working_hours_end, a.working_days,
               a.max_dm_per_day, a.send_blocked_until, a.flood_wait_until, a.flood_reason, a.spam_restricted_at,
               a.display_name, a.first_name, a.last_name, a.username, a.phone_number, a.telegram_id,
               s.block_reason, {ramps.PREFIXED},
               GREATEST(s.last_send_at, (SELECT max(l.sent_at) FROM campaign_sends l
                                         WHERE l.bd_account_id = a.id AND l.status = 'sent')) AS last_send_at,
               p.campaign_id IS NOT NULL AS paused, p.paused_until,
               (SELECT count(*) FROM campaigns c
                WHERE c.organization_id = $1 AND c.id <> $3 AND c.status = 'active' AND c.deleted_at IS NULL
                  AND EXISTS (SELECT 1 FROM campaign_participants o
                              WHERE o.bd_account_id = a.id AND o.campaign_id = c.id
                                AND o.status IN ('pending', 'sent') AND o.next_send_at IS NOT NULL))::int
                   AS other_campaigns
        FROM unnest($2::uuid[]) WITH ORDINALITY AS w (id, n)
        JOIN bd_accounts a ON a.id = w.id AND a.organization_id = $1
        LEFT JOIN campaign_account_state s ON s.bd_account_id = a.id
        LEFT JOIN campaign_account_ramps r ON r.bd_account_id = a.id
        LEFT JOIN campaign_account_pauses p ON p.campaign_id = $3 AND p.bd_account_id = a.id
             AND (p.paused_until IS NULL OR p.paused_until > $4)
        ORDER BY w.n
        """,
        org,
        list(ids),
        campaign_id,
        now,
    )
