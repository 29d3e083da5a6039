"""Why a campaign's participants wait (domain/waiting): for given rows, counted by code, and as a filter.

Each account is seen as its running limiter paces it (``live``), else as the database says (its rules,
last send start and counted starts, as a limiter would read them when it starts). Counting and
filtering work on groups of participants that share everything the explanation depends on
(storage/waiting): one aggregate, not one explanation per participant.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import attrs

from campaignsvc.actors.accounts import account_settings, account_zone
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy
from campaignsvc.domain.waiting import (
    FIELDS,
    Account,
    Code,
    Participant,
    Wait,
    explain,
    fields_of,
    missing_of,
    reads_contacts,
)
from campaignsvc.storage import accounts as accounts_db
from campaignsvc.storage import dispatch
from campaignsvc.storage import waiting as db
from campaignsvc.usecases.common import Context

# (account id, campaign id, display name) → the account as its running limiter paces it, or None.
Live = Callable[[uuid.UUID, uuid.UUID, str], Account | None]
NameOf = Callable[[Mapping[str, Any]], str]


@attrs.frozen
class Inputs:
    """What the waiting use cases read besides the database: the time and settings, each account as its
    running limiter paces it, and how an account is named."""

    ctx: Context
    live: Live
    name_of: NameOf


@attrs.frozen
class Scene:
    """The campaign and the accounts its participants are on, as of ``ctx.now``."""

    plan: CampaignPlan
    status: str
    accounts: Mapping[uuid.UUID, Account]
    ctx: Context

    def explain(self, p: Participant, account_id: uuid.UUID | None, rank: int | None) -> Wait | None:
        account = self.accounts.get(account_id) if account_id is not None else None
        return explain(
            p, plan=self.plan, campaign_status=self.status, account=account, now=self.ctx.now, rank=rank
        )

    def code(self, p: Participant, account_id: uuid.UUID | None, rank: int) -> Code | None:
        wait = self.explain(p, account_id, rank)
        return wait.code if wait is not None else None


async def _plan(conn: asyncpg.Connection, campaign_id: uuid.UUID, ctx: Context) -> tuple[CampaignPlan, str]:
    campaign, steps = await dispatch.load_campaign(conn, campaign_id)
    assert campaign is not None  # the caller found it in the organization
    return CampaignPlan.from_rows(campaign, steps, reply_wait_hours=ctx.settings.reply_wait_hours), campaign[
        "status"
    ]


async def scene(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    account_ids: Iterable[uuid.UUID | None],
    inputs: Inputs,
    *,
    plan: tuple[CampaignPlan, str] | None = None,
) -> Scene:
    """The campaign's plan and status (``plan`` when already read) and the given accounts."""
    ctx = inputs.ctx
    plan_, status = plan or await _plan(conn, campaign_id, ctx)
    accounts: dict[uuid.UUID, Account] = {}
    wanted = sorted({a for a in account_ids if a is not None})
    rows = await db.account_rows(conn, org, wanted)
    names = {row["id"]: inputs.name_of(row) for row in rows}
    for account_id, name in names.items():
        account = inputs.live(account_id, campaign_id, name)
        if account is not None:
            accounts[account_id] = account
    idle = [a for a in names if a not in accounts]
    for account_id, state in (await accounts_db.limiter_states(conn, idle)).items():
        known = account_settings(state, ctx.settings, ctx.now)
        accounts[account_id] = Account(
            names[account_id], known.policy, known.last_start, sorted(known.recent_starts)
        )
    return Scene(plan_, status, accounts, ctx)


async def explain_rows(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    inputs: Inputs,
) -> dict[uuid.UUID, Wait | None]:
    """Why each of the given participants waits (None: it is terminal)."""
    facts = await db.page_facts(conn, org, campaign_id, inputs.ctx.now, ids)
    open_ = [f for f in facts if f["status"] in ("pending", "sent")]
    out: dict[uuid.UUID, Wait | None] = {f["id"]: None for f in facts}
    if not open_:
        return out
    s = await scene(conn, org, campaign_id, (f["bd_account_id"] for f in open_), inputs)
    for f in open_:
        p = Participant(
            status=f["status"],
            next_send_at=f["next_send_at"],
            waiting_reason=f["waiting_reason"],
            current_step=f["current_step"],
            wait_since=f["wait_since"],
            last_error=f["last_error"],
            missing=missing_of(s.plan, f["current_step"], {k: f[k] for k in FIELDS}),
        )
        rank = f["rank"] if f["rank"] < db.RANK_CAP else None
        out[f["id"]] = s.explain(p, f["bd_account_id"], rank)
    return out


async def _midnights(
    conn: asyncpg.Connection, org: uuid.UUID, plan: CampaignPlan, ctx: Context
) -> dict[uuid.UUID, dt.datetime]:
    """Each account's next local midnight: its days in its zone, else the campaign's (AccountPolicy)."""
    out = {}
    for row in await db.account_zones(conn, org):
        zone = AccountPolicy(timezone=account_zone(row)).day_zone(plan)
        out[row["id"]] = sched.next_local_midnight(zone, ctx.now)
    return out


@attrs.frozen
class _Group:
    key: tuple[Any, ...]
    n: int
    head: Code | None  # the code of the account's first due participant, when it is in this group
    rest: Code | None  # the code of every other participant of the group


@attrs.frozen
class _Groups:
    """A campaign's open participants in groups (storage/waiting.groups), each with its codes; the id of
    each account's first due participant by the key of its group; whether the groups were keyed by the
    contact fields the steps read; each account's next local midnight."""

    groups: list[_Group]
    heads: dict[tuple[Any, ...], uuid.UUID]
    with_fields: bool
    midnights: dict[uuid.UUID, dt.datetime]


def _time_of_kind(kind: int, now: dt.datetime, midnight: dt.datetime | None) -> dt.datetime | None:
    """A next send time of the kind storage/waiting.groups puts a group in (``when_``), which is all the
    explanation depends on: none, due now, later before its account's next local midnight, or from that
    midnight on (which decides a first send spread past today's cap)."""
    if kind == 0:
        return None
    if kind == 1:
        return now
    if kind == 2:
        return now + dt.timedelta(seconds=1)
    return midnight


async def _groups(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, inputs: Inputs
) -> _Groups:
    ctx = inputs.ctx
    plan = await _plan(conn, campaign_id, ctx)
    fields = reads_contacts(plan[0])
    midnights = await _midnights(conn, org, plan[0], ctx)
    rows = await db.groups(conn, org, campaign_id, ctx.now, midnights, with_fields=fields)
    heads = {db.group_key(h): h["id"] for h in await db.heads(conn, campaign_id, ctx.now, with_fields=fields)}
    s = await scene(conn, org, campaign_id, (r["bd_account_id"] for r in rows), inputs, plan=plan)
    out = []
    for r in rows:
        key = db.group_key(r)
        p = Participant(
            status="pending",
            next_send_at=_time_of_kind(r["when_"], ctx.now, midnights.get(r["bd_account_id"])),
            waiting_reason=r["reason"] or None,
            current_step=r["current_step"],
            missing=missing_of(s.plan, r["current_step"], fields_of(r["mask"])),
        )
        head = s.code(p, r["bd_account_id"], 0) if key in heads else None
        rest = s.code(p, r["bd_account_id"], 1) if r["n"] > (head is not None) else None
        out.append(_Group(key, r["n"], head, rest))
    return _Groups(out, heads, fields, midnights)


async def counts(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, inputs: Inputs
) -> dict[str, int]:
    """Open participants per code (codes with none left out)."""
    total: Counter[str] = Counter()
    for g in (await _groups(conn, org, campaign_id, inputs)).groups:
        if g.head is not None:
            total[g.head] += 1
        if g.rest is not None:
            total[g.rest] += g.n - (g.head is not None)
    return {code: total[code] for code in Code if total[code]}


@attrs.frozen
class Filter:
    """The participants waiting for one code, as a WHERE fragment (storage/waiting.filter_sql) and its
    arguments."""

    with_fields: bool
    args: tuple[Any, ...]

    def sql(self, first_arg: int) -> str:
        return db.filter_sql(first_arg, with_fields=self.with_fields)


async def matching(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, code: Code, inputs: Inputs
) -> Filter:
    """The participants whose code is ``code``."""
    found = await _groups(conn, org, campaign_id, inputs)
    keys, excluded, included = [], [], []
    for g in found.groups:
        if g.rest == code:
            keys.append(g.key)
            if g.head is not None and g.head != code:
                excluded.append(found.heads[g.key])
        elif g.head == code:
            included.append(found.heads[g.key])
    columns = list(zip(*keys, strict=True)) if keys else [(), (), (), (), ()]
    args = (
        *[list(c) for c in columns],
        inputs.ctx.now,
        excluded,
        included,
        list(found.midnights),
        list(found.midnights.values()),
    )
    return Filter(found.with_fields, args)
