"""The forecast's simulation of one account (domain/forecast.py, docs/visibility.md): its remaining sends,
run after run, with the pacing rules the limiter applies.

An account serves its due work earliest due first, one send per slot; a slot is where the rules allow the
next send (the gap after the previous start, the daily cap counted in the account's zone, the working
window). A *run* is a stretch of sends each due by its slot: its first send is decided as
:meth:`AccountPolicy.decide` decides it, the others are placed by :meth:`AccountPolicy.spread`, and it
ends with the day's cap. A send's next step falls due after the step's delay, placed in the window as
:func:`schedule.place` places it, and joins the account's queue. An account shared with other active
campaigns gives this one every k-th slot (round-robin, R-THR-3).

Pure: no clock, no I/O. The rules' randomness (a gap within the campaign's range, the jitter after a
window opens) is taken at its middle (:class:`Midpoint`), so one input always gives the same answer.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import random
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import attrs

from campaignsvc.domain import pacing
from campaignsvc.domain import schedule as sched
from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import WINDOW_JITTER_S, CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy
from campaignsvc.domain.templates import TemplateError

# How far ahead the simulation looks: sends beyond it do not happen.
HORIZON = timedelta(days=365)
# Days of the ``daily`` chart, from today in the campaign's zone.
DAILY_DAYS = 90
# An account's work, in units of about a microsecond here: a slot is one, a run costs RUN_WORK more and
# each day a run spans DAY_WORK (the schedule's work at a day's end). Past its work an account's remaining
# sends go at the pace its rules allow over PACE_DAYS.
RUN_WORK = 120
DAY_WORK = 40
PACE_DAYS = 28

# The rules a simulated wait is charged to; the bottleneck is the one charged the most.
DAILY_CAP, GAP, WINDOW, STEP_DELAYS, BLOCKED, NONE = (
    "daily_cap",
    "gap",
    "window",
    "step_delays",
    "blocked",
    "none",
)
RULES = (DAILY_CAP, GAP, WINDOW, STEP_DELAYS, BLOCKED)

_EPOCH = datetime(2000, 1, 1, tzinfo=pacing.UTC)
_SLACK = timedelta(milliseconds=1)
_FIRST_RUN = 64
_MAX_RUN = 8192
_PACE_SLOTS = 50_000


class Midpoint(random.Random):
    """Every draw at its expected value: ``random()`` is 0.5, so a gap sampled from a range is its middle
    and the jitter after a window opens is half of it."""

    def random(self) -> float:
        return 0.5


MIDPOINT = Midpoint()


# --- input -------------------------------------------------------------------------------------------


@attrs.frozen
class Queue:
    """Participants of one account waiting for step ``step`` (a position in the ordered steps, their
    ``current_step``): one due time each, in order (overdue ones too: they go in that order)."""

    step: int
    dues: tuple[datetime, ...]
    # Never sent anything: the participants may still go to another account (what-ifs).
    fresh: bool = False
    # Their due times were chosen by enrolment's spread (the pacing rules), not by a step's delay.
    placed: bool = False

    @classmethod
    def of(
        cls, step: int, due: datetime, count: int = 1, *, fresh: bool = False, placed: bool = False
    ) -> Queue:
        return cls(step, (due,) * count, fresh, placed)


@attrs.frozen
class AccountInput:
    """One BD account of the campaign: its rules, its history, the participants it holds."""

    bd_account_id: uuid.UUID | None  # None: an account a what-if adds
    policy: AccountPolicy
    queues: tuple[Queue, ...] = ()
    name: str = ""
    last_start: datetime | None = None  # the account's latest send start, any campaign
    sent_today: int = 0  # starts counting toward the cap since the start of today in its day zone
    campaigns: int = 1  # active campaigns with due work on the account, this one included
    paused: bool = False  # paused for this campaign
    paused_until: datetime | None = None  # None with ``paused``: until resumed


# --- the steps ---------------------------------------------------------------------------------------


def _usable(template: object) -> bool:
    """A step is sent only with a template that parsed (domain.claims.decide skips it otherwise)."""
    return template is not None and not isinstance(template, TemplateError)


@attrs.frozen
class StepChain:
    """Per step position: whether it is sent, what follows it after which delay (domain.steps), and how
    many sends a participant waiting for it still makes."""

    sendable: tuple[bool, ...]
    after: tuple[tuple[int, timedelta] | None, ...]
    remaining: tuple[int, ...]
    soonest: timedelta | None  # the shortest delay from a send to the next step, None: none follows

    @classmethod
    def of(cls, plan: CampaignPlan) -> StepChain:
        steps = plan.steps
        sendable = tuple(not s.is_hidden and _usable(plan.templates.get(s.template_id)) for s in steps)
        after: list[tuple[int, timedelta] | None] = []
        for i in range(len(steps)):
            nxt = st.plan_after(steps, i, _EPOCH)
            # A step waiting for a reply is never sent: no replies come in the forecast.
            after.append((nxt.index, nxt.at - _EPOCH) if isinstance(nxt, st.Due) else None)
        remaining = [0] * len(steps)
        for i in range(len(steps) - 1, -1, -1):
            follow = after[i]
            remaining[i] = int(sendable[i]) + (remaining[follow[0]] if follow is not None else 0)
        delays = [follow[1] for i, follow in enumerate(after) if follow is not None and sendable[i]]
        return cls(sendable, tuple(after), tuple(remaining), min(delays, default=None))

    def sends_left(self, step: int) -> int:
        return self.remaining[step] if 0 <= step < len(self.remaining) else 0


# --- the window --------------------------------------------------------------------------------------


class Calendar:
    """A schedule's windows from an instant on, each asked of the schedule once (``next_open``,
    ``window_end``, ``place``) and shared by every account that works by it: ``opens[i]`` to
    ``closes[i]`` (None: never closes) is open, and ``place`` moves every time of the closed stretch
    before ``opens[i]`` to ``moved[i]`` (the middle jitter makes it one instant)."""

    def __init__(self, window: sched.Schedule, since: datetime) -> None:
        self.window = window
        start = sched.next_open(window, since)
        self.opens = [start]
        self.closes = [sched.window_end(window, start)]
        self.moved = [sched.place(window, since, MIDPOINT, WINDOW_JITTER_S)]

    def _cover(self, t: datetime) -> None:
        while True:
            end = self.closes[-1]
            if end is None or end > t:
                return
            start = sched.next_open(self.window, end)
            self.moved.append(sched.place(self.window, end, MIDPOINT, WINDOW_JITTER_S))
            self.opens.append(start)
            self.closes.append(sched.window_end(self.window, start))

    def find(self, t: datetime) -> tuple[int, bool]:
        """The window ``t`` is in (True), or the one after the closed stretch it is in (False)."""
        self._cover(t)
        i = bisect.bisect_right(self.opens, t) - 1
        if i >= 0:
            end = self.closes[i]
            if end is None or t < end:
                return i, True
        return i + 1, False

    def is_open(self, t: datetime) -> bool:
        return self.find(t)[1]

    def place_sorted(self, times: list[datetime]) -> list[datetime]:
        """:func:`schedule.place` of each of the sorted ``times``: a time in a window stays, a time of a
        closed stretch moves to that stretch's instant."""
        out: list[datetime] = []
        i, n = 0, len(times)
        while i < n:
            k, inside = self.find(times[i])
            if inside:
                end = self.closes[k]
                j = n if end is None else bisect.bisect_left(times, end, i)
                out.extend(times[i:j])
            else:
                j = bisect.bisect_left(times, self.opens[k], i)
                out.extend(itertools.repeat(self.moved[k], j - i))
            i = j
        return out


# --- one account -------------------------------------------------------------------------------------


@attrs.define
class _Stream:
    """Sends of one step waiting at one account, in due order; ``pos`` is the next one."""

    dues: list[datetime]
    step: int
    placed: bool
    pos: int = 0


@attrs.define
class Outcome:
    """One account's simulation."""

    total: int  # remaining sends of the account
    held: bool = False  # it never sends (inactive, restricted, paused until resumed)
    finished: bool = False  # every send simulated within the horizon
    extrapolated: bool = False  # the work bound came first
    spent: int = 0  # work
    sent: int = 0  # sends simulated
    last: datetime | None = None  # the last one's start
    pace: timedelta = timedelta(0)  # past the work bound: the time per send the rules allow, on average
    waits: dict[str, float] = attrs.field(factory=lambda: dict.fromkeys(RULES, 0.0))
    daily: list[int] = attrs.field(factory=list)

    def finish(self, now: datetime) -> datetime | None:
        """When the account's last remaining send starts: simulated, or past the work bound at the pace
        the rules allow (``pace``, from there); None when that is not within the horizon."""
        if self.total == 0:
            return now
        if self.finished:
            return self.last
        if not self.extrapolated or self.last is None:
            return None
        finish = self.last + self.pace * (self.total - self.sent)
        return finish if finish <= now + HORIZON else None


def held(account: AccountInput) -> str | None:
    """Why the account never sends for this campaign, if it does not."""
    who = display_name(account)
    if not account.policy.active:
        return f"BD account {who} is inactive"
    if account.policy.restricted:
        return f"BD account {who} is spam-restricted"
    if account.paused and account.paused_until is None:
        return f"BD account {who} is paused for this campaign until resumed"
    return None


def display_name(account: AccountInput) -> str:
    if account.name:
        return account.name
    return str(account.bd_account_id) if account.bd_account_id else "(an added account)"


def never_reason(account: AccountInput, outcome: Outcome, now: datetime) -> str | None:
    """Why the account's remaining sends never all go out; None when they do."""
    if outcome.finish(now) is not None:
        return None
    what = f"{outcome.total} remaining send{'s' if outcome.total != 1 else ''} of this campaign"
    holding = held(account)
    if holding is not None:
        return f"{holding} and holds {what}"
    return f"BD account {display_name(account)} does not make its {what} within {HORIZON.days} days"


class Simulation:
    """The campaign's rules and calendar, shared by the accounts of one forecast and its what-ifs."""

    def __init__(self, plan: CampaignPlan, now: datetime) -> None:
        self.plan = plan
        self.now = now
        self.end = now + HORIZON
        self.sequence = StepChain.of(plan)
        self.zone: ZoneInfo = plan.schedule.tz if plan.schedule is not None else pacing.UTC
        self.days = [pacing.day_start(self.zone, now)]
        for _ in range(DAILY_DAYS):
            self.days.append(sched.next_local_midnight(self.zone, self.days[-1]))
        self._calendars: dict[sched.Schedule, Calendar] = {}
        self._by_input: dict[AccountInput, Outcome] = {}
        self._by_object: dict[int, tuple[AccountInput, Outcome]] = {}
        self._paces: dict[tuple[AccountPolicy, int], timedelta] = {}

    def calendar(self, window: sched.Schedule | None) -> Calendar | None:
        if window is None:
            return None
        found = self._calendars.get(window)
        if found is None:
            found = self._calendars[window] = Calendar(window, self.now)
        return found

    def total(self, account: AccountInput) -> int:
        left = self.sequence.sends_left
        return sum(len(q.dues) * left(q.step) for q in account.queues)

    def follow(
        self, calendar: Calendar | None, step: int, times: list[datetime]
    ) -> tuple[int, list[datetime]] | None:
        """The next step sent after ``step`` went out (or was skipped) at the sorted ``times``, and when it
        is due: its delay later, placed in the window; a step that is not sent is skipped at its due time
        and the one after it follows. None when the sequence ends (or waits for a reply)."""
        while True:
            nxt = self.sequence.after[step]
            if nxt is None:
                return None
            target, delay = nxt
            times = [t + delay for t in times]
            if calendar is not None:
                times = calendar.place_sorted(times)
            if self.sequence.sendable[target]:
                return target, times
            step = target

    def streams(self, account: AccountInput, calendar: Calendar | None) -> list[_Stream]:
        """The account's sends queued by step, each in due order (a participant waiting for a step that is
        not sent skips it at its due time)."""
        joined: dict[tuple[int, bool], list[datetime]] = {}
        for q in account.queues:
            if 0 <= q.step < len(self.sequence.sendable) and q.dues:
                joined.setdefault((q.step, q.placed), []).extend(q.dues)
        out: list[_Stream] = []
        skipped: dict[int, list[datetime]] = {}
        for (step, placed), dues in sorted(joined.items()):
            dues.sort()
            if self.sequence.sendable[step]:
                out.append(_Stream(dues, step, placed))
                continue
            # Skipped when the dispatcher comes to it: at its due time, now when it is overdue.
            follows = self.follow(calendar, step, [max(due, self.now) for due in dues])
            if follows is not None:
                skipped.setdefault(follows[0], []).extend(follows[1])
        out += [_Stream(sorted(dues), step, False) for step, dues in sorted(skipped.items())]
        return out

    def pace(self, account: AccountInput, since: datetime) -> timedelta:
        """The average time per send of this campaign on an account that always has a send due: its slots
        over PACE_DAYS from the day after ``since`` (:meth:`AccountPolicy.spread`), every k-th one when it
        is shared; once per set of rules."""
        policy = attrs.evolve(account.policy, blocked_until=None, block_reason=None)
        key = (policy, max(1, account.campaigns))
        found = self._paces.get(key)
        if found is not None:
            return found
        share = key[1]
        span = timedelta(days=PACE_DAYS)
        gap_s = policy.padded(self.plan.spread_gap_s(policy.floor_s))
        cap = policy.cap(self.plan)
        if not cap and not gap_s:
            return timedelta(0)  # no cap, no gap: everything at once
        slots = cap * PACE_DAYS if cap else int(span.total_seconds() / gap_s) + 1
        start = sched.next_local_midnight(policy.day_zone(self.plan), since)
        times = policy.spread(self.plan, start, min(slots, _PACE_SLOTS), sent_today=0, rng=MIDPOINT)
        inside = bisect.bisect_left(times, start + span) // share
        found = span / max(1, inside)
        self._paces[key] = found
        return found

    def account(self, account: AccountInput, work: int, *, track: bool) -> Outcome:
        """The account's simulation with ``work`` to spend. The same input object, and small inputs alike
        but for the account's id and name (a draft's accounts, added ones), are simulated once."""
        seen = self._by_object.get(id(account))
        if seen is not None and seen[0] is account and (seen[1].daily or not track):
            return seen[1]
        key = attrs.evolve(account, bd_account_id=None, name="")
        done = self._by_input.get(key)
        if done is None or (track and not done.daily):
            done = Outcome(self.total(account), daily=[0] * DAILY_DAYS if track else [])
            done.held = held(account) is not None
            if done.total == 0:
                done.finished = True
            elif not done.held:
                _Run(self, account, done, work, track).run()
            self._by_input[key] = done
        self._by_object[id(account)] = (account, done)
        return done


class _Run:
    """One account's sends, run after run."""

    def __init__(
        self, sim: Simulation, account: AccountInput, outcome: Outcome, work: int, track: bool
    ) -> None:
        self.sim = sim
        self.account = account
        self.outcome = outcome
        self.work = work
        self.track = track
        policy, plan = account.policy, sim.plan
        self.policy = policy
        self.calendar = sim.calendar(policy.window(plan))
        self.zone = policy.day_zone(plan)
        self.cap = policy.cap(plan)
        self.share = max(1, account.campaigns)
        self.gap_s = policy.gap(plan, MIDPOINT)  # the middle of the campaign's range, at least the floor
        self.gap = timedelta(seconds=policy.padded(self.gap_s))
        self.cycle = self.gap * self.share  # from one send of this campaign to its next, back to back
        self.streams = sim.streams(account, self.calendar)
        self.followups: dict[int, _Stream] = {}
        held = [t for t in (policy.blocked_until, account.paused_until) if t is not None and t > sim.now]
        self.earliest = max([sim.now, *held])
        self.last = account.last_start  # the account's latest start (this campaign's or another's)
        self.day = pacing.day_start(self.zone, sim.now)
        self.used = account.sent_today  # starts on the cap day that begins at ``self.day``

    def run(self) -> None:
        size = _FIRST_RUN
        while True:
            live = [(i, s) for i, s in enumerate(self.streams) if s.pos < len(s.dues)]
            if not live:
                self.outcome.finished = True
                return
            if self.work <= 0:
                self.outcome.extrapolated = True
                self.outcome.pace = self.sim.pace(self.account, self.last or self.sim.now)
                return
            start = self._first(min(s.dues[s.pos] for _, s in live))
            if self.share > 1:
                start = self._in_turn(start)
            if start > self.sim.end:
                return
            size = self._step(live, start, min(size, max(16, self.work // 4)))
            if not size:
                return

    def _first(self, due: datetime) -> datetime:
        """When the run's first send starts, decided as the limiter decides it (:meth:`AccountPolicy.decide`
        from when the send is due, or the previous one started, or a block ends; a send it hands back is
        decided again at the time it named, a start on a later day again then)."""
        now = max(due, self.earliest) if self.last is None else max(due, self.earliest, self.last)
        while True:
            verdict = self.policy.decide(
                self.sim.plan,
                due_at=due,
                now=now,
                last_start=self.last,
                gap_s=self.gap_s,
                starts=[self.day] * self.used,  # the account's starts that count today, as far as decide asks
                rng=MIDPOINT,
            )
            if isinstance(verdict, pacing.Defer):
                now = verdict.until
            elif verdict.at > now and pacing.day_start(self.zone, verdict.at) != pacing.day_start(
                self.zone, now
            ):
                now = verdict.at
            else:
                return verdict.at

    def _in_turn(self, start: datetime) -> datetime:
        """A shared account kept sending the other campaigns' work, a gap apart, while this one had
        nothing due: its next send from ``start`` is at the rotation's next slot, when nothing (a closed
        window; with a cap, a new day or the cap filled) broke the rotation in between; the others' sends
        since count toward the day's cap."""
        last = self.last
        if last is None or start - last <= self.gap or not self.gap:
            return start
        turns = -((last - start) // self.gap)  # slots of the rotation from the last one to ``start``
        slot = last + self.gap * turns
        if self.calendar is not None:
            (k, inside), (j, still) = self.calendar.find(last), self.calendar.find(slot)
            if not (inside and still and k == j):
                return start
        cap = self.policy.cap(self.sim.plan, slot)
        if cap:
            if pacing.day_start(self.zone, slot) != self.day or self.used + turns - 1 >= cap:
                return start
            self.used += turns - 1
        return slot

    def _step(self, live: list[tuple[int, _Stream]], start: datetime, size: int) -> int:
        """Simulate the run that starts at ``start`` (at most ``size`` sends, the earliest due); the next
        run's size, 0 at the horizon."""
        run_day = pacing.day_start(self.zone, start)
        today = self.used if run_day == self.day else 0
        cap = self.policy.cap(self.sim.plan, start)  # the day's: a ramp lowers it day by day
        if cap:
            # A run ends with the day's cap: the next day's first send is decided as the limiter decides it.
            size = min(size, max(1, (cap - today) // self.share))
        owners: list[int] | None = None
        if len(live) == 1:
            index, stream = live[0]
            dues = stream.dues[stream.pos : stream.pos + size]
        else:
            merged = sorted(
                itertools.chain.from_iterable(
                    zip(s.dues[s.pos : s.pos + size], itertools.repeat(i), strict=False) for i, s in live
                )
            )[:size]
            dues = [due for due, _ in merged]
            owners = [i for _, i in merged]
            index = owners[0]
        count = len(dues)
        slots = self.policy.spread(self.sim.plan, start, count * self.share, sent_today=today, rng=MIDPOINT)
        # Shared round-robin: the other campaigns take the slots in between.
        ours = slots[self.share - 1 :: self.share] if self.share > 1 else slots
        try:
            valid = list(map(operator.gt, dues, ours)).index(True)  # not due by its slot: the run ends
        except ValueError:
            valid = count
        soonest = self.sim.sequence.soonest
        if soonest is not None:
            # A send of the run may bring a next step due before a later candidate: the run ends there.
            valid = min(valid, max(1, bisect.bisect_right(dues, ours[0] + soonest)))
        within = bisect.bisect_right(ours, self.sim.end, 0, valid)
        if within == 0:
            return 0
        taken = within * self.share
        if self.track:
            self._charge(slots, taken, run_day, today, dues[0], self.streams[index].placed)
            self._count_days(ours, within)
        last = slots[taken - 1]
        last_day = pacing.day_start(self.zone, last)
        on_day = taken - bisect.bisect_left(slots, last_day, 0, taken)
        self.used = on_day + today if last_day == run_day else on_day
        self.day, self.last = last_day, last
        self._advance(ours, within, index, owners)
        o = self.outcome
        o.sent += within
        o.last = ours[within - 1]
        days = (last - slots[0]) // timedelta(days=1) + 1
        cost = len(slots) + RUN_WORK + DAY_WORK * days
        self.work -= cost
        o.spent += cost
        if within < valid:
            return 0  # the horizon
        return min(size * 2, _MAX_RUN) if valid == count else max(16, 2 * valid)

    def _advance(self, ours: list[datetime], valid: int, index: int, owners: list[int] | None) -> None:
        """The run's sends leave their streams; their next steps join the queue."""
        if owners is None:
            sent = {index: ours[:valid]}
        else:
            own = owners[:valid]
            sent = {i: [t for t, o in zip(ours, own, strict=False) if o == i] for i in set(own)}
        added = False
        for stream, times in [(self.streams[i], times) for i, times in sent.items()]:
            stream.pos += len(times)
            follows = self.sim.follow(self.calendar, stream.step, times)
            if follows is None:
                continue
            step, dues = follows
            queue = self.followups.get(step)
            if queue is None or (queue.dues and dues[0] < queue.dues[-1]):
                queue = _Stream([], step, False)
                self.followups[step] = queue
                self.streams.append(queue)
                added = True
            queue.dues.extend(dues)
        if added:
            self.streams.sort(key=lambda q: q.step)  # sends due at one instant go in step order
        if len(self.streams) > 8:
            kept = set(map(id, self.followups.values()))
            self.streams = [s for s in self.streams if s.pos < len(s.dues) or id(s) in kept]

    def _count_days(self, ours: list[datetime], valid: int) -> None:
        days, daily = self.sim.days, self.outcome.daily
        first = bisect.bisect_right(days, ours[0]) - 1
        last = min(bisect.bisect_right(days, ours[valid - 1]) - 1, DAILY_DAYS - 1)
        for d in range(max(first, 0), last + 1):
            daily[d] += bisect.bisect_left(ours, days[d + 1], 0, valid) - bisect.bisect_left(
                ours, days[d], 0, valid
            )

    # --- what held each send back ------------------------------------------------------------------------

    def _charge(
        self, slots: list[datetime], taken: int, run_day: datetime, today: int, due: datetime, placed: bool
    ) -> None:
        """Charge the waits before each send of the run (``slots[k-1::k]`` of the first ``taken``) to the
        rule that made them: up to a cycle of gaps after the previous send, the gap; waiting for a step
        that was not due, the step's delay; past both, the daily cap when the day's cap was used, else the
        window (a send enrolment placed: the cap, else the window, else the gap); a block, its time."""
        waits = self.outcome.waits
        k = self.share
        if self.outcome.sent:
            a = self.outcome.last
            assert a is not None
            base = a + self.cycle
            full = self._full(a, self.used)
        else:
            a = self.sim.now
            if self.earliest > a:
                waits[BLOCKED] += (self.earliest - a).total_seconds()
                a = self.earliest
            last = self.account.last_start
            base = a if last is None else max(a, last + self.cycle)
            full = self._full(a, self.used)
        self._charge_one(a, base, slots[k - 1], due, placed, bool(full))
        if taken <= k:
            return
        ours = slots[k - 1 : taken : k]
        steps = list(map(operator.sub, ours[1:], ours[:-1]))
        slack = self.cycle + _SLACK
        long = [i for i, d in enumerate(steps) if d > slack]
        short = (ours[-1] - ours[0]) - sum((steps[i] for i in long), timedelta(0))
        waits[GAP] += short.total_seconds()
        for i in long:
            a = ours[i]
            j = (i + 1) * k  # slots before the next send of this campaign
            day = pacing.day_start(self.zone, a)
            on_day = j - bisect.bisect_left(slots, day, 0, j) + (today if day == run_day else 0)
            self._charge_one(a, a + self.cycle, ours[i + 1], a, False, self._full(a, on_day, counted=True))

    def _full(self, at: datetime, used: int, *, counted: bool = False) -> bool:
        """Whether ``used`` starts fill the cap of ``at``'s day (the ramp's budget of that day included):
        ``used`` counted on that day, or (not ``counted``) on the day the account's last start fell on."""
        cap = self.policy.cap(self.sim.plan, at)
        return bool(cap) and used >= cap and (counted or self.day == pacing.day_start(self.zone, at))

    def _charge_one(
        self, a: datetime, base: datetime, b: datetime, due: datetime, placed: bool, full: bool
    ) -> None:
        waits = self.outcome.waits
        if b <= base:
            waits[GAP] += max(0.0, (b - a).total_seconds())
            return
        waits[GAP] += max(0.0, (base - a).total_seconds())
        if due > base and not placed:
            waits[STEP_DELAYS] += (min(due, b) - base).total_seconds()
            base = due
        rest = (b - base).total_seconds()
        if rest <= 0:
            return
        closed = self.calendar is not None and not self.calendar.is_open(base)
        if full or (placed and self.cap and not closed):
            waits[DAILY_CAP] += rest
        elif closed or self.calendar is not None:
            waits[WINDOW] += rest
        else:
            waits[GAP] += rest
