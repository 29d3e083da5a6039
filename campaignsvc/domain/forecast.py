"""When a campaign will finish (docs/visibility.md): its remaining sends simulated account by account with
the pacing rules the limiter applies (domain/forecast_sim.py), the finish with accounts added, the rule that
binds and the assumptions, as sentences.

Pure: no clock, no I/O; the same input always gives the same forecast.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime

import attrs

from campaignsvc.domain import schedule as sched
from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.forecast_sim import (
    BLOCKED,
    DAILY_CAP,
    DAILY_DAYS,
    GAP,
    HORIZON,
    MIDPOINT,
    NONE,
    PACE_DAYS,
    RULES,
    STEP_DELAYS,
    WINDOW,
    AccountInput,
    Calendar,
    Midpoint,
    Outcome,
    Queue,
    Simulation,
    StepChain,
    display_name,
    held,
    never_reason,
)

__all__ = [
    "BLOCKED",
    "DAILY_CAP",
    "DAILY_DAYS",
    "GAP",
    "HORIZON",
    "MIDPOINT",
    "NONE",
    "STEP_DELAYS",
    "WINDOW",
    "AccountForecast",
    "AccountInput",
    "Calendar",
    "DaySends",
    "Forecast",
    "Midpoint",
    "Queue",
    "WhatIf",
    "forecast",
    "median_account",
    "unsendable",
    "with_extra",
]

# The work one forecast may do (forecast_sim.RUN_WORK): the main simulation MAIN_WORK, each account a part
# in proportion to its sends; the what-ifs are simulated again when each fits twice in what is left, else
# scaled from the main simulation.
WORK_BOUND = 600_000
MAIN_WORK = 360_000
_MIN_WORK = 300
# The what-ifs: this many accounts like the median one added.
WHAT_IF = (1, 2, 3)


# --- output ------------------------------------------------------------------------------------------


@attrs.frozen
class AccountForecast:
    bd_account_id: uuid.UUID | None
    remaining_sends: int
    sends_per_day: float
    finishes_at: datetime | None
    reason: str | None = None


@attrs.frozen
class DaySends:
    date: date
    sends: int


@attrs.frozen
class WhatIf:
    extra_accounts: int
    finishes_at: datetime | None


@attrs.frozen
class Forecast:
    remaining_sends: int
    finishes_at: datetime | None
    bottleneck: str
    reason: str | None
    per_account: tuple[AccountForecast, ...] = ()
    daily: tuple[DaySends, ...] = ()
    what_if: tuple[WhatIf, ...] = ()
    assumptions: tuple[str, ...] = ()
    waits: dict[str, float] = attrs.field(factory=dict)  # seconds charged to each rule
    sends_simulated: int = 0  # the rest, past the work bound, at the pace simulated


# --- what-ifs ------------------------------------------------------------------------------------------


def median_account(accounts: Sequence[AccountInput], plan: CampaignPlan) -> AccountInput | None:
    """An account like the campaign's median one: the rules of the middle account by sends per day (then
    gap), nothing sent yet, no block, no ramp, no other campaign; None when no account of the campaign can
    send."""
    usable = [a for a in accounts if a.bd_account_id is not None and held(a) is None]
    if not usable:
        return None

    def pace(a: AccountInput) -> tuple[float, float]:
        cap = a.policy.cap(plan)
        return (float(cap) if cap else float("inf"), -plan.spread_gap_s(a.policy.floor_s))

    middle = sorted(usable, key=pace)[(len(usable) - 1) // 2]
    policy = attrs.evolve(middle.policy, blocked_until=None, block_reason=None, ramp=None)
    return AccountInput(None, policy, name="added like " + display_name(middle))


def with_extra(
    accounts: Sequence[AccountInput], plan: CampaignPlan, extra: int, *, now: datetime
) -> list[AccountInput]:
    """The campaign's accounts and ``extra`` more like the median one, which take an even share of the
    participants not contacted yet (due at the first step's due time from ``now``): each account that can
    send keeps at most that share, giving away the ones due last; participants already contacted keep
    their account. Unchanged when no account can send."""
    like = median_account(accounts, plan) if extra > 0 else None
    if like is None:
        return list(accounts)
    movable = [sum(len(q.dues) for q in a.queues if q.fresh) if held(a) is None else 0 for a in accounts]
    share = _water_level(movable, extra)
    gives = [max(0, m - share) for m in movable]
    given = sum(gives)
    out = [_give(a, g) if g else a for a, g in zip(accounts, gives, strict=True)]
    first = st.plan_first(plan.steps, now)
    for i in range(extra):
        n = given // extra + (1 if i < given % extra else 0)
        if n and isinstance(first, st.Due):
            out.append(attrs.evolve(like, queues=(Queue.of(first.index, first.at, n, fresh=True),)))
        else:
            out.append(like)
    return out


def _water_level(loads: Sequence[int], extra: int) -> int:
    """The smallest share ``L`` such that what the loads hold above ``L`` fits in ``extra`` accounts of
    ``L`` each."""
    low, high = 0, max(loads, default=0)
    while low < high:
        mid = (low + high) // 2
        if sum(max(0, load - mid) for load in loads) <= extra * mid:
            high = mid
        else:
            low = mid + 1
    return low


def _give(account: AccountInput, count: int) -> AccountInput:
    """The account without its ``count`` participants not contacted yet that are due last."""
    fresh = [(due, i) for i, q in enumerate(account.queues) if q.fresh for due in q.dues]
    fresh.sort()
    left = collections.Counter(i for _, i in fresh[: len(fresh) - count])
    queues = [
        q if not q.fresh else attrs.evolve(q, dues=tuple(sorted(q.dues))[: left[i]])
        for i, q in enumerate(account.queues)
    ]
    return attrs.evolve(account, queues=tuple(q for q in queues if q.dues))


# --- the forecast --------------------------------------------------------------------------------------


def _simulate(sim: Simulation, accounts: Sequence[AccountInput], work: int, *, track: bool) -> list[Outcome]:
    """Every account simulated; each may spend a part of ``work`` in proportion to its remaining sends."""
    totals = [sim.total(a) for a in accounts]
    whole = max(1, sum(totals))
    return [
        sim.account(a, max(_MIN_WORK, work * total // whole), track=track)
        for a, total in zip(accounts, totals, strict=True)
    ]


def _scaled(outcome: Outcome, sends: int, now: datetime) -> datetime | None:
    """When an account simulated with ``outcome`` finishes with ``sends`` remaining sends instead: its
    simulated time to finish in proportion."""
    end = outcome.finish(now)
    if sends == 0:
        return now
    if end is None or not outcome.total:
        return end
    return now + (end - now) * (sends / outcome.total)


def _what_if(
    sim: Simulation,
    accounts: Sequence[AccountInput],
    extra: int,
    work: int,
    main: Sequence[Outcome] | None,
) -> datetime | None:
    """The finish with ``extra`` accounts like the median one added to ``accounts``: simulated, or — for a
    campaign too large to simulate it again (``main`` given) — the campaign's accounts each finishing in
    proportion to the sends they keep, the added ones simulated."""
    variant = with_extra(accounts, sim.plan, extra, now=sim.now)
    if main is None:
        return _finish(_simulate(sim, variant, work, track=False), sim.now)
    kept = variant[: len(accounts)]
    ends = [_scaled(o, sim.total(a), sim.now) for a, o in zip(kept, main[: len(accounts)], strict=True)]
    ends += [o.finish(sim.now) for o in _simulate(sim, variant[len(accounts) :], work, track=False)]
    if any(e is None for e in ends):
        return None
    return max([sim.now, *(e for e in ends if e is not None)])


def _finish(outcomes: Iterable[Outcome], now: datetime) -> datetime | None:
    ends = [o.finish(now) for o in outcomes]
    if any(e is None for e in ends):
        return None
    return max([now, *(e for e in ends if e is not None)])


def forecast(
    plan: CampaignPlan,
    accounts: Sequence[AccountInput],
    *,
    now: datetime,
    extra_accounts: int = 0,
    what_if: Iterable[int] = WHAT_IF,
    notes: Sequence[str] = (),
) -> Forecast:
    """The campaign's forecast from ``now``: the remaining sends of ``accounts`` (and ``extra_accounts``
    more like the median one), when each account and the campaign finish, sends per day, the rule that
    binds, and the finish with 1..3 accounts like the median one added to ``accounts``. ``notes``: the
    caller's assumptions (they come first)."""
    sim = Simulation(plan, now)
    ifs = tuple(what_if)
    chosen = with_extra(accounts, plan, extra_accounts, now=now)
    main = _simulate(sim, chosen, MAIN_WORK, track=True)
    spent = sum(o.spent for o in main)
    left = max(0, WORK_BOUND - spent) // max(1, len(ifs))
    # Simulated again while each what-if fits twice in what is left, else scaled from this simulation.
    again = not any(o.extrapolated for o in main) and 2 * spent <= left
    waits = dict.fromkeys(RULES, 0.0)
    daily = [0] * DAILY_DAYS
    per_account = []
    for account, o in zip(chosen, main, strict=True):
        for rule, seconds in o.waits.items():
            waits[rule] += seconds
        if o.held and o.total:
            waits[BLOCKED] += HORIZON.total_seconds()  # it never sends: the block binds
        daily = [x + y for x, y in zip(daily, o.daily, strict=True)]
        end = o.finish(now)
        reason = never_reason(account, o, now)
        per_account.append(
            AccountForecast(account.bd_account_id, o.total, _per_day(o.total, now, end), end, reason)
        )
    reasons = [(o.total - o.sent, r.reason) for r, o in zip(per_account, main, strict=True) if r.reason]
    remaining = sum(o.total for o in main)
    last_day = max((i for i, n in enumerate(daily) if n), default=-1)
    days = tuple(DaySends(sched.local_day(sim.zone, sim.days[i]), daily[i]) for i in range(last_day + 1))
    scaled = None if again else main
    whatifs = tuple(WhatIf(k, _what_if(sim, accounts, k, left, scaled)) for k in ifs)
    return Forecast(
        remaining_sends=remaining,
        finishes_at=_finish(main, now),
        bottleneck=_bottleneck(waits, remaining),
        reason=max(reasons, key=lambda r: r[0])[1] if reasons else None,
        per_account=tuple(per_account),
        daily=days,
        what_if=whatifs,
        assumptions=tuple(notes) + _assumptions(chosen, main, extra_accounts),
        waits=waits,
        sends_simulated=sum(o.sent for o in main),
    )


def _per_day(total: int, now: datetime, finish: datetime | None) -> float:
    if finish is None or total == 0:
        return 0.0
    return round(total / max(1.0, (finish - now).total_seconds() / 86_400), 1)


def _bottleneck(waits: dict[str, float], remaining: int) -> str:
    if not remaining:
        return NONE
    rule, seconds = max(waits.items(), key=lambda item: (item[1], -RULES.index(item[0])))
    return rule if seconds > 0 else NONE


def _assumptions(
    accounts: Sequence[AccountInput], outcomes: Sequence[Outcome], extra: int
) -> tuple[str, ...]:
    out = [
        "No contact replies: a step that waits for a reply is never sent, and the participant's sequence "
        "ends there.",
        "Every step's conditions hold and every message renders; a step without a usable template is skipped.",
        "Nothing unexpected happens: no failed sends, flood waits or new blocks, no change to the campaign, "
        "its accounts or their limits.",
        "Each gap is the middle of the campaign's gap range (at least the account's floor) plus the safety "
        "margin, and a send moved to a window's opening starts halfway into its jitter.",
    ]
    for a in accounts:
        if a.campaigns > 1:
            others = a.campaigns - 1
            out.append(
                f"BD account {display_name(a)} is shared with {others} other active campaign"
                f"{'s' if others > 1 else ''} with due work: served round-robin, this campaign gets one "
                f"send in {a.campaigns}, as if they kept having due work, at this campaign's gap and cap."
            )
        blocked = a.policy.blocked_until
        if blocked is not None and held(a) is None:
            out.append(
                f"BD account {display_name(a)} is blocked until {blocked.isoformat()}: it sends nothing before."
            )
        if a.paused and a.paused_until is not None:
            out.append(
                f"BD account {display_name(a)} is paused for this campaign until {a.paused_until.isoformat()}."
            )
    if extra:
        out.append(
            f"{extra} more account{'s' if extra > 1 else ''} like the campaign's median one take an even "
            "share of the participants not contacted yet; participants already contacted keep their account."
        )
    out.append(
        "What-ifs add 1 to 3 accounts like the median one to the campaign as it is; they take an even share "
        "of the participants not contacted yet."
    )
    if any(o.extrapolated for o in outcomes):
        out.append(
            "The campaign is too large to simulate every send: past its share of the work, an account's "
            f"remaining sends go at the pace its rules allow, averaged over {PACE_DAYS} days."
        )
    out.append(
        f"The simulation looks {HORIZON.days} days ahead; the daily chart shows the first {DAILY_DAYS}."
    )
    return tuple(out)


def unsendable(
    plan: CampaignPlan, participants: int, reason: str, *, now: datetime, notes: Sequence[str] = ()
) -> Forecast:
    """The forecast for ``participants`` at the first step when no account can send to them: never."""
    first = st.plan_first(plan.steps, now)
    remaining = participants * (
        StepChain.of(plan).sends_left(first.index) if isinstance(first, st.Due) else 0
    )
    if not remaining:
        return Forecast(0, now, NONE, None, assumptions=tuple(notes))
    return Forecast(
        remaining,
        None,
        BLOCKED,
        reason,
        what_if=tuple(WhatIf(k, None) for k in WHAT_IF),
        assumptions=tuple(notes),
    )
