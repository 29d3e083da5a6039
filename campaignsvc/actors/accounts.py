"""A BD account's sending rules (domain.pacing.AccountPolicy), from its ``bd_accounts`` row (with its ramp's
``ramp_*`` columns when joined: storage/ramps.py) and the service settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from campaignsvc.actors.limiter import AccountSettings
from campaignsvc.config import Settings
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.pacing import UTC, AccountPolicy, Ramp, StepDown
from campaignsvc.domain.validation import parse_zone


def account_zone(row: Mapping[str, Any]) -> ZoneInfo | None:
    return parse_zone(row.get("timezone")) if row.get("timezone") else None


def account_schedule(row: Mapping[str, Any]) -> sched.Schedule | None:
    """The account's own working hours; invalid or incomplete hours mean no restriction."""
    try:
        return sched.Schedule.from_account(
            row.get("timezone"),
            row.get("working_hours_start"),
            row.get("working_hours_end"),
            row.get("working_days"),
        )
    except sched.ScheduleError:
        return None


def account_cap(row: Mapping[str, Any], settings: Settings) -> int:
    """``bd_accounts.max_dm_per_day`` when set, else ``CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY``."""
    cap = row.get("max_dm_per_day")
    return cap if isinstance(cap, int) and cap >= 0 else settings.max_sends_per_account_per_day


def account_ramp(row: Mapping[str, Any] | None) -> Ramp | None:
    """The account's ramp from its ``ramp_*`` columns (storage/ramps.PREFIXED); None without one."""
    if row is None or row.get("ramp_start_per_day") is None:
        return None
    step_down = None
    if row.get("ramp_step_down_budget") is not None and row.get("ramp_step_down_until") is not None:
        at = row.get("ramp_stepped_down_at") or row["ramp_step_down_until"]
        step_down = StepDown(row["ramp_step_down_budget"], at, row["ramp_step_down_until"])
    return Ramp(
        start_per_day=row["ramp_start_per_day"],
        increase_per_day=row["ramp_increase_per_day"],
        max_per_day=row["ramp_max_per_day"],
        started_on=row["ramp_started_on"],
        step_down=step_down,
    )


def ramp_steps_down(reason: str, wait_s: float, settings: Settings) -> bool:
    """Whether a block steps the account's ramp down: any PEER_FLOOD, a FLOOD_WAIT longer than
    ``CAMPAIGN_RAMP_STEP_DOWN_FLOOD_S``."""
    return reason == "peer_flood" or (reason == "flood_wait" and wait_s > settings.ramp_step_down_flood_s)


def stepped_down(row: Mapping[str, Any], settings: Settings, now: dt.datetime) -> StepDown | None:
    """The step-down a block at ``now`` gives the ramp of ``row`` (storage/ramps.for_step_down): half of
    today's budget in the account's zone, held for ``CAMPAIGN_RAMP_COOL_OFF_HOURS``."""
    ramp = account_ramp(row)
    if ramp is None:
        return None
    cool_off = dt.timedelta(hours=settings.ramp_cool_off_hours)
    lowered = ramp.stepped_down(
        account_zone(row) or UTC, now, cap=account_cap(row, settings), cool_off=cool_off
    )
    return lowered.step_down


def account_policy(
    row: Mapping[str, Any], settings: Settings, now: dt.datetime, *, ramp: Mapping[str, Any] | None = None
) -> AccountPolicy:
    """The account's pacing rules from its ``bd_accounts`` row (and ``campaign_account_state``'s block
    reason, and the ramp's ``ramp_*`` columns, when joined; or the ramp's row given as ``ramp``)."""
    blocked = [
        t for t in (row.get("send_blocked_until"), row.get("flood_wait_until")) if t is not None and t > now
    ]
    return AccountPolicy(
        timezone=account_zone(row),
        schedule=account_schedule(row),
        daily_cap=account_cap(row, settings),
        floor_s=settings.min_gap_s,
        margin_s=settings.gap_safety_margin_ms / 1000.0,
        active=bool(row.get("is_active", True)),
        blocked_until=max(blocked) if blocked else None,
        block_reason=row.get("block_reason") or (row.get("flood_reason") if blocked else None),
        restricted=row.get("spam_restricted_at") is not None,
        ramp=account_ramp(ramp if ramp is not None else row),
    )


def account_settings(row: Mapping[str, Any], settings: Settings, now: dt.datetime) -> AccountSettings:
    return AccountSettings(
        policy=account_policy(row, settings, now),
        last_start=row.get("last_send_at"),
        last_start_exact=bool(row.get("last_send_exact")),
        recent_starts=list(row.get("recent_starts") or []),
        rules_version=row.get("rules_version"),
    )
