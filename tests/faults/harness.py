"""The fault tier's stand: the sandbox process, the service process (restartable), the API over HTTP, and
the invariants every scenario checks at the sandbox and in the database. A stand can also run several
instances of the service on its one database (``start_instance``: each with its own ``INSTANCE_ID``, port
and log, killed, paused, resumed and restarted by index), and put a TCP relay between an instance and
PostgreSQL or the Messaging Service (``MessagingWitness`` records which instance started which call).

The sandbox is the witness: it records every arrival (its idempotency key, account, contact, text and
time), so what a scenario asserts is what Telegram would have seen, not what the service believes.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import re
import signal
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx
import trio

from campaignsvc.storage.store import Store
from tests.conftest import ROOT, ServiceProcess, free_port, start_service, stop_service
from tests.e2e.processes import HttpClient, start_sandbox_process
from tests.factories import Org
from tests.integration.amqp_helpers import BrokerProxy
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
class Instance:
    """One ``campaignsvc serve`` process of a multi-instance stand. ``env`` (the stand's ``service_env``,
    the instance's ``INSTANCE_ID`` and any override) is reused on every restart; the port is new each time."""

    id: str
    env: dict[str, str]
    service: ServiceProcess | None = None
    starts: int = 0
    paused: bool = False

    @property
    def alive(self) -> bool:
        return self.service is not None and self.service.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return "" if self.service is None else self.service.log()[-chars:]


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
    instances: list[Instance] = attrs.Factory(list)
    api_instance: int | None = None

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

    async def received_since(self, seq: int) -> list[dict[str, Any]]:
        """The sandbox's arrivals numbered after ``seq`` (its ``seq`` field counts from 1)."""
        async with httpx.AsyncClient(base_url=self.sandbox_url, timeout=30) as box:
            response = await box.get("/sandbox/received", params={"since_seq": seq})
            return response.json()["items"]

    async def start_service(self, *, args: tuple[str, ...] = ("serve",)) -> None:
        self.starts += 1
        self.service = await start_service(
            dict(self.service_env), self.tmp / f"service-{self.starts}.log", args=args, ready_timeout=60
        )
        await self._point_api(self.service.base_url)

    async def _point_api(self, base_url: str) -> None:
        if self.http is not None:
            await self.http.aclose()
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)
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

    # Several instances on the stand's database. Any instance takes any API call: ``Stand.env`` talks to
    # the first one started, or to the one ``use_instance`` names.

    async def start_instance(self, instance_id: str, env: dict[str, str] | None = None) -> int:
        """Start one more instance named ``instance_id`` (distinct per stand); its index in ``instances``."""
        assert all(i.id != instance_id for i in self.instances), f"instance {instance_id} exists"
        self.instances.append(
            Instance(id=instance_id, env={**self.service_env, "INSTANCE_ID": instance_id, **(env or {})})
        )
        index = len(self.instances) - 1
        await self.restart_instance(index)
        return index

    async def start_instances(self, *instance_ids: str) -> list[int]:
        """Start several instances at once (each waits for its own ``/ready``)."""
        base = len(self.instances)
        for instance_id in instance_ids:
            assert all(i.id != instance_id for i in self.instances), f"instance {instance_id} exists"
            self.instances.append(
                Instance(id=instance_id, env={**self.service_env, "INSTANCE_ID": instance_id})
            )
        indexes = list(range(base, len(self.instances)))
        async with trio.open_nursery() as nursery:
            for index in indexes:
                nursery.start_soon(self.restart_instance, index)
        return indexes

    async def restart_instance(self, index: int) -> None:
        """(Re)start the instance under its INSTANCE_ID, on a new port; it must not be running."""
        instance = self.instances[index]
        assert not instance.alive, f"instance {instance.id} is still running"
        instance.starts += 1
        instance.paused = False
        env = {k: v for k, v in instance.env.items() if k != "PORT"}
        instance.service = await start_service(
            env, self.tmp / f"instance-{instance.id}-{instance.starts}.log", ready_timeout=60
        )
        if self.api_instance is None or self.api_instance == index:
            await self.use_instance(index)

    async def use_instance(self, index: int) -> None:
        """Point ``Stand.env`` (the API client) at that instance."""
        self.api_instance = index
        await self._point_api(self.instances[index].service.base_url)

    def kill_instance(self, index: int) -> float:
        """SIGKILL the instance (paused or not); the ``time.monotonic()`` of the signal."""
        process = self.instances[index].service.process
        process.send_signal(signal.SIGKILL)
        at = time.monotonic()
        process.wait(10)
        self.instances[index].paused = False
        self.kills += 1
        return at

    def pause_instance(self, index: int) -> float:
        """SIGSTOP: the process holds its sockets and does nothing; the ``time.monotonic()`` of the signal."""
        self.instances[index].service.process.send_signal(signal.SIGSTOP)
        self.instances[index].paused = True
        return time.monotonic()

    def resume_instance(self, index: int) -> float:
        self.instances[index].service.process.send_signal(signal.SIGCONT)
        self.instances[index].paused = False
        return time.monotonic()

    def instance_index(self, instance_id: str) -> int:
        return next(n for n, i in enumerate(self.instances) if i.id == instance_id)

    async def leases(self) -> dict[str, dict[str, Any]]:
        """``campaign_account_leases`` now: account id → its columns (owner, epoch, taken_at, …) and the
        owner's ``heartbeat_at`` from ``campaign_instances``."""
        rows = await self.store.fetch(
            "SELECT l.*, l.bd_account_id::text AS account, i.heartbeat_at FROM campaign_account_leases l"
            " LEFT JOIN campaign_instances i ON i.id = l.owner"
        )
        return {r["account"]: dict(r) for r in rows}

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
        for instance in self.instances:
            if instance.service is not None:
                if instance.paused:
                    instance.service.process.send_signal(signal.SIGCONT)
                stop_service(instance.service)
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


def address_of(url: str) -> tuple[str, int]:
    """(host, port) of a ``postgresql://`` or ``http://`` URL."""
    parts = urlsplit(url)
    default = 5432 if parts.scheme.startswith("postgres") else 80
    return parts.hostname or "127.0.0.1", parts.port or default


def through_relay(url: str, port: int) -> str:
    """``url`` with its host and port replaced by a relay's on 127.0.0.1 (user, path and query kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"))


def database_relay(database_url: str) -> BrokerProxy:
    """The broker tier's TCP relay, in front of PostgreSQL: ``cut`` drops every connection through it and
    refuses new ones until ``restore``. Run it (``nursery.start(relay.run)``), then give the instance
    ``through_relay(database_url, relay.port)``."""
    return BrokerProxy(target=address_of(database_url))


_SEND_LINE = b"POST /api/messaging/send"
_KEY = re.compile(rb'"idempotencyKey"\s*:\s*"([^"]*)"')


@attrs.define
class WitnessedCall:
    mono: float  # time.monotonic() when the request line passed the relay
    at: dt.datetime
    key: str | None = None


class MessagingWitness(BrokerProxy):
    """A relay between one instance and the sandbox that stamps every send request the instance writes.
    The sandbox, one witness for all instances, cannot tell which instance started a call; this relay can
    (an instance that the database has fenced off can still write to the Messaging Service, and then
    has no ledger row to show for it). A stamp is taken when the relay reads the request, so it is never
    earlier than the call's start and may be later by the test process's own scheduling delay."""

    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__(target)
        self.calls: list[WitnessedCall] = []

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls_between(self, start: dt.datetime, end: dt.datetime | None = None) -> list[WitnessedCall]:
        return [c for c in self.calls if c.at > start and (end is None or c.at < end)]

    async def _serve(self, client: trio.SocketStream) -> None:
        async with client:
            if not self._up:
                return
            with trio.CancelScope() as scope:
                self._links.add(scope)
                try:
                    server = await trio.open_tcp_stream(*self._target)
                    async with server, trio.open_nursery() as nursery:
                        nursery.start_soon(self._requests, client, server, nursery.cancel_scope)
                        nursery.start_soon(_plain_pump, server, client, nursery.cancel_scope)
                finally:
                    self._links.discard(scope)

    async def _requests(
        self, source: trio.SocketStream, sink: trio.SocketStream, pair: trio.CancelScope
    ) -> None:
        buffer = b""
        open_call: WitnessedCall | None = None
        try:
            async for chunk in source:
                mono, at = time.monotonic(), dt.datetime.now(dt.UTC)
                buffer += chunk
                while True:
                    if open_call is None:
                        start = buffer.find(_SEND_LINE)
                        if start < 0:
                            buffer = buffer[-len(_SEND_LINE) :]
                            break
                        open_call = WitnessedCall(mono=mono, at=at)
                        self.calls.append(open_call)
                        buffer = buffer[start + len(_SEND_LINE) :]
                    match = _KEY.search(buffer)
                    if match is None:
                        break
                    open_call.key = match.group(1).decode(errors="replace")
                    open_call = None
                    buffer = buffer[match.end() :]
                await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        pair.cancel()


async def _plain_pump(source: trio.SocketStream, sink: trio.SocketStream, pair: trio.CancelScope) -> None:
    try:
        async for chunk in source:
            await sink.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    pair.cancel()


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
