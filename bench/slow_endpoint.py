"""Scenario 6 — a slow endpoint must not hold the others back (head-of-line blocking).

On-time accounts each have a send due once per period, with no configured gap; in the "with" run one
more account, in the same campaign as the first hundred on-time accounts, has work waiting all the time
and a slow, flaky Messaging endpoint: 200 ± 100 ms per call and 1 % "Downstream error" 502s (retried with
backoff by the service). Figures: the on-time accounts' lateness with the slow account present; baseline,
same run: the same workload without it. Their ratio is the head-of-line blocking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from bench import harness as h
from bench import schedule
from bench.lateness import run_service

SHAPES = {
    "smoke": schedule.Shape(accounts=20, period_s=2, duration_s=6, gap_s=0, warmup_s=3),
    "ci": schedule.Shape(accounts=100, period_s=2, duration_s=20, gap_s=0, warmup_s=4),
    "full": schedule.Shape(accounts=1000, period_s=10, duration_s=60, gap_s=0, warmup_s=8),
}
SLOW = {"latency_ms": 200, "jitter_ms": 100, "error_rate": 0.01, "seed": 6}
TARGET_LATENESS_P99_MS = 50.0
HOL_TOLERANCE = 1.5  # others' p99 with the slow account ≤ 1.5 × without it (+ 10 ms of noise)


async def measure(shape: schedule.Shape, label: str) -> dict[str, Any]:
    async with h.bench_database(label) as dsn:
        async with h.running_service(h.service_settings(dsn, "http://127.0.0.1:9"), supervise=False) as svc:
            workload = await schedule.prepare(svc, shape)
        slow = {**SLOW, "accounts": [str(a) for a in workload.backlog]}
        async with h.sandbox_process({"seed": 6}, slow=slow) as box:
            settings = h.service_settings(dsn, box.url)
            figures = await schedule.observe(settings, box, workload, run_service)
            if workload.backlog:
                stats = (await box.stats())["accounts"].get(str(workload.backlog[0]), {})
                figures["slow_account"] = {"bd_account_id": str(workload.backlog[0]), **stats}
    return figures


def _others(figures: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "on_time_sends_expected",
        "on_time_sends_received",
        "lateness",
        "lateness_first_send_per_account",
        "lateness_after_first_send",
    )
    return {k: figures[k] for k in keep} | {
        "lateness_parts": figures["lateness_parts"],
        "event_loop": figures["event_loop"],
        "cpu": figures["cpu"],
        **({"slow_account": figures["slow_account"]} if "slow_account" in figures else {}),
    }


async def run(size: str, out_dir: Path | None = None) -> dict[str, Any]:
    shape = SHAPES[size]
    with_slow = attrs.evolve(shape, backlog_accounts=1, backlog_in_first_campaign=True)
    report = h.Report("slow-endpoint", size, {**with_slow.to_json(), "slow_account": SLOW})
    report.notes.append(schedule.size_note(shape) + " (+1 slow account in the first campaign)")
    without = await measure(shape, "s6_without")
    present = await measure(with_slow, "s6_with")
    report.figures = _others(present)
    report.baseline = {"without_slow_account": _others(without)}
    p99_with = present["lateness"]["p99_ms"]
    p99_without = without["lateness"]["p99_ms"]
    report.ratios = {
        "others_lateness_p50_with_vs_without": h.ratio(
            present["lateness"]["p50_ms"], without["lateness"]["p50_ms"]
        ),
        "others_lateness_p99_with_vs_without": h.ratio(p99_with, p99_without),
    }
    blocked = None if p99_with is None or p99_without is None else p99_with > HOL_TOLERANCE * p99_without + 10
    report.targets = {
        "others_lateness_p99_ms <= 50": h.target(p99_with, TARGET_LATENESS_P99_MS),
        "no_head_of_line_blocking": {
            "value": {"p99_with_ms": p99_with, "p99_without_ms": p99_without},
            "criterion": f"p99 with <= {HOL_TOLERANCE} x p99 without + 10 ms",
            "met": blocked is False,
        },
    }
    sent = present.get("slow_account", {}).get("requests", 0)
    if not sent:
        report.notes.append("the slow account sent nothing: the scenario did not exercise it")
    else:
        report.notes.append(f"the slow account made {sent} Messaging calls during the run")
    return await h.emit(report, out_dir)
