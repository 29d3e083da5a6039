"""What every scenario shares: the machine, the database, the sandbox process, the running service, the
report.

- **Database**: each run gets its own database ``csvc_<pid>_bench_<label>_<hex>`` cloned from a template
  built once per process by the real migrations, on the PostgreSQL at ``CAMPAIGNSVC_BENCH_PG`` (default:
  the test suite's ``CAMPAIGNSVC_TEST_PG``, else ``postgresql://postgres@127.0.0.1:5432/postgres``); the
  test suite's cleanup recognises the name if a run dies. Dropped afterwards.
- **Sandbox**: the Messaging Service stand-in runs as its own process (``bench.sandbox_proc``) on loopback,
  as the real one would, so it does not share the dispatcher's interpreter.
- **Service**: the real store, supervisor and HTTP app (quart test client, no sockets) in this process.
- **Report**: one JSON object — machine, load average before/after, parameters, figures, the baseline's
  figures, ratios, and the SPEC PERF targets met — printed and written to ``bench/results``.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import httpx
import trio
from trio_asyncio import aio_as_trio

from campaignsvc import heap
from campaignsvc.actors.supervisor import Supervisor
from campaignsvc.config import Settings
from campaignsvc.integrations.messaging import MessagingClient
from campaignsvc.runtime import build
from campaignsvc.storage import migrate, seed
from campaignsvc.storage.store import Store, init_connection

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIZES = ("smoke", "ci", "full")
ADMIN_URL = os.environ.get(
    "CAMPAIGNSVC_BENCH_PG",
    os.environ.get("CAMPAIGNSVC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
)

# --- numbers -------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms_summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50/p90/p99/max and mean of durations given in seconds, in milliseconds."""

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 2)

    return {
        "n": len(seconds),
        "p50_ms": ms(percentile(seconds, 50)),
        "p90_ms": ms(percentile(seconds, 90)),
        "p99_ms": ms(percentile(seconds, 99)),
        "max_ms": ms(max(seconds) if seconds else None),
        "mean_ms": ms(sum(seconds) / len(seconds) if seconds else None),
    }


def ratio(value: float | None, base: float | None, digits: int = 3) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return round(value / base, digits)


# --- the machine ---------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram_kib = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kib = int(line.split()[1])
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(ram_kib / 1024 / 1024, 1) if ram_kib else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rss_mib() -> float:
    """This process's resident set size now (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def settle_memory() -> float:
    gc.collect()
    return rss_mib()


def cpu_seconds_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU of another process (from /proc), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


@attrs.define
class CpuWindow:
    """CPU used between ``start()`` and ``stop()``: this process, the sandbox, and the whole machine."""

    sandbox_pid: int | None = None
    wall: float = 0.0
    _t0: float = 0.0
    _self0: float = 0.0
    _sandbox0: float | None = None
    _sys0: tuple[float, float] = (0.0, 0.0)
    figures: dict[str, float | None] = attrs.field(factory=dict)

    def start(self) -> CpuWindow:
        self._t0 = time.monotonic()
        self._self0 = cpu_seconds_self()
        self._sandbox0 = cpu_seconds_of(self.sandbox_pid) if self.sandbox_pid else None
        self._sys0 = system_cpu()
        return self

    def stop(self) -> dict[str, float | None]:
        self.wall = time.monotonic() - self._t0
        busy1, total1 = system_cpu()
        busy = busy1 - self._sys0[0]
        total = total1 - self._sys0[1]
        sandbox = None
        if self.sandbox_pid and self._sandbox0 is not None:
            now = cpu_seconds_of(self.sandbox_pid)
            sandbox = None if now is None else now - self._sandbox0
        wall = max(self.wall, 1e-9)
        self.figures = {
            "wall_s": round(self.wall, 3),
            "service_process_cpu_s": round(cpu_seconds_self() - self._self0, 3),
            "service_process_cpu_share": round((cpu_seconds_self() - self._self0) / wall, 3),
            "sandbox_process_cpu_s": None if sandbox is None else round(sandbox, 3),
            "machine_busy_share": round(busy / total, 3) if total else None,
            "machine_busy_cores": round(busy / total * (os.cpu_count() or 1), 3) if total else None,
        }
        return self.figures


async def watch_loop(work: Callable[[], Awaitable[None]], tick_s: float = 0.005) -> dict[str, Any]:
    """Run ``work`` while measuring how long this process's event loop is blocked: how late a short
    sleep wakes up (any stall delays every actor), and the garbage collector's pauses per generation."""
    stalls: list[float] = []
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started.append(time.perf_counter())
        elif gc_started:
            pauses[info["generation"]].append(time.perf_counter() - gc_started.pop())

    async def ticker() -> None:
        while True:
            t0 = trio.current_time()
            await trio.sleep(tick_s)
            stalls.append(max(0.0, trio.current_time() - t0 - tick_s))

    gc.callbacks.append(on_gc)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await work()
            nursery.cancel_scope.cancel()
    finally:
        gc.callbacks.remove(on_gc)
    return {
        "stall": ms_summary(stalls),
        "stalls_over_20_ms": sum(1 for s in stalls if s > 0.020),
        "stalls_over_50_ms": sum(1 for s in stalls if s > 0.050),
        "gc_pauses": {
            f"gen{g}": {
                "count": len(v),
                "max_ms": round(max(v) * 1000, 2) if v else None,
                "total_ms": round(sum(v) * 1000, 1),
            }
            for g, v in pauses.items()
        },
    }


# --- the database --------------------------------------------------------------------------------------


def url_for(database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def admin(sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return await aio_as_trio(run)()


_template: str | None = None


async def _template_database() -> str:
    """A database built by the real migrations, once per process; cloned for each run."""
    global _template
    if _template is None:
        name = f"csvc_{os.getpid()}_bench_tpl"
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin(f'CREATE DATABASE "{name}"')
        await migrate.apply(url_for(name), migrate.discover(crm_schema="standalone"))
        _template = name
    return _template


async def drop_template() -> None:
    global _template
    if _template is not None:
        with trio.CancelScope(shield=True):
            await admin(f'DROP DATABASE IF EXISTS "{_template}" WITH (FORCE)')
        _template = None


@contextlib.asynccontextmanager
async def bench_database(
    label: str, *, template: str | None = None, empty: bool = False
) -> AsyncIterator[str]:
    """A fresh database for one run; yields its DSN and drops it afterwards. By default a clone of the
    migrated template; ``template`` clones another (bench) database instead (nobody may be connected to
    it); ``empty`` gives an empty one (``template0``), for a baseline with its own tables."""
    if empty:
        source = "template0"
    elif template is not None:
        source = database_name(template)
    else:
        source = await _template_database()
    name = f"csvc_{os.getpid()}_bench_{label}_{uuid.uuid4().hex[:6]}"
    await admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    try:
        yield url_for(name)
    finally:
        with trio.CancelScope(shield=True):
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name(dsn: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(dsn).path.lstrip("/")


async def server_version() -> str:
    rows = await admin("SHOW server_version")
    return rows[0][0]


async def commits(dsn: str) -> int:
    """Committed transactions of the database so far (``pg_stat_database.xact_commit``).

    Backends report their counts when they go idle (at most once a second) or exit, so read this after
    the pools that did the work are closed."""
    rows = await admin("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database_name(dsn))
    return int(rows[0][0]) if rows else 0


async def settled_commits(dsn: str) -> int:
    """``commits`` once the count stops moving (other sessions' pending reports have landed)."""
    last = await commits(dsn)
    for _ in range(20):
        await trio.sleep(0.6)
        now = await commits(dsn)
        if now == last:
            return now
        last = now
    return last


class BackendCpu:
    """CPU (utime + stime from ``/proc/<pid>/stat``) of the PostgreSQL backends serving one database.

    The backends are the pids ``pg_stat_activity`` lists for the database (client backends and any
    autovacuum worker), read before (``start``), every ``interval_s`` while ``run`` runs, and after
    (``stop``). A backend listed at the first reading counts from that reading; one that appears later
    counts from zero (a forked process starts with no CPU time, so all of its life is in the window); one
    that is gone by the last reading counts up to its last reading (at most ``interval_s`` of its CPU
    is lost). The figures say how many appeared and disappeared. PostgreSQL must run on this machine with
    its ``/proc`` readable; otherwise the CPU figure is None. The readings use one connection to the
    admin database, so its own backend is not counted."""

    def __init__(self, database: str, interval_s: float = 0.2) -> None:
        self.database = database
        self.interval_s = interval_s
        self.first: dict[int, float] = {}  # pid → CPU at first sight (0 for those appearing later)
        self.last: dict[int, float] = {}  # pid → latest CPU read
        self.kind: dict[int, str] = {}  # pid → backend_type
        self.at_start: set[int] = set()
        self.readable = True
        self.polls = 0
        self._conn: asyncpg.Connection | None = None
        self._stopping = trio.Event()
        self._done = trio.Event()
        self._listed: set[int] = set()
        self.figures: dict[str, Any] = {}

    async def start(self) -> BackendCpu:
        self._conn = await aio_as_trio(asyncpg.connect)(ADMIN_URL)
        await self._read(first=True)
        return self

    async def run(self) -> None:
        """Read every ``interval_s`` until ``stop``; the readings catch backends that come and go."""
        try:
            while not self._stopping.is_set():
                with trio.move_on_after(self.interval_s):
                    await self._stopping.wait()
                if not self._stopping.is_set():
                    await self._read()
        finally:
            self._done.set()

    async def stop(self) -> dict[str, Any]:
        self._stopping.set()
        await self._read()
        assert self._conn is not None
        with trio.CancelScope(shield=True):
            await aio_as_trio(self._conn.close)()
        ended = set(self.last) - self._listed
        cpu = sum(self.last[pid] - self.first[pid] for pid in self.last) if self.readable else None
        by_type: dict[str, float] = collections.defaultdict(float)
        for pid in self.last:
            by_type[self.kind[pid]] += self.last[pid] - self.first[pid]
        self.figures = {
            "cpu_s": None if cpu is None else round(cpu, 3),
            "cpu_s_by_backend_type": {k: round(v, 3) for k, v in by_type.items()} if self.readable else None,
            "backends_seen": len(self.last),
            "present_at_start": len(self.at_start),
            "appeared_during": len(set(self.last) - self.at_start),
            "disappeared_during": len(ended),
            "readings": self.polls,
            "interval_s": self.interval_s,
        }
        return self.figures

    async def _read(self, first: bool = False) -> None:
        assert self._conn is not None
        rows = await aio_as_trio(self._conn.fetch)(
            "SELECT pid, coalesce(backend_type, '') AS kind FROM pg_stat_activity WHERE datname = $1",
            self.database,
        )
        self.polls += 1
        self._listed = set()
        for r in rows:
            pid = r["pid"]
            cpu = cpu_seconds_of(pid)
            if cpu is None:
                if pid not in self.last:
                    self.readable = self.readable and not first and bool(self.last)
                continue
            self._listed.add(pid)
            if pid not in self.first:
                self.first[pid] = cpu if first else 0.0
                self.kind[pid] = r["kind"]
                if first:
                    self.at_start.add(pid)
            self.last[pid] = cpu


# --- the sandbox process -------------------------------------------------------------------------------


@attrs.define
class SandboxProcess:
    """``bench.sandbox_proc`` on an ephemeral loopback port; read its records over HTTP."""

    url: str
    process: trio.Process
    http: httpx.AsyncClient

    @property
    def pid(self) -> int:
        return self.process.pid

    async def received(self) -> list[dict[str, Any]]:
        response = await self.http.get("/sandbox/received", timeout=120)
        response.raise_for_status()
        return response.json()["items"]

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/sandbox/stats", timeout=60)
        response.raise_for_status()
        return response.json()

    async def requests(self) -> int:
        return (await self.stats())["requests"]

    async def wait_requests(self, count: int, within_s: float) -> None:
        """Poll (the sandbox is another process) until it has received ``count`` requests."""
        with trio.fail_after(within_s):
            while await self.requests() < count:  # noqa: ASYNC110 - another process's state
                await trio.sleep(0.01)

    async def configure(self, patch: dict[str, Any]) -> None:
        response = await self.http.post("/sandbox/config", json=patch)
        response.raise_for_status()

    async def reset(self) -> None:
        response = await self.http.post("/sandbox/reset")
        response.raise_for_status()


@contextlib.asynccontextmanager
async def sandbox_process(
    config: dict[str, Any] | None = None, slow: dict[str, Any] | None = None
) -> AsyncIterator[SandboxProcess]:
    """Start the sandbox as its own process; ``slow`` makes some accounts slow (see bench.sandbox_proc)."""
    spec = json.dumps({"config": config or {}, "slow": slow or {}})
    async with _endpoint_process("bench.sandbox_proc", spec) as box:
        yield box


@contextlib.asynccontextmanager
async def standin_process(latency_ms: float = 0.0) -> AsyncIterator[SandboxProcess]:
    """Start the lean Messaging stand-in (``bench.standin``: raw sockets + h11) as its own process. It
    answers the sandbox's record and reset routes, so the same :class:`SandboxProcess` reads it."""
    async with _endpoint_process("bench.standin", json.dumps({"latency_ms": latency_ms})) as box:
        yield box


@contextlib.asynccontextmanager
async def _endpoint_process(module: str, spec: str) -> AsyncIterator[SandboxProcess]:
    """``python -m <module> <spec>``: a Messaging endpoint that prints its base URL as its first line."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", module, spec], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(60):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1024)
                if not chunk:
                    break
                line += chunk
        url = line.decode().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"{module} did not start: {url!r}")
        # Idle keep-alive connections kept for the run: the control calls come minutes apart, and an
        # endpoint that counts connections (the stand-in) should count only its callers'.
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=600)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            yield SandboxProcess(url=url, process=process, http=http)
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.terminate()
                with trio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- the service ---------------------------------------------------------------------------------------


def service_settings(dsn: str, sandbox_url: str, **overrides: Any) -> Settings:
    """Settings of the service under test: nothing external but the sandbox, no daily cap."""
    values: dict[str, Any] = dict(
        database_url=dsn,
        messaging_service_url=sandbox_url,
        messaging_timeout_s=30.0,
        max_sends_per_account_per_day=0,
        min_gap_ms_same_bd_account=0,
        log_level="warning",
    )
    values.update(overrides)
    return Settings.from_env({}, **values)


@attrs.define
class Org:
    id: uuid.UUID
    owner_id: uuid.UUID

    def headers(self) -> dict[str, str]:
        return {"X-Organization-Id": str(self.id), "X-User-Id": str(self.owner_id), "X-User-Role": "owner"}


@attrs.define
class Service:
    store: Store
    settings: Settings
    supervisor: Supervisor
    client: Any
    org: Org | None = None

    async def api(self, method: str, path: str, body: Any = None, expect: int | None = 200) -> Any:
        assert self.org is not None
        response = await self.client.open(path, method=method, json=body, headers=self.org.headers())
        payload = await response.get_json()
        if expect is not None and response.status_code != expect:
            raise RuntimeError(f"{method} {path} → {response.status_code}: {payload}")
        return payload

    async def timed_api(
        self, method: str, path: str, body: Any = None, expect: int | None = 200
    ) -> tuple[float, Any]:
        t0 = time.perf_counter()
        payload = await self.api(method, path, body, expect)
        return time.perf_counter() - t0, payload


class StatementLog:
    """An asyncpg query logger: count and total time per statement (first 90 characters), and the
    transactions committed, counted on the client side per connection (``attach``): each ``COMMIT`` and
    each statement run outside a transaction (autocommit), which is what ``pg_stat_database.xact_commit``
    counts for these connections.

    ``mark_boot`` notes the counts when the service says it is ready, so ``per_send`` can give the
    figures of the work after it (boot excluded) beside the totals. Each logged query costs the event
    loop a callback, so use it for counting, not in timed runs."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()
        self.commits = 0
        self.rollbacks = 0
        self.enabled = True
        self.boot: dict[str, int] | None = None
        self.watched: dict[str, int] = {}
        self._watches: dict[str, tuple[str, ...]] = {}

    def attach(self, conn: asyncpg.Connection) -> None:
        """Log every query of ``conn``, following its transaction state."""
        in_transaction = [False]

        def logger(record: Any) -> None:
            self._log(record, in_transaction)

        conn.add_query_logger(logger)

    def _log(self, record: Any, in_transaction: list[bool]) -> None:
        if not self.enabled:
            return
        text = _SPACES.sub(" ", record.query).strip()
        head = text[:90]
        self.counts[head] += 1
        self.seconds[head] += record.elapsed
        if self._watches:
            lowered = text.lower()
            for name, fragments in self._watches.items():
                if all(f in lowered for f in fragments):
                    self.watched[name] += 1
        word = text.split(" ", 1)[0].rstrip(";").upper()
        if word in ("BEGIN", "START"):
            in_transaction[0] = True
        elif word in ("COMMIT", "END"):
            if in_transaction[0] and record.exception is None:
                self.commits += 1
            in_transaction[0] = False
        elif word == "ROLLBACK" and not text.upper().startswith("ROLLBACK TO"):
            self.rollbacks += 1
            in_transaction[0] = False
        elif not in_transaction[0] and record.exception is None:
            self.commits += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def watch(self, name: str, *fragments: str) -> None:
        """Count, as ``watched[name]``, the statements whose whole text contains every one of
        ``fragments`` (case-insensitive)."""
        self._watches[name] = tuple(f.lower() for f in fragments)
        self.watched[name] = 0

    def mark_boot(self, sends_done: int = 0) -> None:
        """The counts so far are the boot's; ``sends_done``: sends already begun (``boot["sends_done"]``
        may be set later)."""
        self.boot = {"statements": self.total, "commits": self.commits, "sends_done": sends_done}

    def reset(self) -> None:
        self.counts.clear()
        self.seconds.clear()
        self.commits = self.rollbacks = 0
        self.boot = None
        self.watched = dict.fromkeys(self._watches, 0)

    def per_send(self, sends: int, top: int = 12) -> dict[str, Any]:
        total = self.total
        figures: dict[str, Any] = {
            "statements_per_send": round(total / max(sends, 1), 3),
            "commits_per_send": round(self.commits / max(sends, 1), 3),
            "statements": total,
            "commits": self.commits,
            "rollbacks": self.rollbacks,
        }
        if self.boot is not None:
            after = sends - self.boot["sends_done"]
            figures["boot"] = dict(self.boot)
            figures["after_boot"] = {
                "sends": after,
                "statements_per_send": round((total - self.boot["statements"]) / max(after, 1), 3),
                "commits_per_send": round((self.commits - self.boot["commits"]) / max(after, 1), 3),
            }
        figures["top"] = [
            {"statement": text, "per_send": round(n / max(sends, 1), 3)}
            for text, n in self.counts.most_common(top)
        ]
        return figures

    def slowest(self, top: int = 8) -> list[dict[str, Any]]:
        return [
            {"statement": text, "calls": self.counts[text], "total_s": round(secs, 3)}
            for text, secs in self.seconds.most_common(top)
        ]


_SPACES = re.compile(r"\s+")


async def _reset_nothing(conn: asyncpg.Connection) -> None:
    """As ``Store.open``'s pool: released connections skip asyncpg's reset query (storage/store.py says
    why); a pool that reset them would log a statement per operation the product does not send."""


async def _logged_pool(settings: Settings, log: StatementLog) -> asyncpg.Pool:
    """The pool ``Store.open`` makes (``storage/store.py``), plus a query logger on every connection."""

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        log.attach(conn)

    return await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        init=init,
        reset=_reset_nothing,
        command_timeout=None,
        server_settings={"application_name": "campaignsvc", "statement_timeout": "30000", "TimeZone": "UTC"},
    )


@contextlib.asynccontextmanager
async def open_store(settings: Settings, log: StatementLog | None = None) -> AsyncIterator[Store]:
    assert settings.database_url is not None
    if log is None:
        async with Store.open(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        ) as store:
            yield store
        return
    pool = await aio_as_trio(_logged_pool)(settings, log)
    try:
        yield Store(pool)
    finally:
        with trio.CancelScope(shield=True):
            await aio_as_trio(pool.close)()


class RecordingMessaging(MessagingClient):
    """The real Messaging client, noting per account when each call starts (monotonic clock).

    R-THR-4 measures the gap between the starts of two sends of an account, and a send starts when
    Messaging is called; arrival at the sandbox adds loopback and event-loop jitter on top."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings.messaging_service_url,
            timeout_s=settings.messaging_timeout_s,
            internal_auth_secret=settings.internal_auth_secret,
        )
        self.starts: dict[str, list[float]] = collections.defaultdict(list)
        # When each call's request was written (the start the service paces by), per account.
        self.written: dict[str, list[float]] = collections.defaultdict(list)

    async def send(self, command: Any, *, on_sent: Any = None) -> Any:
        account = str(command.bd_account_id)
        self.starts[account].append(time.monotonic())

        def sent() -> None:
            self.written[account].append(time.monotonic())
            if on_sent is not None:
                on_sent()

        return await super().send(command, on_sent=sent)


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings,
    *,
    supervise: bool = True,
    messaging: MessagingClient | None = None,
    org: Org | None = None,
    statements: StatementLog | None = None,
) -> AsyncIterator[Service]:
    """The real store, supervisor (running unless ``supervise=False``: then control messages only queue)
    and HTTP app, as ``campaignsvc serve`` composes them; ``statements`` logs every query."""
    assert settings.database_url is not None
    if messaging is None:
        messaging = MessagingClient.from_settings(settings)
    async with open_store(settings, statements) as store:
        runtime = build(settings, store, messaging=messaging)
        supervisor = runtime.supervisor
        try:
            async with trio.open_nursery() as nursery:
                await runtime.start(nursery, supervise=supervise)
                client = runtime.app().test_client()
                with heap.frozen_survivors() if supervise else contextlib.nullcontext():
                    yield Service(
                        store=store, settings=settings, supervisor=supervisor, client=client, org=org
                    )
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await messaging.aclose()


# --- seeding -------------------------------------------------------------------------------------------


async def seed_org(store: Store, name: str = "Bench Org") -> Org:
    org_id = await store.run(seed.organization, name=name)
    owner = await store.run(
        seed.user,
        organization_id=org_id,
        email=f"owner-{uuid.uuid4().hex[:8]}@bench.test",
        role="owner",
        first_name="Olga",
        last_name="Owner",
    )
    return Org(org_id, owner)


async def _insert_accounts(conn: asyncpg.Connection, org: uuid.UUID, count: int) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """
        INSERT INTO bd_accounts (organization_id, telegram_id, connection_state, display_name)
        SELECT $1, 'bench-' || $2 || '-' || g, 'connected', 'Account ' || g FROM generate_series(1, $3) g
        RETURNING id, display_name
        """,
        org,
        uuid.uuid4().hex[:8],
        count,
    )
    return [r["id"] for r in sorted(rows, key=lambda r: int(r["display_name"].split()[-1]))]


async def seed_accounts(store: Store, org: Org, count: int) -> list[uuid.UUID]:
    """``count`` connected BD accounts, in creation order."""
    return await store.run(_insert_accounts, org.id, count)


async def seed_contacts(store: Store, org: Org, count: int, *, chunk: int = 20_000) -> list[uuid.UUID]:
    """``count`` contacts with a Telegram id each (``storage.seed.contacts``, one statement per chunk)."""
    ids: list[uuid.UUID] = []
    base = 7_000_000_000 + uuid.uuid4().int % 10**8 * 10
    for start in range(0, count, chunk):
        rows = [
            {"first_name": f"Contact{i}", "last_name": "Bench", "telegram_id": str(base + i)}
            for i in range(start, min(count, start + chunk))
        ]
        ids += await store.run(seed.contacts, organization_id=org.id, rows=rows)
    return ids


async def create_campaign(
    svc: Service,
    *,
    name: str,
    accounts: Sequence[uuid.UUID],
    gap_s: float,
    contact_ids: Sequence[uuid.UUID] | None = None,
    limit: int | None = None,
    steps: int = 1,
    step_delay_hours: float = 0,
) -> str:
    """A draft campaign through the public API: audience, one template and sequence step per step."""
    audience: dict[str, Any] = {"bdAccountIds": [str(a) for a in accounts], "sendDelaySeconds": gap_s}
    if contact_ids is not None:
        audience["contactIds"] = [str(c) for c in contact_ids]
    if limit is not None:
        audience["limit"] = limit
    row = await svc.api("POST", "/api/campaigns", {"name": name, "targetAudience": audience}, 201)
    cid = row["id"]
    for i in range(steps):
        template = await svc.api(
            "POST",
            f"/api/campaigns/{cid}/templates",
            {
                "name": f"t{i}",
                "channel": "telegram",
                "content": f"Hello {{{{contact.first_name|friend}}}} #{i}",
            },
            201,
        )
        body = {
            "orderIndex": i,
            "templateId": template["id"],
            "delayHours": step_delay_hours if i else 0,
            "delayMinutes": 0,
        }
        await svc.api("POST", f"/api/campaigns/{cid}/sequences", body, 201)
    return cid


async def _insert_scheduled(
    conn: asyncpg.Connection,
    campaign_id: uuid.UUID,
    contacts: Sequence[uuid.UUID],
    accounts: Sequence[uuid.UUID],
    due: Sequence[dt.datetime],
) -> int:
    status = await conn.execute(
        """
        INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, channel_id, status,
                                           current_step, next_send_at, enqueue_order)
        SELECT $1, u.contact, u.account, ct.telegram_id, 'pending', 0, u.due, u.n::int - 1
        FROM unnest($2::uuid[], $3::uuid[], $4::timestamptz[]) WITH ORDINALITY AS u (contact, account, due, n)
        JOIN contacts ct ON ct.id = u.contact
        """,
        campaign_id,
        list(contacts),
        list(accounts),
        list(due),
    )
    return int(status.rsplit(" ", 1)[-1])


async def add_scheduled_participants(
    store: Store,
    campaign_id: str,
    contacts: Sequence[uuid.UUID],
    accounts: Sequence[uuid.UUID],
    due: Sequence[dt.datetime],
) -> int:
    """Participants already assigned to an account with an exact first due time (what enrolment would
    produce), so a scenario controls the schedule; ``/start`` then only activates the campaign."""
    return await store.run(_insert_scheduled, uuid.UUID(campaign_id), contacts, accounts, due)


# --- the report ----------------------------------------------------------------------------------------


def target(value: float | int | None, limit: float, *, at_most: bool = True) -> dict[str, Any]:
    met = value is not None and (value <= limit if at_most else value >= limit)
    return {"value": value, ("at_most" if at_most else "at_least"): limit, "met": met}


@attrs.define
class Report:
    scenario: str
    size: str
    parameters: dict[str, Any]
    started_at: str = attrs.field(factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    load_before: list[float] = attrs.field(factory=load_average)
    t0: float = attrs.field(factory=time.monotonic)
    figures: dict[str, Any] = attrs.field(factory=dict)
    baseline: dict[str, Any] = attrs.field(factory=dict)
    ratios: dict[str, Any] = attrs.field(factory=dict)
    targets: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    notes: list[str] = attrs.field(factory=list)

    def to_json(self, postgres: str | None) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "size": self.size,
            "date": self.started_at,
            "command": "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "machine": {**machine(), "postgres": postgres},
            "load_average": {"before": self.load_before, "after": load_average()},
            "duration_s": round(time.monotonic() - self.t0, 1),
            "parameters": self.parameters,
            "figures": self.figures,
            "baseline": self.baseline,
            "ratios": self.ratios,
            "targets": self.targets,
            "targets_met": {name: t["met"] for name, t in self.targets.items()},
            "notes": self.notes,
        }


async def emit(report: Report, out_dir: Path | None = None) -> dict[str, Any]:
    """Print the report as one JSON object and write it to ``<out_dir>/<scenario>-<size>.json``."""
    try:
        postgres = await server_version()
    except Exception:
        postgres = None
    data = report.to_json(postgres)
    text = json.dumps(data, indent=2, default=str)
    print(text, flush=True)
    out = out_dir or RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{report.scenario}-{report.size}.json").write_text(text + "\n")
    return data


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
