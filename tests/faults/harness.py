"""The fault tier's stand: the sandbox process, the service process (restartable), the API over HTTP, and
the invariants every scenario checks at the sandbox and in the database.

The sandbox is the witness: it records every arrival (its idempotency key, account, contact, text and
time), so what a scenario asserts is what Telegram would have seen, not what the service believes.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from campaignsvc.storage.store import Store
from tests.conftest import ROOT, ServiceProcess, free_port, start_service, stop_service
from tests.e2e.processes import HttpClient, start_sandbox_process
from tests.factories import Org
from tests.integration.dispatch_helpers import Env

ARTIFACTS = ROOT / "test-artifacts" / "faults"
# The gap is judged at the sandbox's arrival stamps, and beside each pair under it, at the two calls'
# starts in the service's ledger (the instant each request was written). A scenario fails on any pair
# the service started under the gap, and on any arrival more than this under it unless the service's
# starts kept the gap: the stand-in, a separate process on two cores shared with PostgreSQL in crash
# recovery and a restarting service, then stamped an arrival late (seen up to ~65 ms), which no sender
# can correct. Every arrival under the gap is counted and reported either way.
GAP_GROSS_S = 0.050
# docs/semantics.md: a send claimed up to 100 ms before its start still goes out if a reply lands in
# between; the extra 50 ms covers the call's way to the sandbox.
CLAIM_LEAD_S = 0.100
REPLY_NOISE_S = 0.050
TERMINAL = {"completed", "replied", "failed"}


@attrs.define
class Stand:
    """One scenario's world. ``service_env`` is reused on every (re)start."""

    tmp: Path
    store: Store
    org: Org
    service_env: dict[str, str]
    sandbox_port: int
    sandbox: Any = None
    service: ServiceProcess | None = None
    http: httpx.AsyncClient | None = None
    env: Env | None = None
    starts: int = 0
    kills: int = 0

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    async def start_sandbox(self, *args: str, config: dict[str, Any] | None = None) -> None:
        self.sandbox = await start_sandbox_process(self.tmp / "sandbox.log", self.sandbox_port, *args)
        if config:
            await self.sandbox_config(config)

    async def sandbox_config(self, patch: dict[str, Any]) -> None:
        async with httpx.AsyncClient(base_url=self.sandbox_url, timeout=10) as box:
            response = await box.post("/sandbox/config", json=patch)
            assert response.status_code == 200, response.text

    async def sandbox_get(self, what: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.sandbox_url, timeout=30) as box:
            return (await box.get(f"/sandbox/{what}")).json()["items"]

    async def start_service(self, *, args: tuple[str, ...] = ("serve",)) -> None:
        self.starts += 1
        self.service = await start_service(
            dict(self.service_env), self.tmp / f"service-{self.starts}.log", args=args, ready_timeout=60
        )
        if self.http is not None:
            await self.http.aclose()
        self.http = httpx.AsyncClient(base_url=self.service.base_url, timeout=30)
        self.env = Env(
            store=self.store,
            settings=None,
            sandbox=None,
            supervisor=None,
            services=None,
            client=HttpClient(self.http),
            org=self.org,
        )

    def kill_service(self) -> None:
        assert self.service is not None
        self.service.process.send_signal(signal.SIGKILL)
        self.service.process.wait(10)
        self.kills += 1

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
        if self.service is not None:
            stop_service(self.service)
        if self.sandbox is not None:
            self.sandbox.terminate()
            self.sandbox.wait(10)

    async def wait_completed(self, campaign_ids: list[str], within: float) -> float | None:
        """Seconds until every campaign is completed, or None after ``within`` (the invariants then name
        the campaigns and participants left behind, beside the scenario's other figures)."""
        started = trio.current_time()
        with trio.move_on_after(within):
            while True:
                statuses = await self.campaign_statuses(campaign_ids)
                if all(s == "completed" for s in statuses.values()):
                    return round(trio.current_time() - started, 2)
                await trio.sleep(0.2)
        return None

    async def campaign_statuses(self, campaign_ids: list[str]) -> dict[str, str]:
        rows = await self.store.fetch(
            "SELECT id::text, status FROM campaigns WHERE id = ANY($1::uuid[])",
            [uuid.UUID(c) for c in campaign_ids],
        )
        return {r["id"]: r["status"] for r in rows}


async def open_stand(tmp: Path, store: Store, org: Org, service_env: dict[str, str]) -> Stand:
    port = free_port()
    env = {
        "MESSAGING_SERVICE_URL": f"http://127.0.0.1:{port}",
        "CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY": "0",
        "IN_DOUBT_RETRY_AFTER_SECONDS": "1",
        "LOG_LEVEL": "warning",
        **service_env,
    }
    return Stand(tmp=tmp, store=store, org=org, service_env=env, sandbox_port=port)


def _mono_of(record: dict[str, Any]) -> float:
    return float(record["received_mono"])


def gap_violations(received: list[dict[str, Any]], gaps: dict[str, float]) -> list[dict[str, Any]]:
    """Consecutive arrivals of one account (every call, replays included: each is a Messaging call the
    service started) closer than that account's configured gap."""
    by_account: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for record in received:
        if record.get("bdAccountId") in gaps:
            by_account[record["bdAccountId"]].append(record)
    out = []
    for account, records in by_account.items():
        records.sort(key=_mono_of)
        for before, after in itertools.pairwise(records):
            delta = _mono_of(after) - _mono_of(before)
            if delta < gaps[account]:
                out.append(
                    {
                        "account": account,
                        "delta_s": round(delta, 4),
                        "gap_s": gaps[account],
                        "keys": [before.get("idempotencyKey"), after.get("idempotencyKey")],
                    }
                )
    return sorted(out, key=lambda v: v["delta_s"] - v["gap_s"])  # the worst first


async def invariants(
    stand: Stand,
    campaign_ids: list[str],
    *,
    gaps: dict[str, float],
    steps: dict[str, int],
    replied_ok: bool = False,
    fault_over: dt.datetime | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Figures and broken invariants after the scenario. ``gaps``: account id → its configured gap;
    ``steps``: campaign id → how many messages a participant that completed must have been sent."""
    received = await stand.sandbox_get("received")
    messages = await stand.sandbox_get("messages")
    keys = collections.Counter(m["metadata"]["idempotencyKey"] for m in messages)
    twice_keys = {k: n for k, n in keys.items() if n > 1}
    texts = collections.Counter((m["contact_id"], m["content"]) for m in messages)
    twice_texts = {f"{c}: {t!r}": n for (c, t), n in texts.items() if n > 1}
    per_contact = collections.Counter(m["contact_id"] for m in messages)
    participants = await stand.store.fetch(
        "SELECT campaign_id::text AS campaign_id, contact_id::text AS contact_id, status, next_send_at"
        " FROM campaign_participants WHERE campaign_id = ANY($1::uuid[])",
        [uuid.UUID(c) for c in campaign_ids],
    )
    now = dt.datetime.now(dt.UTC)
    lost = []
    for p in participants:
        if p["status"] not in TERMINAL:
            overdue = p["next_send_at"] is None or p["next_send_at"] < now
            if overdue:
                lost.append(f"{p['contact_id']} left {p['status']} (next_send_at {p['next_send_at']})")
        elif p["status"] == "completed" and per_contact[p["contact_id"]] < steps[p["campaign_id"]]:
            lost.append(
                f"{p['contact_id']} completed with {per_contact[p['contact_id']]} of "
                f"{steps[p['campaign_id']]} messages delivered"
            )
        elif p["status"] == "replied" and not replied_ok:
            lost.append(f"{p['contact_id']} replied but this scenario has no replies")
    failed = sum(1 for p in participants if p["status"] == "failed")
    violations = gap_violations(received, gaps)
    await _add_service_starts(stand, campaign_ids, violations)
    statuses = await stand.campaign_statuses(campaign_ids)
    figures = {
        "kills": stand.kills,
        "participants": len(participants),
        "arrivals": len(received),
        "deliveries": len(messages),
        "duplicate_keys": sum(n - 1 for n in twice_keys.values()),
        "duplicate_texts": sum(n - 1 for n in twice_texts.values()),
        "lost": len(lost),
        "failed_participants": failed,
        "gap_violations": len(violations),
        "gap_violations_over_50ms": sum(1 for v in violations if v["delta_s"] < v["gap_s"] - GAP_GROSS_S),
        # Of those, the ones whose two calls the service started at least the gap apart (its ledger's call
        # starts): the stand-in stamped the first arrival late, or the second early.
        "gap_violations_stand_in_lag": sum(1 for v in violations if _service_kept_gap(v)),
        "service_starts_under_gap": sum(1 for v in violations if _service_broke_gap(v)),
        "min_gap_excess_s": _min_excess(received, gaps),
        "campaigns": statuses,
        "recovery_s": None if fault_over is None else recovery_s(messages, fault_over),
    }
    problems = []
    if twice_keys:
        problems.append(f"idempotency keys delivered twice: {_head(twice_keys)}")
    if twice_texts:
        problems.append(f"contacts given the same text twice: {_head(twice_texts)}")
    if lost:
        problems.append(f"participants lost: {_head(lost)}")
    if failed:
        problems.append(f"{failed} participants failed")
    early = [v for v in violations if _service_broke_gap(v)]
    if early:
        problems.append(f"calls the service started under the gap: {_head(early)}")
    gross = [v for v in violations if v["delta_s"] < v["gap_s"] - GAP_GROSS_S and not _service_kept_gap(v)]
    if gross:
        problems.append(f"arrivals under the gap by more than {GAP_GROSS_S * 1000:.0f} ms: {_head(gross)}")
    if any(s != "completed" for s in statuses.values()):
        left = collections.Counter(p["status"] for p in participants)
        problems.append(f"campaigns not completed: {statuses}, participants {dict(left)}")
    return figures, problems


async def _add_service_starts(
    stand: Stand, campaign_ids: list[str], violations: list[dict[str, Any]]
) -> None:
    """Beside each arrival pair under the gap, how far apart the service started the two calls: the
    ledger's ``sent_at`` is the instant the request was written (None for a repeat of one key, or where a
    later retry of the first key rewrote its start)."""
    if not violations:
        return
    rows = await stand.store.fetch(
        "SELECT idempotency_key, sent_at FROM campaign_sends WHERE campaign_id = ANY($1::uuid[])",
        [uuid.UUID(c) for c in campaign_ids],
    )
    starts = {r["idempotency_key"]: r["sent_at"] for r in rows}
    for v in violations:
        first, second = v["keys"]
        delta = None
        if first != second and first in starts and second in starts:
            delta = round((starts[second] - starts[first]).total_seconds(), 4)
        v["service_delta_s"] = delta if delta is not None and delta >= 0 else None


def _service_kept_gap(v: dict[str, Any]) -> bool:
    return v.get("service_delta_s") is not None and v["service_delta_s"] >= v["gap_s"]


def _service_broke_gap(v: dict[str, Any]) -> bool:
    return v.get("service_delta_s") is not None and v["service_delta_s"] < v["gap_s"]


def recovery_s(messages: list[dict[str, Any]], fault_over: dt.datetime) -> float | None:
    """Seconds from the end of the last fault to the first message delivered after it."""
    after = [dt.datetime.fromisoformat(m["sent_at"].replace("Z", "+00:00")) for m in messages]
    after = [t for t in after if t >= fault_over]
    return round((min(after) - fault_over).total_seconds(), 3) if after else None


def _min_excess(received: list[dict[str, Any]], gaps: dict[str, float]) -> float | None:
    """The smallest (arrival delta − gap) over every account: negative means under the gap."""
    best: float | None = None
    by_account: dict[str, list[float]] = collections.defaultdict(list)
    for record in received:
        if record.get("bdAccountId") in gaps:
            by_account[record["bdAccountId"]].append(_mono_of(record))
    for account, times in by_account.items():
        times.sort()
        for a, b in itertools.pairwise(times):
            excess = b - a - gaps[account]
            best = excess if best is None else min(best, excess)
    return None if best is None else round(best, 4)


def _head(items: Any, n: int = 5) -> str:
    seq = list(items.items()) if isinstance(items, dict) else list(items)
    more = f" … and {len(seq) - n} more" if len(seq) > n else ""
    return f"{seq[:n]}{more}"


def report(scenario: str, figures: dict[str, Any]) -> None:
    """One JSON line on stdout (``pytest -s``) and ``test-artifacts/faults/<scenario>.json``."""
    line = json.dumps({"scenario": scenario, **figures}, default=str, sort_keys=True)
    print(line)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{scenario}.json").write_text(line + "\n")


def check(scenario: str, figures: dict[str, Any], problems: list[str]) -> None:
    """Report first, so a failing scenario still leaves its figures; then fail on every broken invariant."""
    report(scenario, {**figures, "problems": problems})
    assert not problems, f"{scenario}: " + "; ".join(problems)
