"""``campaignsvc demo``: the database, the sandbox and the service in one trio tree, driven over HTTP.

::

    trio.run → trio_asyncio.open_loop() → database (embedded, or DATABASE_URL) → migrate
      ├─ signal watcher     first Ctrl-C: stop the demo cleanly; second: cancel everything
      └─ nursery "demo" — one-cancels-all
         ├─ run_sandbox     Messaging stand-in on an ephemeral port; replies → POST /api/campaigns/events
         └─ run_service     the real service (API, dispatcher, /dashboard) on 127.0.0.1:PORT
      then, over HTTP: seed or reuse the demo organization, create and start the campaigns, watch them

Teardown order: the demo's campaigns still running are stopped (only when interrupted), the service
shuts down gracefully (in-flight sends finish), then the sandbox, then the database.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
from functools import partial
from pathlib import Path
from typing import TextIO

import attrs
import httpx
import trio
import trio_asyncio

from campaignsvc import logs
from campaignsvc.app import migrate_database, run_service
from campaignsvc.config import Settings
from campaignsvc.demo import plan, scenario, seeding
from campaignsvc.demo.client import Api
from campaignsvc.demo.display import Display
from campaignsvc.demo.monitor import Monitor
from campaignsvc.errors import CampaignsvcError
from campaignsvc.sandbox import SandboxState, run_sandbox
from campaignsvc.storage.embedded import database_dsn

POLL_S = 0.25
STOP_TIMEOUT_S = 5.0


class DemoError(CampaignsvcError):
    """The demo could not run (the port is taken, or the campaigns did not finish in time)."""


@attrs.frozen
class Options:
    speed: plan.Speed
    quick: bool = False
    fresh: bool = False
    keep_running: bool = False
    port: int = 3012
    timeout_s: float = 300.0


@attrs.define
class _Signals:
    """First signal: cancel the current phase (the demo then tears down in order); second: everything."""

    interrupted: trio.Event = attrs.field(factory=trio.Event)
    phase: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    def new_phase(self) -> trio.CancelScope:
        """The scope a first signal cancels from now on (at once if one came already)."""
        self.phase = trio.CancelScope()
        if self.interrupted.is_set():
            self.phase.cancel()
        return self.phase

    async def watch(self, everything: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if self.interrupted.is_set():
                    everything.cancel()
                    return
                self.interrupted.set()
                self.phase.cancel()


def _log_to_file(path: Path, level: str) -> TextIO:
    """The service's logs go to a file: the terminal belongs to the demo's own output."""
    logs.configure(level, "json")
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a", encoding="utf-8")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream


async def run(options: Options, settings: Settings, out: TextIO | None = None) -> None:
    display = Display(out)
    log_path = settings.data_dir / "demo.log"
    log_stream = _log_to_file(log_path, settings.log_level)
    signals = _Signals()
    try:
        async with trio_asyncio.open_loop(), trio.open_nursery() as top:
            top.start_soon(signals.watch, top.cancel_scope)
            await _run(options, settings, display, signals, log_path)
            top.cancel_scope.cancel()
    finally:
        log_stream.close()


async def _run(
    options: Options, settings: Settings, display: Display, signals: _Signals, log_path: Path
) -> None:
    display.line(display.paint("campaignsvc demo", "bold") + f" — speed {options.speed.describe()}")
    where = "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.embedded_pg_dir}"
    display.line(f"  database: {where}{' (fresh)' if options.fresh else ''}; service logs: {log_path}")
    with signals.new_phase():
        async with database_dsn(settings.database_url, settings.data_dir, fresh=options.fresh) as dsn:
            await migrate_database(dsn, settings)
            await _with_services(options, settings, display, signals, dsn)
            return
    display.line("Interrupted before the service started.")


async def _with_services(
    options: Options, settings: Settings, display: Display, signals: _Signals, dsn: str
) -> None:
    known = None if options.fresh else seeding.load(settings.data_dir)
    org: seeding.DemoOrg | None = None
    state = SandboxState()
    sandbox_config = scenario.sandbox_config(options.speed, settings)
    sandbox_stop, service_stop, service_done = trio.Event(), trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:
        sandbox_url = await nursery.start(
            partial(run_sandbox, sandbox_config, host="127.0.0.1", port=0, state=state, shutdown=sandbox_stop)
        )
        svc_settings = scenario.service_settings(
            settings, options.speed, messaging_url=sandbox_url, port=options.port
        )
        try:
            binds = await nursery.start(_service, svc_settings, dsn, service_stop, service_done)
        except* OSError as group:
            sandbox_stop.set()
            raise DemoError(
                f"cannot listen on 127.0.0.1:{options.port} ({group.exceptions[0]}); "
                "pass --port 0 for a free port, or stop what uses it"
            ) from None
        base_url = binds[0]
        state.update_config({"events_url": base_url})
        started: list[scenario.Started] = []
        try:
            # Where the API is secured, the demo speaks as the gateway does.
            gateway = (
                {"X-Internal-Auth": svc_settings.internal_auth_secret}
                if svc_settings.internal_auth_secret
                else {}
            )
            async with httpx.AsyncClient(base_url=base_url, timeout=30.0, headers=gateway) as http:
                try:
                    with signals.new_phase():
                        org = await _organization(http, dsn, settings, known, display)
                        errors = scenario.recipient_errors(org, quick=options.quick)
                        state.update_config({"recipient_errors": errors})
                        await _drive(
                            Api(http, org.headers()), org, state, options, display, base_url, started
                        )
                    if signals.interrupted.is_set():
                        display.freeze()
                        display.line("Interrupted: stopping the demo's campaigns and the service…")
                    elif options.keep_running and org is not None:
                        display.line(
                            f"Still running — API {base_url}/api/campaigns (headers X-Organization-Id: "
                            f"{org.organization_id}, X-User-Id: {org.owner_id}, X-User-Role: owner), "
                            f"sandbox {sandbox_url}/sandbox/stats. Ctrl-C to stop."
                        )
                        await signals.interrupted.wait()
                finally:
                    if org is not None:
                        # A campaign left active would resume when the service next starts (the next run).
                        await _stop_campaigns(Api(http, org.headers()), started)
        finally:
            service_stop.set()
            with trio.move_on_after(svc_settings.shutdown_grace_s + STOP_TIMEOUT_S):
                await service_done.wait()
            sandbox_stop.set()


async def _service(
    settings: Settings,
    dsn: str,
    shutdown: trio.Event,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await run_service(settings, dsn, shutdown, task_status=task_status)
    finally:
        done.set()


async def _organization(
    http: httpx.AsyncClient,
    dsn: str,
    settings: Settings,
    known: seeding.DemoOrg | None,
    display: Display,
) -> seeding.DemoOrg:
    """The remembered demo organization if the service still has its accounts, else a new one."""
    if known is not None:
        agents = await Api(http, known.headers()).agents()
        if {str(a) for a in known.accounts.values()} <= {str(a["id"]) for a in agents}:
            known.runs += 1
            seeding.save(settings.data_dir, known)
            display.line(f"  reusing the demo organization {known.organization_id} (run {known.runs})")
            await _stop_campaigns(Api(http, known.headers()), None)
            return known
    org = await seeding.seed_demo_org(dsn)
    org.runs = 1
    seeding.save(settings.data_dir, org)
    display.line(
        f"  seeded the demo organization {org.organization_id}: {len(org.accounts)} BD accounts, "
        f"{len(org.contacts)} contacts in {plan.COMPANIES} companies, pipeline {' → '.join(plan.PIPELINE)}"
    )
    return org


async def _stop_campaigns(api: Api, started: list[scenario.Started] | None) -> None:
    """Stop the demo's campaigns that are still running (``started``), or every active one (None)."""
    with trio.move_on_after(STOP_TIMEOUT_S, shield=True):
        ids = (
            [c.id for c in started]
            if started is not None
            else [c["id"] for c in await api.campaigns("active")]
        )
        for cid in ids:
            detail = await api.campaign(cid)
            if detail["status"] in ("active", "paused"):
                await api.stop(cid)


async def _drive(
    api: Api,
    org: seeding.DemoOrg,
    state: SandboxState,
    options: Options,
    display: Display,
    base_url: str,
    started: list[scenario.Started],
) -> None:
    now = dt.datetime.now(dt.UTC)
    created, skipped = await scenario.create_campaigns(api, org, options.speed, quick=options.quick, now=now)
    started.extend(created)
    display.line("")
    for c in created:
        accounts = ", ".join(
            f"{a.first_name} {a.last_name}" for a in plan.ACCOUNTS if a.key in c.spec.accounts
        )
        display.line(
            f"  started {display.paint(c.name, 'bold')}: {c.participants} contacts via {accounts} — {c.spec.story}"
        )
    for s in skipped:
        display.line(f"  skipped {s.name}: {s.reason}")
    display.line("")
    display.line(f"  Dashboard: {display.paint(f'{base_url}/dashboard?org={org.organization_id}', 'bold')}")
    display.line("")
    monitor = Monitor(api, state, org, created, display, options.speed)
    began = trio.current_time()
    finished = False
    with trio.move_on_after(options.timeout_s):
        while not finished:
            finished = await monitor.poll(trio.current_time() - began)
            if not finished:
                await trio.sleep(POLL_S)
    if not created:
        finished = True
    elapsed = trio.current_time() - began
    display.freeze()
    display.line("")
    title = f"Summary after {elapsed:.0f}s (speed ×{options.speed.factor:g})"
    display.line(display.paint(title, "bold"))
    for line in monitor.summary():
        display.line("  " + line if line else "")
    sandbox = state.stats()
    display.line("")
    display.line(
        f"  sandbox: {sandbox['requests']} send requests, {sandbox['delivered']} delivered, "
        f"{sandbox['byOutcome'].get('flood_wait', 0)} FLOOD_WAIT answers, "
        f"{sum(monitor.replies.values())} replies delivered to the service"
    )
    display.line(f"  Dashboard: {base_url}/dashboard?org={org.organization_id}")
    if not finished:
        active = ", ".join(p.name for p in monitor.progress if p.status != "completed")
        raise DemoError(
            f"the campaigns did not all finish within {options.timeout_s:g}s: {active} still active"
        )
