"""A timed workload for scenarios 2 and 6, and how its sends are judged at the sandbox.

*On-time* accounts each have one participant due every ``period_s`` (phases spread evenly over the
period), for ``duration_s``; the configured gap is below the period, so a send is never held back by it
and its lateness is the scheduler's alone. *Backlog* accounts have all their participants due at the start
(work waiting), so they send once per gap: their gaps show how closely the gap is kept.

Participants are written with their account and exact due time (what enrolment would produce) and the
campaigns started through the API while no dispatcher runs; just before a dispatcher starts, every due
time is moved so the schedule begins ``warmup_s`` later. Sends are observed where they land: the
sandbox's arrival time (``time.monotonic()``, the same clock in both processes).
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
import trio

from bench import harness as h

PLACEHOLDER = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
_KEY = "participant:"


@attrs.frozen
class Shape:
    accounts: int  # on-time accounts
    period_s: float
    duration_s: float
    gap_s: float  # campaign sendDelaySeconds and the account floor (CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT)
    backlog_accounts: int = 0
    warmup_s: float = 5.0
    accounts_per_campaign: int = 100
    backlog_in_first_campaign: bool = False  # share a campaign with on-time accounts (scenario 6)

    @property
    def sends_per_account(self) -> int:
        return max(1, int(self.duration_s // self.period_s))

    @property
    def backlog_per_account(self) -> int:
        return int(self.duration_s // self.gap_s) + 2 if self.gap_s > 0 else int(self.duration_s * 20)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class Workload:
    shape: Shape
    on_time: list[uuid.UUID]
    backlog: list[uuid.UUID]
    campaigns: list[str]
    participants: int


async def prepare(svc: h.Service, shape: Shape) -> Workload:
    """Accounts, contacts, campaigns and scheduled participants (due times at the placeholder)."""
    svc.org = await h.seed_org(svc.store)
    on_time = await h.seed_accounts(svc.store, svc.org, shape.accounts)
    backlog = (
        await h.seed_accounts(svc.store, svc.org, shape.backlog_accounts) if shape.backlog_accounts else []
    )
    k, b = shape.sends_per_account, shape.backlog_per_account
    contacts = await h.seed_contacts(svc.store, svc.org, len(on_time) * k + len(backlog) * b)
    groups = [list(g) for g in h.chunks(on_time, shape.accounts_per_campaign)]
    if backlog and shape.backlog_in_first_campaign:
        groups[0] += backlog
    elif backlog:
        groups += [list(g) for g in h.chunks(backlog, shape.accounts_per_campaign)]
    backlog_set = set(backlog)
    index = {a: i for i, a in enumerate(on_time)}
    campaigns: list[str] = []
    used = 0
    total = 0
    for n, group in enumerate(groups):
        cid = await h.create_campaign(svc, name=f"schedule {n}", accounts=group, gap_s=shape.gap_s)
        people: list[uuid.UUID] = []
        accounts: list[uuid.UUID] = []
        due: list[dt.datetime] = []
        for account in group:
            if account in backlog_set:
                offsets = [0.0] * b
            else:
                phase = shape.period_s * index[account] / max(1, len(on_time))
                offsets = [phase + j * shape.period_s for j in range(k)]
            for offset in offsets:
                people.append(contacts[used])
                used += 1
                accounts.append(account)
                due.append(PLACEHOLDER + dt.timedelta(seconds=offset))
        total += await h.add_scheduled_participants(svc.store, cid, people, accounts, due)
        await svc.api("POST", f"/api/campaigns/{cid}/start")
        campaigns.append(cid)
    return Workload(shape, on_time, backlog, campaigns, total)


async def shift_schedule(svc: h.Service, warmup_s: float) -> tuple[dt.datetime, dict[uuid.UUID, float]]:
    """Move every due time so the schedule starts ``warmup_s`` from now; returns the start and each
    participant's due time on the monotonic clock."""
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=warmup_s)
    await svc.store.execute(
        "UPDATE campaign_participants SET next_send_at = next_send_at - $1::interval WHERE next_send_at IS NOT NULL",
        PLACEHOLDER - start,
    )
    rows = await svc.store.fetch(
        "SELECT id, next_send_at FROM campaign_participants WHERE next_send_at IS NOT NULL"
    )
    offset = time.time() - time.monotonic()
    return start, {r["id"]: r["next_send_at"].timestamp() - offset for r in rows}


def participant_of(key: str | None) -> uuid.UUID | None:
    if not key or _KEY not in key:
        return None
    return uuid.UUID(key.split(_KEY, 1)[1].split(":", 1)[0])


# run(settings, finished, messaging): run a dispatcher sending through ``messaging`` until
# ``await finished()`` returns, then stop it.
Runner = Callable[[h.Settings, Callable[[], Awaitable[None]], h.RecordingMessaging], Awaitable[None]]


async def observe(
    settings: h.Settings, box: h.SandboxProcess, workload: Workload, run: Runner
) -> dict[str, Any]:
    """Shift the schedule, run a dispatcher over it, and judge what reached the sandbox."""
    shape = workload.shape
    async with h.running_service(settings, supervise=False) as svc:
        _, due = await shift_schedule(svc, shape.warmup_s)
    await box.reset()
    window_end = time.monotonic() + shape.warmup_s + shape.duration_s
    expected_on_time = len(workload.on_time) * shape.sends_per_account
    backlog = {str(a) for a in workload.backlog}

    async def finished() -> None:
        # Every on-time send arrived (or the schedule ended long ago), and the backlog ran its course.
        deadline = window_end + max(10.0, shape.period_s)
        while time.monotonic() < deadline:
            await trio.sleep(0.5)
            if time.monotonic() < window_end:
                continue
            stats = await box.stats()
            got = sum(v["requests"] for k, v in stats["accounts"].items() if k not in backlog)
            if got >= expected_on_time:
                return

    loop: dict[str, Any] = {}

    async def finished_and_watched() -> None:
        loop.update(await h.watch_loop(finished))

    messaging = h.RecordingMessaging(settings)
    cpu = h.CpuWindow(sandbox_pid=box.pid).start()
    await run(settings, finished_and_watched, messaging)
    cpu_figures = cpu.stop()
    received = await box.received()
    async with h.running_service(settings, supervise=False) as svc:
        claims = await svc.store.fetch(
            "SELECT campaign_participant_id, bd_account_id, claimed_at FROM campaign_sends WHERE claimed_at IS NOT NULL"
        )
    offset = time.time() - time.monotonic()
    claimed = {r["campaign_participant_id"]: r["claimed_at"].timestamp() - offset for r in claims}
    figures = judge(workload, due, received, window_end, claimed, messaging.starts, messaging.written)
    return figures | {"event_loop": loop, "cpu": cpu_figures}


def judge(
    workload: Workload,
    due: dict[uuid.UUID, float],
    received: list[dict[str, Any]],
    window_end: float,
    claimed: dict[uuid.UUID, float],
    call_starts: dict[str, list[float]],
    written: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """Lateness of on-time sends and the excess of backlog accounts' gaps, at the sandbox; gaps of every
    account between the starts of its Messaging calls (R-THR-4: a send starts when Messaging is called)
    and, for comparison, between arrivals at the sandbox (which adds loopback and event-loop jitter);
    plus where the lateness comes from: due → claim transaction start (``claimed_at``; negative when
    the claim ran ahead of the due time, as it does up to ``CLAIM_LEAD``) and claim start → arrival at
    the sandbox (the claim, the wait for the start, the HTTP call)."""
    shape = workload.shape
    backlog = {str(a) for a in workload.backlog}
    lateness: list[float] = []
    first_lateness: list[float] = []
    later_lateness: list[float] = []  # an account's sends after its first (its limiter is warm)
    arrivals: dict[str, list[float]] = collections.defaultdict(list)
    seen_first: set[str] = set()
    unknown = 0
    due_to_claim: list[float] = []
    claim_to_arrival: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    for r in sorted(received, key=lambda r: r["received_mono"]):
        account = r["bdAccountId"]
        arrivals[account].append(r["received_mono"])
        statuses[str(r["outcome"])] += 1
        pid = participant_of(r["idempotencyKey"])
        claim = claimed.get(pid) if pid else None
        if claim is not None:
            claim_to_arrival.append(r["received_mono"] - claim)
        if account in backlog:
            continue
        at = due.get(pid) if pid else None
        if at is None:
            unknown += 1
            continue
        lateness.append(r["received_mono"] - at)
        if claim is not None:
            due_to_claim.append(claim - at)
        if account not in seen_first:
            seen_first.add(account)
            first_lateness.append(r["received_mono"] - at)
        else:
            later_lateness.append(r["received_mono"] - at)
    excess_backlog = _gap_excess(arrivals, backlog, window_end, shape.gap_s)
    # The same gaps where the service measures them (between requests written) and where its code begins
    # the call: what the service adds, apart from what the loopback and the sandbox's loop add.
    excess_written = _gap_excess(written or {}, backlog, window_end, shape.gap_s)
    excess_begun = _gap_excess(call_starts, backlog, window_end, shape.gap_s)
    checked, violations, violations_by = _gaps_below(call_starts.values(), shape.gap_s)
    _, arrival_violations, arrival_by = _gaps_below(arrivals.values(), shape.gap_s)
    expected = len(workload.on_time) * shape.sends_per_account
    on_time_received = sum(len(v) for k, v in arrivals.items() if k not in backlog)
    early = sum(1 for x in lateness if x < 0)
    return {
        "on_time_sends_expected": expected,
        "on_time_sends_received": on_time_received,
        "backlog_sends_received": sum(len(v) for k, v in arrivals.items() if k in backlog),
        "sandbox_outcomes": dict(statuses),
        "lateness": h.ms_summary(lateness),
        "lateness_first_send_per_account": h.ms_summary(first_lateness),
        "lateness_after_first_send": h.ms_summary(later_lateness),
        "sent_before_due": early,
        "gap_violations": violations,
        "gap_violation_worst_ms": round(violations_by * 1000, 2),
        "gaps_checked": checked,
        "gaps_at_sandbox_below_gap": arrival_violations,
        "gaps_at_sandbox_worst_shortfall_ms": round(arrival_by * 1000, 2),
        "gap_excess_when_waiting": h.ms_summary(excess_backlog),
        "gap_excess_when_waiting_parts": {
            "between_calls_begun": h.ms_summary(excess_begun),
            "between_requests_written": h.ms_summary(excess_written),
        },
        "lateness_parts": {
            "due_to_claim_start": h.ms_summary(due_to_claim),
            "claim_start_to_sandbox": h.ms_summary(claim_to_arrival),
        },
        "unmatched_requests": unknown,
    }


def _gap_excess(
    series: dict[str, list[float]], backlog: set[str], window_end: float, gap_s: float
) -> list[float]:
    """How much longer than the gap each pair of a backlog account's sends (in the window) was apart."""
    return [
        b - a - gap_s
        for account, times in series.items()
        if account in backlog
        for a, b in itertools.pairwise(sorted(times))
        if a <= window_end
    ]


def _gaps_below(series: Iterable[list[float]], gap_s: float) -> tuple[int, int, float]:
    """(gaps checked, gaps below ``gap_s``, the largest shortfall) over each account's sorted times."""
    checked = below = 0
    worst = 0.0
    for times in series:
        for a, b in itertools.pairwise(sorted(times)):
            checked += 1
            if b - a < gap_s:
                below += 1
                worst = max(worst, gap_s - (b - a))
    return checked, below, worst


def size_note(shape: Shape) -> str:
    rate = shape.accounts / shape.period_s
    return (
        f"{shape.accounts} on-time accounts due every {shape.period_s:g} s ({rate:.0f} sends/s) for "
        f"{shape.duration_s:g} s, gap {shape.gap_s:g} s; {shape.backlog_accounts} backlog accounts"
    )
