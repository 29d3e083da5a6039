"""Turning the plan into things that run: the sandbox's config, the service's settings and the campaigns
(created and started through the HTTP API)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from campaignsvc.config import Settings
from campaignsvc.demo import plan
from campaignsvc.demo.client import Api
from campaignsvc.demo.seeding import DemoOrg
from campaignsvc.sandbox import SandboxConfig


@attrs.frozen
class Started:
    id: str
    name: str
    spec: plan.CampaignSpec
    participants: int


@attrs.frozen
class Skipped:
    name: str
    reason: str


def recipient_errors(org: DemoOrg, *, quick: bool) -> dict[str, str]:
    """contactId → the error the sandbox answers for it (privacy settings, deleted account…)."""
    errors: dict[str, str] = {}
    for spec in plan.CAMPAIGNS:
        for index, kind in spec.failing.items():
            if index in (spec.quick_contacts if quick else spec.contacts):
                errors[str(org.contacts[index])] = kind
    return errors


def sandbox_config(speed: plan.Speed, settings: Settings) -> SandboxConfig:
    low, high = plan.REPLY_DELAY_S
    return SandboxConfig(
        seed=7,
        latency_ms=plan.LATENCY_MS[0],
        jitter_ms=plan.LATENCY_MS[1],
        account_min_gap_s=speed.seconds(plan.TELEGRAM_MIN_GAP_S),
        flood_wait_s=speed.seconds(plan.FLOOD_WAIT_S),
        reply_rate=plan.REPLY_RATE,
        reply_delay_s=(speed.seconds(low), speed.seconds(high)),
        internal_auth_secret=settings.internal_auth_secret,
        events_ingest_secret=settings.events_ingest_secret,
        delivery_backoff_s=0.2,
    )


def service_settings(settings: Settings, speed: plan.Speed, *, messaging_url: str, port: int) -> Settings:
    return attrs.evolve(
        settings,
        host="127.0.0.1",
        port=port,
        messaging_service_url=messaging_url,
        messaging_timeout_s=10.0,
        min_gap_ms_same_bd_account=max(1, round(speed.seconds(plan.ACCOUNT_FLOOR_S) * 1000)),
        in_doubt_retry_after_s=max(1, round(speed.seconds(plan.IN_DOUBT_RETRY_S))),
        shutdown_grace_s=min(settings.shutdown_grace_s, 5.0),
    )


def capped_out(throttle: list[dict[str, Any]]) -> set[str]:
    """Accounts that have used their whole daily cap."""
    return {
        str(a["bdAccountId"])
        for a in throttle
        if a.get("dailyCap") and a.get("sentToday", 0) >= a["dailyCap"]
    }


async def create_campaigns(
    api: Api, org: DemoOrg, speed: plan.Speed, *, quick: bool, now: dt.datetime
) -> tuple[list[Started], list[Skipped]]:
    capped = capped_out(await api.throttle())
    late_stages = {
        "pipelineId": str(org.pipeline_id),
        "stageIds": [str(org.stages[s]) for s in ("Qualified", "Won")],
    }
    started: list[Started] = []
    skipped: list[Skipped] = []
    for spec in plan.CAMPAIGNS:
        name = f"{spec.name} #{org.runs}"
        if all(str(org.accounts[a]) in capped for a in spec.accounts):
            who = " and ".join(
                f"{a.first_name} {a.last_name}" for a in plan.ACCOUNTS if a.key in spec.accounts
            )
            skipped.append(
                Skipped(
                    name,
                    f"{who} used the daily cap in an earlier run today (--fresh starts from an empty database)",
                )
            )
            continue
        low, high = (speed.seconds(g) for g in spec.gap_s)
        audience: dict[str, Any] = {"bdAccountIds": [str(org.accounts[a]) for a in spec.accounts]}
        if low >= 1 and high - low >= 1:
            audience["sendDelayMinSeconds"], audience["sendDelayMaxSeconds"] = round(low), round(high)
        else:
            # A range is whole seconds in the API; below that the gap is the middle of the range.
            audience["sendDelaySeconds"] = (low + high) / 2
        if spec.reply_wait_s is not None:
            audience["replyWaitHours"] = speed.hours(spec.reply_wait_s)
        body: dict[str, Any] = {"name": name, "targetAudience": audience}
        if spec.scheduled:
            body["schedule"] = plan.working_window(now)
        cid = await api.create_campaign(body)
        for index, step in enumerate(spec.steps):
            hours, minutes = speed.step_delay(step.delay_s)
            fields: dict[str, Any] = {
                "delayHours": hours,
                "delayMinutes": minutes,
                "triggerType": step.trigger,
            }
            conditions = plan.resolve_conditions(step.conditions, late_stages)
            if conditions:
                fields["conditions"] = conditions
            await api.add_step(cid, index, step.content, fields)
        indexes = spec.quick_contacts if quick else spec.contacts
        added = await api.add_participants(cid, [org.contacts[i] for i in indexes])
        started.append(Started(cid, name, spec, added["inserted"]))
    for campaign in started:
        await api.start(campaign.id)
    return started, skipped
