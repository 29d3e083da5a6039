"""Scenario 7 — several instances on one database (R-OPS-5): the throughput scenario's workload sent by 1, 2
and 4 ``campaignsvc serve`` processes sharing one PostgreSQL, each holding its share of the accounts.

The workload is scenario 1's (bench/throughput.prepare: campaigns of 10 accounts, every send due at once,
gap 0), prepared once and cloned for each pass. Its due times are moved a few seconds ahead, the
processes start and share the accounts out (leases) before the first send is due, and the lean stand-in
(bench/standin.py) records every arrival. Figures per pass: steady sends/s (10–90 % of arrivals), first
to last arrival, CPU ms per send of all the service processes together, duplicates (a key arriving twice:
must be 0), how the accounts were shared (leases per instance) and which instance sent each row
(``campaign_sends.sent_by``). The baseline is the same measurement with one process: the ratios are N
processes to one, on this machine (2 cores, shared with PostgreSQL and the stand-in).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import trio
from trio_asyncio import aio_as_trio

from bench import harness as h
from bench import throughput

SIZES = {"smoke": throughput.SIZES["smoke"], "ci": throughput.SIZES["ci"], "full": throughput.SIZES["full"]}
COUNTS: dict[str, tuple[int, ...]] = {"smoke": (1, 2), "ci": (1, 2, 4), "full": (1, 2, 4)}
LEASE_SECONDS = 3
LEAD_S = 8.0  # the processes boot and share the accounts out before the first send is due


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _log_file(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")


async def _ready(url: str, process: trio.Process, within_s: float = 60.0) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:
        with trio.fail_after(within_s):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"an instance exited with {process.returncode}")
                try:
                    if (await http.get("/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)


async def measure(dsn: str, box: h.SandboxProcess, sends: int, instances: int, logs: Path) -> dict[str, Any]:
    await _counts(
        dsn,
        "UPDATE campaign_participants SET next_send_at = now() + make_interval(secs => $1)"
        " WHERE next_send_at IS NOT NULL RETURNING NULL, 0",
        LEAD_S,
    )
    await box.reset()
    processes: list[trio.Process] = []
    try:
        for i in range(instances):
            port = _free_port()
            env = {
                **os.environ,
                "DATABASE_URL": dsn,
                "MESSAGING_SERVICE_URL": box.url,
                "INSTANCE_ID": f"bench-{i}",
                "LEASE_SECONDS": str(LEASE_SECONDS),
                "PORT": str(port),
                "HOST": "127.0.0.1",
                "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "0",
                "CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY": "0",
                "LOG_LEVEL": "warning",
            }
            with _log_file(logs / f"instances-{instances}-{i}.log") as log:
                processes.append(
                    await trio.lowlevel.open_process(
                        [sys.executable, "-m", "campaignsvc", "serve"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=h.ROOT,
                    )
                )
            await _ready(f"http://127.0.0.1:{port}", processes[-1])
        cpu_before = sum(_cpu_s(p.pid) for p in processes)
        started = time.monotonic()
        with trio.fail_after(LEAD_S + max(120.0, sends / 50)):
            while (await box.stats())["requests"] < sends:  # noqa: ASYNC110 - another process's state
                await trio.sleep(0.2)
        elapsed = time.monotonic() - started
        cpu = sum(_cpu_s(p.pid) for p in processes) - cpu_before
        held = await _counts(dsn, "SELECT owner, count(*)::int FROM campaign_account_leases GROUP BY 1")
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            with trio.move_on_after(30) as waited:
                await p.wait()
            if waited.cancelled_caught:
                p.kill()
    records = await box.received()
    arrivals = [r["received_mono"] for r in records]
    judged = throughput.judge_arrivals(records, throughput.GAP_S)
    by_sender = await _counts(
        dsn, "SELECT sent_by, count(*)::int FROM campaign_sends WHERE status = 'sent' GROUP BY 1"
    )
    steady = throughput.steady_rate(arrivals)
    return {
        "instances": instances,
        "sends": sends,
        "arrivals": len(records),
        "steady_sends_per_s": None if steady is None else round(steady, 1),
        "first_to_last_arrival_s": round(max(arrivals) - min(arrivals), 3) if arrivals else None,
        "service_cpu_ms_per_send": throughput.per_send_ms(cpu, sends),
        "wall_s_incl_lead": round(elapsed, 2),
        "duplicates": judged["duplicates"],
        "sent_by_instance": dict(sorted(by_sender.items(), key=lambda kv: str(kv[0]))),
        "leases_per_instance_at_end": dict(sorted(held.items(), key=lambda kv: str(kv[0]))),
    }


async def _counts(dsn: str, sql: str, *args: Any) -> dict[Any, int]:
    """``sql``'s rows as {first column: second}, on a connection of its own."""
    conn = await aio_as_trio(asyncpg.connect)(dsn)
    try:
        return {r[0]: r[1] for r in await aio_as_trio(conn.fetch)(sql, *args)}
    finally:
        await aio_as_trio(conn.close)()


async def run(size: str, out_dir: Path | None = None) -> dict[str, Any]:
    p = SIZES[size]
    counts = COUNTS[size]
    report = h.Report("instances", size, {**p, "instances": list(counts), "lease_s": LEASE_SECONDS})
    passes: dict[int, dict[str, Any]] = {}
    logs = h.ROOT / "test-artifacts" / "bench-instances"
    async with h.standin_process() as standin, h.bench_database("s7_prepared") as prepared:
        sends = await throughput.prepare(h.service_settings(prepared, standin.url), p)
        for n in counts:
            async with h.bench_database(f"s7_n{n}", template=prepared) as dsn:
                passes[n] = await measure(dsn, standin, sends, n, logs)
    base = passes[counts[0]]
    report.baseline = {"one_instance": base}
    report.figures = {f"instances_{n}": passes[n] for n in counts[1:]}
    report.ratios = {
        f"instances_{n}_vs_1_steady": h.ratio(passes[n]["steady_sends_per_s"], base["steady_sends_per_s"])
        for n in counts[1:]
    }
    report.targets = {
        f"duplicates == 0 (instances {n})": h.target(passes[n]["duplicates"], 0) for n in counts
    }
    report.notes.append(
        "every pass runs real `campaignsvc serve` processes against one database; the one-instance pass is "
        "the baseline, measured the same way in the same run"
    )
    return await h.emit(report, out_dir)
