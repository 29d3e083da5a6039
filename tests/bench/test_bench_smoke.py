"""Every benchmark scenario runs end to end at its smallest size and writes a well-formed report.

These check that the benchmarks work (shape of the JSON, and that the scenario really did its work),
never how fast anything is: speed is for ``python -m bench`` on a quiet machine (docs/performance.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.bench

REPORT_KEYS = {
    "scenario",
    "size",
    "date",
    "command",
    "machine",
    "load_average",
    "parameters",
    "figures",
    "baseline",
    "ratios",
    "targets",
    "targets_met",
    "notes",
}


def run_bench(scenario: str, out: Path) -> dict:
    process = subprocess.run(
        [sys.executable, "-m", "bench", scenario, "--size", "smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    printed = json.loads(process.stdout)
    written = json.loads((out / f"{scenario}-smoke.json").read_text())
    assert printed == written
    return written


def check_shape(report: dict, scenario: str) -> None:
    assert set(report) >= REPORT_KEYS
    assert report["scenario"] == scenario
    assert report["size"] == "smoke"
    assert report["machine"]["cpu_count"] >= 1
    assert report["machine"]["ram_gib"] > 0
    assert len(report["load_average"]["before"]) == 3
    assert len(report["load_average"]["after"]) == 3
    assert report["targets"], "each scenario judges at least one SPEC PERF target"
    assert set(report["targets_met"]) == set(report["targets"])
    assert all(isinstance(met, bool) for met in report["targets_met"].values())
    assert report["baseline"], "each figure is reported beside a baseline"


def test_every_scenario_has_a_module() -> None:
    assert set(SCENARIOS) == {"throughput", "lateness", "start", "stats", "footprint", "slow-endpoint"}


def test_throughput(tmp_path: Path) -> None:
    report = run_bench("throughput", tmp_path)
    check_shape(report, "throughput")
    figures = report["figures"]
    assert figures["sends"] > 0
    assert figures["sent_rows_committed"] == figures["sends"]
    assert figures["messages_received_by_sandbox"] == figures["sends"]
    assert figures["commits_per_send"] > 0
    ledger = report["baseline"]["ledger_writes_only"]
    assert ledger["sends"] == figures["sends"]
    assert report["baseline"]["sandbox_alone"]["requests_per_s"] > 0
    assert figures["statements"]["statements_per_send"] > 0
    assert report["ratios"]["service_vs_ledger_sends_per_s"] > 0


def test_lateness(tmp_path: Path) -> None:
    report = run_bench("lateness", tmp_path)
    check_shape(report, "lateness")
    for figures in (report["figures"], report["baseline"]["poller"]):
        assert figures["on_time_sends_received"] == figures["on_time_sends_expected"] > 0
        assert figures["lateness"]["n"] == figures["on_time_sends_expected"]
        assert figures["backlog_sends_received"] > 0
        assert figures["gaps_checked"] > 0
        assert figures["unmatched_requests"] == 0
        assert figures["sent_before_due"] == 0


def test_start(tmp_path: Path) -> None:
    report = run_bench("start", tmp_path)
    check_shape(report, "start")
    figures = report["figures"]
    assert figures["participants_scheduled"] == figures["participants"] > 0
    assert 0 < figures["start_to_all_scheduled_s"] <= figures["start_to_first_send_s"]
    assert report["baseline"]["single_insert_select"]["participants"] == figures["participants"]


def test_stats(tmp_path: Path) -> None:
    report = run_bench("stats", tmp_path)
    check_shape(report, "stats")
    figures = report["figures"]
    assert figures["rows"]["participants"] > 0
    assert figures["endpoints"]["stats"]["query"]["runs"] > 0
    assert "without_0003_indexes" in report["baseline"]


def test_footprint(tmp_path: Path) -> None:
    report = run_bench("footprint", tmp_path)
    check_shape(report, "footprint")
    figures = report["figures"]
    campaigns = report["parameters"]["campaigns"]
    assert figures["campaign_actors"] == campaigns
    assert figures["account_limiters"] == campaigns
    assert figures["rss_with_actors_and_limiters_mib"] >= figures["rss_before_supervisor_mib"] > 0
    assert figures["heap_per_campaign_actor_kib"] > 0
    assert report["baseline"]["bare_trio_actor"]["heap_per_actor_kib"] > 0


def test_slow_endpoint(tmp_path: Path) -> None:
    report = run_bench("slow-endpoint", tmp_path)
    check_shape(report, "slow-endpoint")
    with_slow, without = report["figures"], report["baseline"]["without_slow_account"]
    for figures in (with_slow, without):
        assert figures["on_time_sends_received"] == figures["on_time_sends_expected"] > 0
    assert with_slow["slow_account"]["requests"] > 0
    assert "slow_account" not in without
