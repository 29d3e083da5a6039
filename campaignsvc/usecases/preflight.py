"""Whether a campaign is ready to launch (``GET /:id/preflight``): every check of domain/preflight.py on
what a start would use — a draft's audience as ``POST /:id/start`` would materialise it (its definition
when it has no participants yet, else its participants), or the open participants of a paused or active
campaign; the accounts as the start picks them, with each one's rules and sends today.

Read only. The database groups the remaining audience by what the checks read of a contact (its fields
as rendering and the steps' conditions tell them apart, its lead stages, its step, whether it is in
another active campaign); each group is judged once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from campaignsvc.actors.accounts import account_policy
from campaignsvc.domain import pacing
from campaignsvc.domain import preflight as pf
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.storage import enrolment as enrolment_db
from campaignsvc.storage import lookups as lookups_db
from campaignsvc.storage import preflight as db
from campaignsvc.usecases.common import Context, campaign
from campaignsvc.usecases.forecast import campaign_forecast
from campaignsvc.usecases.lifecycle import plan_of

BATCH = 5_000
OTHER_CAMPAIGNS_NAMED = 3
NEVER_OPEN = "a sending window never opens"


def _short_id(row: Mapping[str, Any]) -> str:
    return str(row["id"])[:8]


async def preflight(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    ctx: Context,
    *,
    account_name: Callable[[Mapping[str, Any]], str] = _short_id,
) -> pf.Report:
    """Every check; NotFound when the campaign is missing, of another organization or deleted."""
    await campaign(conn, org, campaign_id)
    plan = await plan_of(conn, campaign_id, ctx)
    accounts = await _accounts(conn, plan, ctx, account_name)
    tally = await _tally(conn, plan)
    others: list[str] = []
    if tally.elsewhere.count:
        sample = [c for _, c in tally.elsewhere.sample]
        others = await db.other_campaigns(conn, org, campaign_id, sample, OTHER_CAMPAIGNS_NAMED)
    floor = max((a.policy.floor_s for a in accounts), default=ctx.settings.min_gap_s)
    checks = [
        *pf.step_checks(plan, ctx.now),
        *pf.account_checks(plan, accounts, named=bool(plan.audience.account_ids), now=ctx.now),
        pf.gap_check(plan, floor),
        *pf.audience_checks(tally, other_campaigns=others),
        *pf.render_checks(tally, ai_text=ctx.settings.ai_personalize_text),
    ]
    if any(c.code is pf.PreflightCode.WINDOW_NEVER_OPEN and c.count for c in checks):
        # Nothing can be placed in a window that never opens: no forecast to make.
        checks.append(
            pf.long_campaign_check(remaining_sends=1, finishes_at=None, reason=NEVER_OPEN, now=ctx.now)
        )
    else:
        forecast = await campaign_forecast(conn, org, campaign_id, now=ctx.now, settings=ctx.settings)
        checks.append(
            pf.long_campaign_check(
                remaining_sends=forecast.remaining_sends,
                finishes_at=forecast.finishes_at,
                reason=forecast.reason,
                now=ctx.now,
            )
        )
    return pf.Report.of(checks)


async def _accounts(
    conn: asyncpg.Connection,
    plan: CampaignPlan,
    ctx: Context,
    account_name: Callable[[Mapping[str, Any]], str],
) -> list[pf.Account]:
    """The start's accounts with their rules, and their sends today as ``GET /agents`` counts them, since
    each one's local midnight in the zone its daily cap is kept in."""
    rows = await db.accounts(conn, plan.organization_id, plan.audience.account_ids)
    found = [r for r in rows if r["id"] is not None]
    policies = {r["id"]: account_policy(r, ctx.settings, ctx.now) for r in found}
    since = {a: pacing.day_start(p.day_zone(plan), ctx.now) for a, p in policies.items() if p.active}
    sent = await lookups_db.sent_since(conn, plan.organization_id, since)
    return [
        pf.Account(r["id"], account_name(r), True, policies[r["id"]], sent.get(r["id"], 0))
        if r["id"] is not None
        else pf.Account(r["wanted_id"], str(r["wanted_id"])[:8], False, pacing.AccountPolicy(active=False))
        for r in rows
    ]


async def _tally(conn: asyncpg.Connection, plan: CampaignPlan) -> pf.Tally:
    """The remaining audience, grouped by the database (what the checks read of a contact), the groups
    read :data:`BATCH` at a time."""
    org, campaign_id = plan.organization_id, plan.id
    drafted = not await enrolment_db.participant_count(conn, campaign_id)
    tally = pf.Tally(plan, drafted)
    fields, pipelines = pf.key_fields(plan), sorted(pf.pipelines(plan))
    if drafted:
        count, sample = await db.unreachable(conn, org, campaign_id, plan.audience, pf.SAMPLE_SIZE)
        tally.add({}, sample, count=count, reachable=False)
        ids = [c["id"] for c in await enrolment_db.audience_contacts(conn, org, plan.audience)]
        groups = db.audience_groups(conn, org, campaign_id, ids, fields, pipelines, BATCH)
    else:
        groups = db.participant_groups(conn, org, campaign_id, fields, pipelines, BATCH)
    async for group in groups:
        tally.add(
            group,
            list(zip(group["positions"], group["ids"], strict=True)),
            count=group["n"],
            reachable=group.get("reachable", True),
            from_step=group.get("current_step", 0),
            has_replied=group.get("replied", False),
            lead_stages=dict(zip(group["lead_pipelines"] or (), group["lead_stages"] or (), strict=True)),
            elsewhere=group["elsewhere"],
        )
    return tally
