"""An account's pacing rules, in one place (SPEC R-THR): every question about when a BD account may send
is answered here — by the live limiter, by enrolment when it spreads first sends, and by the views.

:class:`AccountPolicy` holds the account's rules (gap floor and margin, daily cap in its time zone, working
window, block, restriction); the account's history comes in as arguments (its last send start and its
recent send starts, sorted). Pure: no clock, no I/O, randomness only from the ``rng`` passed in.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import attrs

from campaignsvc.domain import schedule as sched
from campaignsvc.domain.campaign import WINDOW_JITTER_S, CampaignPlan

UTC = ZoneInfo("UTC")

# What an account is doing as far as its rules tell, apart from sending (the limiter adds ``sending`` and
# ``waiting_gap`` while it works).
IDLE, RESTRICTED, FLOOD_BLOCKED, DAILY_CAP = "idle", "restricted", "flood_blocked", "daily_cap"


@attrs.frozen
class Start:
    """The request may start at ``at``."""

    at: datetime


@attrs.frozen
class Defer:
    """The request cannot start before ``until``: it goes back to its campaign (``reason``: cap, window)."""

    until: datetime
    reason: str


@attrs.frozen
class Hold:
    """Nothing of the account may start: ``state`` (restricted, flood_blocked) until ``until`` (None:
    until something changes)."""

    state: str
    until: datetime | None


def day_start(zone: ZoneInfo, at: datetime) -> datetime:
    """The first instant of ``at``'s local day in ``zone``, where that day's sends start counting."""
    return sched.previous_local_midnight(zone, at)


def sent_since(starts: Sequence[datetime], since: datetime) -> int:
    """How many of the sorted ``starts`` are at or after ``since``."""
    return len(starts) - bisect.bisect_left(starts, since)


def sent_today(starts: Sequence[datetime], zone: ZoneInfo, now: datetime) -> int:
    """How many of the sorted ``starts`` fall on ``now``'s local day in ``zone``."""
    return sent_since(starts, day_start(zone, now))


@attrs.frozen
class AccountPolicy:
    """One BD account's sending rules."""

    timezone: ZoneInfo | None = None
    schedule: sched.Schedule | None = None  # the account's own working hours
    daily_cap: int = 20  # 0 = no cap
    floor_s: float = 360.0
    # Added to every non-zero gap: calls that start exactly at the gap's end reached Messaging a few ms
    # under it (loopback jitter); the gap is a promise about what Telegram sees (CAMPAIGN_GAP_SAFETY_MARGIN_MS).
    margin_s: float = 0.0
    active: bool = True
    restricted: bool = False  # spam-restricted: no sends until cleared
    blocked_until: datetime | None = None
    block_reason: str | None = None

    # --- the parts ---------------------------------------------------------------------------------

    def day_zone(self, plan: CampaignPlan | None = None) -> ZoneInfo:
        """Days are counted in the account's zone, else the campaign's, else UTC (R-THR-1)."""
        if self.timezone is not None:
            return self.timezone
        if plan is not None and plan.schedule is not None:
            return plan.schedule.tz
        return UTC

    def cap(self, plan: CampaignPlan) -> int:
        """Sends per local day the campaign may use on this account (0 = no cap)."""
        return plan.daily_cap(self.daily_cap)

    def window(self, plan: CampaignPlan) -> sched.Schedule | None:
        """The campaign's window; without one, the account's working hours; else any time."""
        return plan.effective_schedule(self.schedule)

    def gap(self, plan: CampaignPlan, rng: random.Random) -> float:
        """A sample of the campaign's gap range, never below the account's floor."""
        return plan.gap_s(self.floor_s, rng)

    def padded(self, gap_s: float) -> float:
        """The gap as kept: with the margin, except a zero gap, which stays zero."""
        return gap_s + self.margin_s if gap_s > 0 else 0.0

    def after_gap(self, last_start: datetime | None, gap_s: float) -> datetime | None:
        """The earliest start ``gap_s`` (padded) after the last one."""
        if last_start is None:
            return None
        return last_start + timedelta(seconds=self.padded(gap_s))

    # --- the decisions -----------------------------------------------------------------------------

    def hold(self, now: datetime) -> Hold | None:
        """Whether the whole account is held, whatever the campaign."""
        if not self.active or self.restricted:
            return Hold(RESTRICTED, None)
        if self.blocked_until is not None and self.blocked_until > now:
            return Hold(FLOOD_BLOCKED, self.blocked_until)
        return None

    def decide(
        self,
        plan: CampaignPlan,
        *,
        due_at: datetime,
        now: datetime,
        last_start: datetime | None,
        gap_s: float,
        starts: Sequence[datetime],
        rng: random.Random,
    ) -> Start | Defer:
        """When the campaign's send due at ``due_at`` may start, the account not being held: after its
        due time and the gap, on a day under the cap, inside the window — or when to offer it again."""
        window = self.window(plan)
        zone = self.day_zone(plan)
        cap = self.cap(plan)
        if cap and sent_today(starts, zone, now) >= cap:
            return Defer(
                sched.place(window, sched.next_local_midnight(zone, now), rng, WINDOW_JITTER_S), "cap"
            )
        start_at = max(now, due_at)
        earliest = self.after_gap(last_start, gap_s)
        if earliest is not None:
            start_at = max(start_at, earliest)
        # Checked when the send could start: a window that closes within the gap hands the request back
        # now instead of holding the account idle until then while other campaigns wait.
        if not sched.is_open(window, start_at):
            return Defer(sched.place(window, start_at, rng, WINDOW_JITTER_S), "window")
        return Start(start_at)

    def next_start(
        self,
        now: datetime,
        *,
        sent_today: int,
        last_start: datetime | None = None,
        gap_s: float | None = None,
        cap_until: datetime | None = None,
    ) -> datetime | None:
        """When the account may send next, all rules taken together: the gap (``gap_s``, else the floor),
        a block, and the day's cap (``cap_until`` when a campaign was already told, else the account's next
        local midnight once its own cap is used: ``sent_today`` counted in :meth:`day_zone`). None: at once
        (or never, while restricted)."""
        after = self.after_gap(last_start, self.floor_s if gap_s is None else gap_s)
        candidates = [t for t in (after, self.blocked_until) if t is not None and t > now]
        if cap_until is not None and cap_until > now:
            candidates.append(cap_until)
        elif self.daily_cap and sent_today >= self.daily_cap:
            candidates.append(sched.next_local_midnight(self.day_zone(), now))
        return max(candidates, default=None)

    def state(self, now: datetime, *, sent_today: int) -> str:
        """The account's state by its rules alone: restricted, flood_blocked, daily_cap or idle."""
        held = self.hold(now)
        if held is not None:
            return held.state
        if self.daily_cap and sent_today >= self.daily_cap:
            return DAILY_CAP
        return IDLE

    # --- many sends at once ------------------------------------------------------------------------

    def spread(
        self,
        plan: CampaignPlan,
        start: datetime,
        count: int,
        *,
        sent_today: int,
        rng: random.Random,
    ) -> list[datetime]:
        """Due times for ``count`` first sends of the campaign on this account, from ``start``: at the
        middle of the campaign's gap range (at least the floor), inside the window, at most the cap per
        local day (``sent_today`` already used on ``start``'s day) — the rules :meth:`decide` applies,
        margin included, so each slot is a start the limiter takes as it is."""
        return sched.spread(
            start,
            count,
            gap_s=self.padded(plan.spread_gap_s(self.floor_s)),
            daily_cap=self.cap(plan),
            sent_today=sent_today,
            schedule=self.window(plan),
            day_tz=self.day_zone(plan),
            rng=rng,
            jitter_s=WINDOW_JITTER_S,
        )
