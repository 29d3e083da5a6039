"""A BD account's sending rules (domain.pacing.AccountPolicy), from its ``bd_accounts`` row and the service
settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from campaignsvc.actors.limiter import AccountSettings
from campaignsvc.config import Settings
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.pacing import AccountPolicy
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


def account_policy(row: Mapping[str, Any], settings: Settings, now: dt.datetime) -> AccountPolicy:
    """The account's pacing rules from its ``bd_accounts`` row (and ``campaign_account_state``'s block
    reason when joined)."""
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
    )


def account_settings(row: Mapping[str, Any], settings: Settings, now: dt.datetime) -> AccountSettings:
    return AccountSettings(
        policy=account_policy(row, settings, now),
        last_start=row.get("last_send_at"),
        last_start_exact=bool(row.get("last_send_exact")),
        recent_starts=list(row.get("recent_starts") or []),
        rules_version=row.get("rules_version"),
    )
