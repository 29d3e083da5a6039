"""Enrolment: participants that were never scheduled get an account, a channel and a first due time.

Used by ``/start`` (the audience), ``participants/add``, ``participants-bulk`` into a running campaign and
dynamic enrolment. Accounts are assigned round-robin by load (a participant keeps an account it already
has, if that account may send); first sends are spread per account at the campaign's gap, inside the
window and under the daily cap (R-LIFE-1), continuing after what the account already has queued.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from zoneinfo import ZoneInfo

import asyncpg
import attrs

from campaignsvc.actors.accounts import account_cap, account_schedule, account_zone
from campaignsvc.config import Settings
from campaignsvc.domain import schedule as sched
from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import WINDOW_JITTER_S, CampaignPlan
from campaignsvc.errors import CampaignsvcError
from campaignsvc.storage import enrolment as db
from campaignsvc.storage import lifecycle

UTC = ZoneInfo("UTC")
UNREACHABLE = "Contact has no Telegram ID or username"


class NoSendingAccount(CampaignsvcError):
    """None of the campaign's BD accounts is active in the organization."""


@attrs.frozen
class Enrolled:
    scheduled: int
    unreachable: int


def channel_of(telegram_id: str | None, username: str | None) -> str | None:
    """The Telegram peer to write to: the numeric id, else the username without ``@``."""
    tg = (telegram_id or "").strip()
    if tg:
        return tg
    name = (username or "").strip().lstrip("@").strip()
    return name or None


async def enrol(
    conn: asyncpg.Connection, plan: CampaignPlan, *, settings: Settings, now: dt.datetime, rng: random.Random
) -> Enrolled:
    rows = await db.unscheduled(conn, plan.id)
    if not rows:
        return Enrolled(0, 0)
    audience_ids = [uuid.UUID(str(i)) for i in (plan.audience_account_ids or [])]
    accounts = await db.sending_accounts(conn, plan.organization_id, audience_ids)
    if not accounts:
        raise NoSendingAccount("No active BD account available for sending")
    by_id = {a["id"]: a for a in accounts}
    loads = await db.account_loads(conn, plan.id, list(by_id))
    count = {a: loads.get(a, (0, None))[0] for a in by_id}
    order = {a: i for i, a in enumerate(by_id)}

    unreachable: list[uuid.UUID] = []
    assigned: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {a: [] for a in by_id}
    for r in rows:
        channel = channel_of(r["telegram_id"], r["username"])
        if channel is None or r["deleted_at"] is not None:
            unreachable.append(r["id"])
            continue
        account = (
            r["bd_account_id"]
            if r["bd_account_id"] in by_id
            else min(by_id, key=lambda a: (count[a], order[a]))
        )
        count[account] += 1
        assigned[account].append((r["id"], channel))
    await db.mark_unreachable(conn, unreachable, UNREACHABLE)

    first = st.plan_first(plan.steps, now)
    if not isinstance(first, st.Due):
        raise ValueError("a campaign's first visible step must be a delayed step")
    ids, accs, channels, due = [], [], [], []
    for account, members in assigned.items():
        if not members:
            continue
        row = by_id[account]
        schedule = plan.effective_schedule(account_schedule(row))
        zone = account_zone(row) or (plan.schedule.tz if plan.schedule else UTC)
        latest = loads.get(account, (0, None))[1]
        gap = plan.spread_gap_s(settings.min_gap_s)
        start = first.at if latest is None else max(first.at, latest + dt.timedelta(seconds=gap))
        midnight = dt.datetime.combine(start.astimezone(zone).date(), dt.time(), tzinfo=zone)
        times = sched.spread(
            start,
            len(members),
            gap_s=gap,
            daily_cap=plan.daily_cap(account_cap(row, settings)),
            sent_today=await db.sent_since(conn, account, midnight.astimezone(dt.UTC)),
            schedule=schedule,
            day_tz=zone,
            rng=rng,
            jitter_s=WINDOW_JITTER_S,
        )
        for (pid, channel), at in zip(members, times, strict=True):
            ids.append(pid)
            accs.append(account)
            channels.append(channel)
            due.append(at)
    await db.apply_schedule(conn, ids, accs, channels, due, first.index)
    return Enrolled(scheduled=len(ids), unreachable=len(unreachable))


async def respread_overdue(
    conn: asyncpg.Connection,
    plan: CampaignPlan,
    *,
    settings: Settings,
    now: dt.datetime,
    rng: random.Random,
    bd_account_id: uuid.UUID | None = None,
) -> int:
    """After a pause: overdue participants are spread over the window at the gap from now, per account,
    instead of all falling due at once (R-DEL-5)."""
    rows = await lifecycle.overdue(conn, plan.id, bd_account_id, now)
    if not rows:
        return 0
    per_account: dict[uuid.UUID, list[uuid.UUID]] = {}
    for r in rows:
        per_account.setdefault(r["bd_account_id"], []).append(r["id"])
    accounts = {a["id"]: a for a in await db.sending_accounts(conn, plan.organization_id, list(per_account))}
    ids: list[uuid.UUID] = []
    due: list[dt.datetime] = []
    for account, members in per_account.items():
        row = accounts.get(account)
        schedule = plan.effective_schedule(account_schedule(row) if row else None)
        zone = (account_zone(row) if row else None) or (plan.schedule.tz if plan.schedule else UTC)
        midnight = dt.datetime.combine(now.astimezone(zone).date(), dt.time(), tzinfo=zone)
        times = sched.spread(
            now,
            len(members),
            gap_s=plan.spread_gap_s(settings.min_gap_s),
            daily_cap=plan.daily_cap(
                account_cap(row, settings) if row else settings.max_sends_per_account_per_day
            ),
            sent_today=await db.sent_since(conn, account, midnight.astimezone(dt.UTC)),
            schedule=schedule,
            day_tz=zone,
            rng=rng,
            jitter_s=WINDOW_JITTER_S,
        )
        ids += members
        due += times
    await lifecycle.set_due(conn, ids, due)
    return len(ids)
