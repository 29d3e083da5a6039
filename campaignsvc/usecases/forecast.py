"""When a campaign will finish (GET /:id/forecast, docs/visibility.md): the campaign's remaining sends read
as they stand — for a draft, its audience as a start now would enrol it — and simulated by
domain/forecast.py with each account's rules and history. Reads only."""

from __future__ import annotations

import datetime as dt
import heapq
import random
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import attrs

from campaignsvc.actors.accounts import account_policy
from campaignsvc.actors.enrolment import channel_of
from campaignsvc.config import Settings
from campaignsvc.domain import forecast as fc
from campaignsvc.domain import pacing
from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy
from campaignsvc.domain.status import CampaignStatus
from campaignsvc.storage import enrolment as enrolment_db
from campaignsvc.storage import forecast as db
from campaignsvc.storage import reporting as reporting_db
from campaignsvc.usecases.common import Context, campaign
from campaignsvc.usecases.lifecycle import plan_of

NO_ACCOUNT = "No active BD account available for sending"
PAUSED = "The campaign is paused: the forecast assumes it is resumed now."
DRAFT = "A draft: the forecast enrols its participants as a start now would, and sends from now."


PositionsByAccount = dict[uuid.UUID, list[fc.Queue]]


@attrs.frozen
class Prepared:
    """What the forecast simulates, read; :meth:`compute` runs the simulation (pure, CPU-bound: a caller
    on the event loop may run it in a thread)."""

    plan: CampaignPlan
    accounts: tuple[fc.AccountInput, ...]
    now: dt.datetime
    extra_accounts: int
    notes: tuple[str, ...]
    answer: fc.Forecast | None = None  # known without simulating (no account can send)

    def compute(self) -> fc.Forecast:
        if self.answer is not None:
            return self.answer
        return fc.forecast(
            self.plan, self.accounts, now=self.now, extra_accounts=self.extra_accounts, notes=self.notes
        )


async def campaign_forecast(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    now: dt.datetime,
    settings: Settings,
    extra_accounts: int = 0,
) -> fc.Forecast:
    """The campaign's forecast at ``now``, with ``extra_accounts`` more accounts like its median one.
    NotFound when the campaign is missing, of another organization or deleted. The simulation runs here
    (well under a second for 100,000 participants, docs/visibility.md); :func:`prepare` and
    :meth:`Prepared.compute` do the same in two parts."""
    prepared = await prepare(
        conn, org, campaign_id, now=now, settings=settings, extra_accounts=extra_accounts
    )
    return prepared.compute()


async def prepare(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    now: dt.datetime,
    settings: Settings,
    extra_accounts: int = 0,
) -> Prepared:
    """Read what :func:`campaign_forecast` simulates (NotFound as it)."""
    await reporting_db.tune(conn)  # short scans the planner prices high: no JIT (a quarter second here)
    row = await campaign(conn, org, campaign_id)
    plan = await plan_of(conn, campaign_id, Context(settings, now, random.Random()))
    notes: list[str] = []
    first = st.plan_first(plan.steps, now)
    found: PositionsByAccount | fc.Forecast
    if row["status"] == CampaignStatus.DRAFT and not await enrolment_db.participant_count(conn, campaign_id):
        found = await _audience(conn, org, plan, first, now=now, notes=notes)
        order = list(found) if isinstance(found, dict) else []
    else:
        if row["status"] == CampaignStatus.PAUSED:
            notes.append(PAUSED)
        elif row["status"] == CampaignStatus.DRAFT:
            notes.append(DRAFT)
        found, order = await _participants(conn, org, plan, first, now=now, notes=notes)
    if isinstance(found, fc.Forecast):
        return Prepared(plan, (), now, extra_accounts, tuple(notes), answer=found)
    accounts = await _accounts(conn, org, plan, order, found, now=now, settings=settings)
    return Prepared(plan, tuple(accounts), now, extra_accounts, tuple(notes))


async def _audience(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    plan: CampaignPlan,
    first: st.Plan,
    *,
    now: dt.datetime,
    notes: list[str],
) -> PositionsByAccount | fc.Forecast:
    """A draft without participants: the audience's contacts start can write to, shared round-robin over
    the campaign's active accounts in order (enrolment's least-loaded rule on empty accounts), all due at
    the first step's due time."""
    contacts = await enrolment_db.audience_contacts(conn, org, plan.audience)
    reachable = sum(1 for r in contacts if channel_of(r["telegram_id"], r["username"]) is not None)
    sending = [
        r["id"] for r in await enrolment_db.sending_accounts(conn, org, list(plan.audience.account_ids))
    ]
    notes.append(
        f"A draft: the forecast enrols its audience as a start now would — {reachable} contact"
        f"{'s' if reachable != 1 else ''} over {len(sending)} account{'s' if len(sending) != 1 else ''}, "
        "round-robin — and sends from now."
    )
    if not sending:
        return fc.unsendable(plan, reachable, NO_ACCOUNT, now=now, notes=notes)
    out: PositionsByAccount = {a: [] for a in sending}
    if isinstance(first, st.Due):
        for i, account in enumerate(sending):
            n = reachable // len(sending) + (1 if i < reachable % len(sending) else 0)
            if n:
                out[account].append(fc.Queue.of(first.index, first.at, n, fresh=True))
    return out


async def _participants(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    plan: CampaignPlan,
    first: st.Plan,
    *,
    now: dt.datetime,
    notes: list[str],
) -> tuple[PositionsByAccount | fc.Forecast, list[uuid.UUID]]:
    """The participants as they stand; those never scheduled placed as enrolment will place them (an
    account they have among the sending ones, else the least loaded), after what each account has
    queued."""
    out: PositionsByAccount = {}
    for r in await db.positions(conn, plan.id):
        queue = fc.Queue(r["step"], tuple(r["dues"]), r["fresh"], placed=r["fresh"])
        out.setdefault(r["bd_account_id"], []).append(queue)
    waiting = await db.unscheduled(conn, plan.id)
    if not any(r["n"] for r in waiting) or not isinstance(first, st.Due):
        return out, list(out)
    sending = [
        r["id"] for r in await enrolment_db.sending_accounts(conn, org, list(plan.audience.account_ids))
    ]
    if not sending:
        if not out:
            return fc.unsendable(plan, sum(r["n"] for r in waiting), NO_ACCOUNT, now=now, notes=notes), []
        return out, list(out)
    for account, n in _assign(sending, waiting).items():
        queued = [q.dues[-1] for q in out.get(account, ()) if q.fresh and q.dues]
        due = max([first.at, *queued])
        out.setdefault(account, []).append(fc.Queue.of(first.index, due, n, fresh=True))
    return out, list(dict.fromkeys([*out, *sending]))


def _assign(sending: Sequence[uuid.UUID], rows: Sequence[Mapping[str, Any]]) -> dict[uuid.UUID, int]:
    """How many never-scheduled participants each sending account gets: those it already holds, and the
    others one by one to the least loaded (participants of the campaign on it), the earlier on a tie."""
    position = {a: i for i, a in enumerate(sending)}
    loads = {a: 0 for a in sending}
    counts = {a: 0 for a in sending}
    free = 0
    for r in rows:
        account = r["bd_account_id"]
        if account in position:
            loads[account] += r["load"]
            counts[account] += r["n"]
        else:
            free += r["n"]
    heap = [(loads[a], position[a], a) for a in sending]
    heapq.heapify(heap)
    for _ in range(free):
        load, i, account = heap[0]
        counts[account] += 1
        heapq.heapreplace(heap, (load + 1, i, account))
    return {a: n for a, n in counts.items() if n}


def _name(row: Mapping[str, Any]) -> str:
    full = " ".join(p for p in ((row["first_name"] or "").strip(), (row["last_name"] or "").strip()) if p)
    for candidate in (row["display_name"], full, row["username"], row["phone_number"], row["telegram_id"]):
        if candidate and str(candidate).strip():
            return str(candidate).strip()
    return str(row["id"])[:8]


async def _accounts(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    plan: CampaignPlan,
    order: Sequence[uuid.UUID],
    positions: PositionsByAccount,
    *,
    now: dt.datetime,
    settings: Settings,
) -> list[fc.AccountInput]:
    """Each account's rules and history: the row, its latest start, its sends since the start of today in
    the zone its cap counts in."""
    rows = {r["id"]: r for r in await db.accounts(conn, org, plan.id, list(order), now)}
    policies = {a: account_policy(r, settings, now) for a, r in rows.items()}
    since = {a: pacing.day_start(p.day_zone(plan), now) for a, p in policies.items()}
    sent = await enrolment_db.sent_since_each(conn, since) if since else {}
    out = []
    for account in order:
        held = tuple(positions.get(account, ()))
        r = rows.get(account)
        if r is None:  # not (or no longer) an account of the organization: nothing sends for it
            out.append(fc.AccountInput(account, AccountPolicy(active=False), held, name=str(account)))
            continue
        out.append(
            fc.AccountInput(
                account,
                policies[account],
                held,
                name=_name(r),
                last_start=r["last_send_at"],
                sent_today=sent.get(account, 0),
                campaigns=1 + r["other_campaigns"],
                paused=r["paused"],
                paused_until=r["paused_until"],
            )
        )
    return out
