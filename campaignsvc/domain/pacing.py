"""An account's pacing rules, in one place (SPEC R-THR): every question about when a BD account may send
is answered here — by the live limiter, by enrolment when it spreads first sends, and by the views.

:class:`AccountPolicy` holds the account's rules (gap floor and margin, daily cap in its time zone, working
window, block, restriction, ramp-up); the account's history comes in as arguments (its last send start
and its recent send starts, sorted). Pure: no clock, no I/O, randomness only from the ``rng`` passed in.

The daily cap of a local day is :meth:`AccountPolicy.cap` — the campaign's share of the account's cap,
lowered by the account's :class:`Ramp` on that day when it has one — and every decision counts it there.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
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


def local_midnight(zone: ZoneInfo, day: date) -> datetime:
    """The first instant of the local ``day`` in ``zone`` (as :func:`day_start` places it)."""
    return sched.previous_local_midnight(zone, datetime.combine(day, time(12), tzinfo=zone))


@attrs.frozen
class StepDown:
    """What a step-down left: ``budget`` sends a day, held until ``until`` (the cool-off's end); from the
    local day after the one ``until`` falls on, the budget grows again by the ramp's increase a day."""

    budget: int
    at: datetime
    until: datetime


@attrs.frozen
class Ramp:
    """A new account's daily budget: ``start_per_day`` on ``started_on`` (and any day before it), then
    ``increase_per_day`` more on each local day after it, never above ``max_per_day``; lowered by the latest
    :class:`StepDown`, if any. Days are calendar days of the account's zone, so a DST change does not
    move the step."""

    start_per_day: int
    increase_per_day: int
    max_per_day: int
    started_on: date
    step_down: StepDown | None = None

    def _grown(self, base: int, since: date, day: date) -> int:
        return base + self.increase_per_day * max(0, (day - since).days)

    def budget_on(self, zone: ZoneInfo, day: date) -> int:
        """The budget of the local ``day``."""
        budget = min(self.max_per_day, self._grown(self.start_per_day, self.started_on, day))
        if self.step_down is not None:
            held = sched.local_day(zone, self.step_down.until)
            budget = min(budget, self._grown(self.step_down.budget, held, day))
        return budget

    def budget(self, zone: ZoneInfo, at: datetime) -> int:
        """The budget of ``at``'s local day."""
        return self.budget_on(zone, sched.local_day(zone, at))

    def next_step_at(self, zone: ZoneInfo, now: datetime) -> datetime | None:
        """The local midnight from which the budget is higher than today's; None when it no longer grows
        (at ``max_per_day``, or no increase)."""
        today = sched.local_day(zone, now)
        # Until the ramp's start and a step-down's cool-off are behind, the budget stays as it is; on each
        # day after both it grows, unless it is at its maximum.
        last_flat = max(today, self.started_on)
        if self.step_down is not None:
            last_flat = max(last_flat, sched.local_day(zone, self.step_down.until))
        candidate = last_flat + timedelta(days=1)
        if self.budget_on(zone, candidate) > self.budget_on(zone, today):
            return local_midnight(zone, candidate)
        return None

    def stepped_down(self, zone: ZoneInfo, now: datetime, *, cap: int, cool_off: timedelta) -> Ramp:
        """After a long FLOOD_WAIT or a PEER_FLOOD at ``now``: half of today's budget (the lower of the
        ramp's and the account's ``cap``, 0 = none; at least 1), held for ``cool_off``."""
        today = self.budget(zone, now)
        if cap:
            today = min(today, cap)
        return attrs.evolve(self, step_down=StepDown(max(1, today // 2), now, now + cool_off))


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
    ramp: Ramp | None = None  # a new account's growing budget (lowers the cap day by day)

    # --- the parts ---------------------------------------------------------------------------------

    def day_zone(self, plan: CampaignPlan | None = None) -> ZoneInfo:
        """Days are counted in the account's zone, else the campaign's, else UTC (R-THR-1)."""
        if self.timezone is not None:
            return self.timezone
        if plan is not None and plan.schedule is not None:
            return plan.schedule.tz
        return UTC

    def own_cap(self, at: datetime | None = None, plan: CampaignPlan | None = None) -> int:
        """The account's cap on ``at``'s local day, whatever the campaign: its daily cap lowered by its
        ramp's budget of that day (0 = no cap; without ``at``, the ramp is left out)."""
        if self.ramp is None or at is None:
            return self.daily_cap
        budget = self.ramp.budget(self.day_zone(plan), at)
        return min(self.daily_cap, budget) if self.daily_cap else budget

    def cap(self, plan: CampaignPlan, at: datetime | None = None) -> int:
        """Sends the campaign may use on this account on ``at``'s local day (0 = no cap; without ``at``,
        the ramp is left out)."""
        return plan.daily_cap(self.own_cap(at, plan))

    def ramp_binds(self, plan: CampaignPlan | None, at: datetime) -> bool:
        """Whether the ramp, rather than the account's own cap or the campaign's, sets ``at``'s day's cap."""
        if self.ramp is None:
            return False
        budget = self.ramp.budget(self.day_zone(plan), at)
        others = [c for c in (self.daily_cap, plan.daily_target if plan is not None else None) if c]
        return all(budget < c for c in others)

    def ramp_cap(self, at: datetime) -> int | None:
        """The ramp's budget of ``at``'s local day in the account's zone (None: no ramp)."""
        return None if self.ramp is None else self.ramp.budget(self.day_zone(), at)

    def ramp_next_step_at(self, now: datetime) -> datetime | None:
        """When the ramp's budget next grows (None: no ramp, or it no longer grows)."""
        return None if self.ramp is None else self.ramp.next_step_at(self.day_zone(), now)

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
        # The cap of the day the send would start: one offered a claim's lead before the midnight it was
        # handed back to counts the new day, instead of the old one over and over until the day turns.
        start_at = max(now, due_at)
        cap = self.cap(plan, start_at)
        if cap and sent_today(starts, zone, start_at) >= cap:
            return Defer(
                sched.place(window, sched.next_local_midnight(zone, start_at), rng, WINDOW_JITTER_S), "cap"
            )
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
        local midnight once its own cap — ramp included — is used: ``sent_today`` counted in
        :meth:`day_zone`). None: at once (or never, while restricted)."""
        after = self.after_gap(last_start, self.floor_s if gap_s is None else gap_s)
        candidates = [t for t in (after, self.blocked_until) if t is not None and t > now]
        cap = self.own_cap(now)
        if cap_until is not None and cap_until > now:
            candidates.append(cap_until)
        elif cap and sent_today >= cap:
            candidates.append(sched.next_local_midnight(self.day_zone(), now))
        return max(candidates, default=None)

    def state(self, now: datetime, *, sent_today: int) -> str:
        """The account's state by its rules alone: restricted, flood_blocked, daily_cap or idle."""
        held = self.hold(now)
        if held is not None:
            return held.state
        cap = self.own_cap(now)
        if cap and sent_today >= cap:
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
        local day (``sent_today`` already used on ``start``'s day; the ramp's budget of each day) — the
        rules :meth:`decide` applies, margin included, so each slot is a start the limiter takes as it is.

        While a ramp makes the cap change from day to day, the slots are placed a day at a time (that day's
        cap, and one more slot: the next day's first); once the cap no longer changes, in one go."""
        zone = self.day_zone(plan)
        window = self.window(plan)
        gap_s = self.padded(plan.spread_gap_s(self.floor_s))
        slots: list[datetime] = []
        at, used = start, sent_today
        while len(slots) < count:
            cap = self.cap(plan, at)
            # The ramp's budget never shrinks as days pass: once it no longer grows, or no longer sets
            # the cap, the cap is the same on every later day.
            steady = (
                self.ramp is None or self.ramp.next_step_at(zone, at) is None or not self.ramp_binds(plan, at)
            )
            wanted = count - len(slots)
            if not steady and cap:
                wanted = min(wanted, max(0, cap - used) + 1)
            chunk = sched.spread(
                at,
                wanted,
                gap_s=gap_s,
                daily_cap=cap,
                sent_today=used,
                schedule=window,
                day_tz=zone,
                rng=rng,
                jitter_s=WINDOW_JITTER_S,
            )
            if steady or not cap:
                slots += chunk
                break
            day = sched.local_day(zone, at)
            today = [t for t in chunk if sched.local_day(zone, t) == day]
            slots += today
            if len(today) == len(chunk):
                break  # all that was wanted fit on the day
            # The first slot on a later day starts that day's placement, at its own cap.
            at, used = chunk[len(today)], 0
        return slots
