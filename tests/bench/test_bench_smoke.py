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
    assert set(SCENARIOS) == {
        "throughput",
        "lateness",
        "start",
        "stats",
        "footprint",
        "slow-endpoint",
        "instances",
    }


def test_throughput(tmp_path: Path) -> None:
    report = run_bench("throughput", tmp_path)
    check_shape(report, "throughput")
    figures = report["figures"]
    sends = figures["sends"]
    assert sends > 0
    assert figures["sent_rows_committed"] == sends
    assert figures["messages_received_by_standin"] == sends
    assert figures["duplicates"] == 0
    assert figures["arrivals_under_gap"] == 0
    assert figures["durable_sends_per_s"] > 0
    assert figures["steady_sends_per_s"] > 0
    assert figures["commits_per_send_incl_boot"] > 0
    cpu = figures["cpu_ms_per_send"]
    assert set(cpu) == {"service", "postgres_backends", "standin", "total"}
    assert cpu["service"] > 0 and cpu["standin"] > 0
    backends = figures["cpu"]["postgres_backends"]
    assert backends["backends_seen"] > 0
    assert {"present_at_start", "appeared_during", "disappeared_during"} <= set(backends)
    statements = figures["statements"]
    assert statements["statements_per_send"] > 0
    assert statements["after_boot"]["sends"] > 0
    assert figures["statements_per_send"] == statements["after_boot"]["statements_per_send"] > 0
    assert figures["commits_per_send"] == statements["after_boot"]["commits_per_send"] > 0
    assert statements["claims"]["rows_claimed"] >= sends
    assert statements["claims"]["rows_per_claim_statement"] >= 1
    assert statements["outcomes"]["outcomes_per_batch"] >= 1

    baseline = report["baseline"]
    naive = baseline["naive_loop"]
    assert naive["workers"] == 16
    assert naive["event_loop"] != "SyncTrioEventLoop"
    assert naive["sends"] == naive["messages_received_by_standin"] == sends
    assert naive["duplicates"] == 0
    assert naive["commits_per_send"] >= 2
    assert set(naive["cpu_ms_per_send"]) == set(cpu)
    assert baseline["ledger_writes_only"]["sends"] == sends
    for endpoint in ("standin_alone", "sandbox_alone"):
        assert baseline[endpoint]["requests_per_s"] > 0
        assert baseline[endpoint]["server_cpu_ms_per_request"] > 0
    # Keep-alive: the probe's requests ride on as many connections as it has in flight (one more: the
    # bench's own control client may reconnect after httpx's keep-alive expiry).
    probe = baseline["standin_alone"]
    assert 1 <= probe["connections_opened"] <= probe["in_flight"] + 1

    ratios = report["ratios"]
    assert ratios["vs_naive_loop"] > 0
    assert ratios["vs_naive_loop_boot_to_committed"] > 0
    assert ratios["vs_ledger_sends_per_s"] > 0
    assert "vs_naive_loop >= 1.5" in report["targets"]


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


def test_instances(tmp_path: Path) -> None:
    report = run_bench("instances", tmp_path)
    check_shape(report, "instances")
    one, two = report["baseline"]["one_instance"], report["figures"]["instances_2"]
    for figures in (one, two):
        assert figures["arrivals"] == figures["sends"] > 0
        assert figures["duplicates"] == 0
        assert sum(figures["sent_by_instance"].values()) == figures["sends"]
    assert set(one["sent_by_instance"]) == {"bench-0"}
    assert set(two["sent_by_instance"]) == {"bench-0", "bench-1"}
    assert report["ratios"]["instances_2_vs_1_steady"] > 0
