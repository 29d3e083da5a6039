"""Enrolment: participants that were never scheduled get an account, a channel and a first due time.

Used by ``/start`` (the audience), ``participants/add``, ``participants-bulk`` into a running campaign and
dynamic enrolment. Accounts are assigned round-robin by load (a participant keeps an account it already
has, if that account may send); first sends are spread per account at the campaign's gap, inside the
window and under the daily cap (R-LIFE-1), continuing after what the account already has queued.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
import uuid

import asyncpg
import attrs

from campaignsvc.actors.accounts import account_policy
from campaignsvc.config import Settings
from campaignsvc.domain import pacing
from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.errors import CampaignsvcError
from campaignsvc.storage import enrolment as db
from campaignsvc.storage import lifecycle

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


@attrs.frozen
class _Member:
    key: uuid.UUID  # a participant id (scheduling existing rows) or a contact id (inserting new ones)
    account: uuid.UUID | None  # an account it already has
    telegram_id: str | None
    username: str | None
    deleted: bool = False


@attrs.frozen
class _Placement:
    keys: list[uuid.UUID]
    accounts: list[uuid.UUID]
    channels: list[str]
    due: list[dt.datetime]
    step: int
    unreachable: list[uuid.UUID]


def _assign(
    members: list[_Member], accounts: list[uuid.UUID], loads: dict[uuid.UUID, int]
) -> tuple[dict[uuid.UUID, list[tuple[uuid.UUID, str]]], list[uuid.UUID]]:
    """Each reachable member's account and channel, and the unreachable members' keys. A member keeps an
    account it has among ``accounts``; the others go to the least loaded account (participants already on
    it, ``loads``, plus those assigned so far), the earlier in ``accounts`` on a tie.

    The least loaded account comes from a heap of (load, position) entries that may lag behind the loads
    (a member keeping its account adds to its load without touching the heap): an entry that lags is
    refreshed when it reaches the top. O(members × log accounts); picking the minimum over every account
    for each member took 1.7 s for 100,000 members on 100 accounts."""
    count = {a: loads.get(a, 0) for a in accounts}
    position = {a: i for i, a in enumerate(accounts)}
    heap = [(count[a], position[a], a) for a in accounts]
    heapq.heapify(heap)
    assigned: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {a: [] for a in accounts}
    unreachable: list[uuid.UUID] = []
    for m in members:
        channel = channel_of(m.telegram_id, m.username)
        if channel is None or m.deleted:
            unreachable.append(m.key)
            continue
        if m.account is not None and m.account in count:
            account = m.account
        else:
            while heap[0][0] != count[heap[0][2]]:
                _, i, lagging = heap[0]
                heapq.heapreplace(heap, (count[lagging], i, lagging))
            account = heap[0][2]
            heapq.heapreplace(heap, (count[account] + 1, position[account], account))
        count[account] += 1
        assigned[account].append((m.key, channel))
    return assigned, unreachable


async def _place(
    conn: asyncpg.Connection,
    plan: CampaignPlan,
    members: list[_Member],
    *,
    settings: Settings,
    now: dt.datetime,
    rng: random.Random,
) -> _Placement:
    """An account (round-robin by load; one it already has is kept), a channel and a first due time for
    each member: per account, spread at the campaign's gap from the first step's due time (after what the
    account already has queued), inside the window and under the daily cap."""
    audience_ids = list(plan.audience.account_ids)
    accounts = await db.sending_accounts(conn, plan.organization_id, audience_ids)
    if not accounts:
        raise NoSendingAccount("No active BD account available for sending")
    first = st.plan_first(plan.steps, now)
    if not isinstance(first, st.Due):
        raise ValueError("a campaign's first visible step must be a delayed step")
    by_id = {a["id"]: a for a in accounts}
    loads = await db.account_loads(conn, plan.id, list(by_id))
    assigned, unreachable = _assign(members, list(by_id), {a: n for a, (n, _) in loads.items()})

    placed = _Placement([], [], [], [], first.index, unreachable)
    policies = {a: account_policy(by_id[a], settings, now) for a, chosen in assigned.items() if chosen}
    starts: dict[uuid.UUID, dt.datetime] = {}
    for account, policy in policies.items():
        latest = loads.get(account, (0, None))[1]
        after = policy.after_gap(latest, plan.spread_gap_s(policy.floor_s))
        starts[account] = first.at if after is None else max(first.at, after)
    sent = await db.sent_since_each(
        conn, {a: pacing.day_start(policies[a].day_zone(plan), starts[a]) for a in starts}
    )
    for account, start in starts.items():
        chosen = assigned[account]
        times = policies[account].spread(plan, start, len(chosen), sent_today=sent[account], rng=rng)
        for (key, channel), at in zip(chosen, times, strict=True):
            placed.keys.append(key)
            placed.accounts.append(account)
            placed.channels.append(channel)
            placed.due.append(at)
    return placed


async def enrol(
    conn: asyncpg.Connection, plan: CampaignPlan, *, settings: Settings, now: dt.datetime, rng: random.Random
) -> Enrolled:
    """Schedule the campaign's participants that were never scheduled; the unreachable ones fail."""
    rows = await db.unscheduled(conn, plan.id)
    if not rows:
        return Enrolled(0, 0)
    members = [
        _Member(r["id"], r["bd_account_id"], r["telegram_id"], r["username"], r["deleted_at"] is not None)
        for r in rows
    ]
    placed = await _place(conn, plan, members, settings=settings, now=now, rng=rng)
    await db.mark_unreachable(conn, placed.unreachable, UNREACHABLE)
    await db.apply_schedule(conn, placed.keys, placed.accounts, placed.channels, placed.due, placed.step)
    return Enrolled(scheduled=len(placed.keys), unreachable=len(placed.unreachable))


async def enrol_audience(
    conn: asyncpg.Connection,
    plan: CampaignPlan,
    *,
    settings: Settings,
    now: dt.datetime,
    rng: random.Random,
) -> Enrolled:
    """Start from the audience definition (original-v1 §2.7 path B): its contacts become participants
    already scheduled, in one insert — writing each row once instead of inserting then updating it."""
    contacts = await db.audience_contacts(conn, plan.organization_id, plan.audience)
    if not contacts:
        return Enrolled(0, 0)
    members = [_Member(r["id"], None, r["telegram_id"], r["username"]) for r in contacts]
    placed = await _place(conn, plan, members, settings=settings, now=now, rng=rng)
    order = {r["id"]: i for i, r in enumerate(contacts)}
    inserted = await db.insert_scheduled(
        conn,
        plan.id,
        placed.keys,
        [order[k] for k in placed.keys],
        placed.accounts,
        placed.channels,
        placed.due,
        placed.step,
    )
    return Enrolled(scheduled=inserted, unreachable=len(placed.unreachable))


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
    # An account that no longer sends keeps the service's defaults (its participants wait for it).
    policies = {a: account_policy(accounts.get(a, {}), settings, now) for a in per_account}
    sent = await db.sent_since_each(
        conn, {a: pacing.day_start(policy.day_zone(plan), now) for a, policy in policies.items()}
    )
    ids: list[uuid.UUID] = []
    due: list[dt.datetime] = []
    for account, members in per_account.items():
        ids += members
        due += policies[account].spread(plan, now, len(members), sent_today=sent[account], rng=rng)
    await lifecycle.set_due(conn, ids, due)
    return len(ids)
