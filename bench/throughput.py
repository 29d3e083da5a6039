"""Scenario 1 — throughput ceiling: zero gaps, an instant sandbox, many accounts.

Campaigns of 10 accounts each are started through the API with every participant due at once; the
service (store + supervisor) then boots and sends everything. Figures: durable sends per second (from
boot until the last outcome is committed, and the steady rate between the 10th and 90th percentile of
arrivals at the sandbox), committed transactions per send (``pg_stat_database.xact_commit``), CPU of the
service, the sandbox and the whole machine.

Baselines, same run, same machine, same data:

- **ledger**: a plain-asyncio loop (no trio, no dispatcher, no HTTP) on as many connections as the
  service's pool, doing exactly the per-send ledger writes with the product's own SQL: the claim
  transaction (``storage.dispatch.claim`` with the real template rendering) and one outcome transaction
  (the recorder's ``write_outcomes``) per send — the physical limit for this write pattern here;
- **sandbox**: the sandbox process driven directly by an httpx client (8 in flight): its rate, and its
  CPU per request, which bounds what any dispatcher can reach against it on this machine.

A short instrumented pass of each (asyncpg query logger; slower, so not timed) counts the statements per
send and lists the most frequent ones.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import trio

from bench import harness as h
from campaignsvc.actors.recorder import Outcome, write_outcomes
from campaignsvc.domain import claims
from campaignsvc.domain.campaign import CampaignPlan, after_send
from campaignsvc.domain.claims import decide
from campaignsvc.storage import dispatch
from campaignsvc.storage.store import init_connection

SIZES: dict[str, dict[str, int]] = {
    "smoke": {"accounts": 10, "per_account": 20, "accounts_per_campaign": 10, "sandbox_probe": 500},
    "ci": {"accounts": 100, "per_account": 50, "accounts_per_campaign": 10, "sandbox_probe": 3000},
    "full": {"accounts": 1000, "per_account": 20, "accounts_per_campaign": 10, "sandbox_probe": 10000},
}
TARGET_SENDS_PER_S = 1000.0


# --- preparing identical databases ---------------------------------------------------------------------


async def prepare(settings: h.Settings, p: dict[str, int]) -> int:
    """Org, accounts, contacts and started campaigns (every participant due now), with the supervisor not
    running; returns the participant count. The pool is closed on return, so its commits are counted."""
    async with h.running_service(settings, supervise=False) as svc:
        svc.org = await h.seed_org(svc.store)
        accounts = await h.seed_accounts(svc.store, svc.org, p["accounts"])
        contacts = await h.seed_contacts(svc.store, svc.org, p["accounts"] * p["per_account"])
        per_campaign = p["accounts_per_campaign"] * p["per_account"]
        for i, group in enumerate(h.chunks(accounts, p["accounts_per_campaign"])):
            members = contacts[i * per_campaign : (i + 1) * per_campaign]
            cid = await h.create_campaign(
                svc, name=f"throughput {i}", accounts=group, gap_s=0, contact_ids=members, limit=len(members)
            )
            await svc.api("POST", f"/api/campaigns/{cid}/start")
        return await svc.store.fetchval(
            "SELECT count(*) FROM campaign_participants WHERE next_send_at IS NOT NULL"
        )


# --- the product ---------------------------------------------------------------------------------------


async def _wait_recorded(svc: h.Service, count: int, within_s: float) -> None:
    with trio.fail_after(within_s):
        while svc.supervisor.recorder.recorded < count:  # noqa: ASYNC110 - the recorder's own counter
            await trio.sleep(0.01)


async def measure_product(settings: h.Settings, box: h.SandboxProcess, sends: int) -> dict[str, Any]:
    dsn = settings.database_url
    assert dsn is not None
    before = await h.settled_commits(dsn)
    await box.reset()
    cpu = h.CpuWindow(sandbox_pid=box.pid).start()
    t0 = time.monotonic()
    async with h.running_service(settings) as svc:
        await _wait_recorded(svc, sends, within_s=max(120.0, sends / 50))
        elapsed = time.monotonic() - t0
        batches = svc.supervisor.recorder.batches
    cpu_figures = cpu.stop()
    after = await h.settled_commits(dsn)
    async with h.running_service(settings, supervise=False) as svc:
        sent = await svc.store.fetchval("SELECT count(*) FROM campaign_sends WHERE status = 'sent'")
    arrivals = sorted(r["received_mono"] for r in await box.received())
    steady = None
    if len(arrivals) >= 20:
        lo, hi = arrivals[len(arrivals) // 10], arrivals[len(arrivals) * 9 // 10]
        steady = (len(arrivals) * 8 // 10) / (hi - lo) if hi > lo else None
    return {
        "sends": sends,
        "sent_rows_committed": sent,
        "messages_received_by_sandbox": len(arrivals),
        "boot_to_all_committed_s": round(elapsed, 3),
        "durable_sends_per_s": round(sends / elapsed, 1),
        "steady_sends_per_s": None if steady is None else round(steady, 1),
        "commits": after - before,
        "commits_per_send": round((after - before) / sends, 3),
        "outcome_batches": batches,
        "outcomes_per_batch": round(sends / max(batches, 1), 1),
        "cpu": cpu_figures,
    }


async def count_product_statements(settings: h.Settings, sends: int) -> dict[str, Any]:
    log = h.StatementLog()
    async with h.running_service(settings, statements=log) as svc:
        await _wait_recorded(svc, sends, within_s=max(120.0, sends / 20))
    return log.per_send(sends)


# --- the ledger baseline --------------------------------------------------------------------------------


async def _ledger_loop(dsn: str, workers: int, counter: h.StatementLog | None) -> dict[str, Any]:
    """Plain asyncio: claim tx + outcome tx per participant, ``workers`` connections in parallel."""
    rng = random.Random(1)
    conns = [
        await asyncpg.connect(dsn, server_settings={"application_name": "bench-ledger", "TimeZone": "UTC"})
        for _ in range(workers)
    ]
    try:
        for conn in conns:
            await init_connection(conn)
            if counter is not None:
                conn.add_query_logger(counter)
        rows = await conns[0].fetch(
            """
            SELECT cp.id, cp.bd_account_id, cp.campaign_id, c.organization_id
            FROM campaign_participants cp JOIN campaigns c ON c.id = cp.campaign_id
            WHERE cp.next_send_at IS NOT NULL ORDER BY cp.next_send_at, cp.id
            """
        )
        plans: dict[uuid.UUID, CampaignPlan] = {}
        for cid in {r["campaign_id"] for r in rows}:
            campaign, steps = await dispatch.load_campaign(conns[0], cid)
            plans[cid] = CampaignPlan.from_rows(campaign, steps, reply_wait_hours=168)
        queue: asyncio.Queue[asyncpg.Record] = asyncio.Queue()
        for r in rows:
            queue.put_nowait(r)
        sent = 0

        async def worker(conn: asyncpg.Connection) -> None:
            nonlocal sent
            while True:
                try:
                    r = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                plan = plans[r["campaign_id"]]
                now = dt.datetime.now(dt.UTC)
                async with conn.transaction():
                    claimed = await dispatch.claim(
                        conn,
                        participant_id=r["id"],
                        step=0,
                        step_key=plan.steps[0].key,
                        bd_account_id=r["bd_account_id"],
                        quarantine=dt.timedelta(seconds=900),
                        pipelines=[],
                        decide=lambda facts, plan=plan, now=now: decide(plan, 0, None, rng, now, "", facts),
                    )
                assert isinstance(claimed, claims.Claimed), claimed
                message_id = uuid.uuid4()
                outcome = Outcome(
                    campaign_id=r["campaign_id"],
                    organization_id=r["organization_id"],
                    participant_id=r["id"],
                    bd_account_id=r["bd_account_id"],
                    step=0,
                    update=after_send(plan, 0, now, None, rng),
                    send_id=claimed.send_id,
                    ledger_status="sent",
                    message_id=message_id,
                    last_sent_at=now,
                    event=(
                        "campaign.message.sent",
                        {"campaignId": str(r["campaign_id"]), "messageId": str(message_id)},
                    ),
                )
                async with conn.transaction():
                    await write_outcomes(conn, [outcome])
                sent += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        elapsed = time.perf_counter() - t0
        return {"sends": sent, "elapsed_s": elapsed}
    finally:
        for conn in conns:
            await conn.close()


def _ledger_in_thread(dsn: str, workers: int, counter: h.StatementLog | None) -> dict[str, Any]:
    return asyncio.run(_ledger_loop(dsn, workers, counter))


async def measure_ledger(dsn: str, workers: int, box: h.SandboxProcess) -> dict[str, Any]:
    before = await h.settled_commits(dsn)
    cpu = h.CpuWindow(sandbox_pid=box.pid).start()
    result = await trio.to_thread.run_sync(_ledger_in_thread, dsn, workers, None)
    cpu_figures = cpu.stop()
    after = await h.settled_commits(dsn)
    sends = result["sends"]
    return {
        "sends": sends,
        "connections": workers,
        "elapsed_s": round(result["elapsed_s"], 3),
        "durable_sends_per_s": round(sends / result["elapsed_s"], 1),
        "commits": after - before,
        "commits_per_send": round((after - before) / max(sends, 1), 3),
        "cpu": cpu_figures,
    }


# --- the sandbox ceiling --------------------------------------------------------------------------------


async def measure_sandbox(box: h.SandboxProcess, requests: int, in_flight: int = 8) -> dict[str, Any]:
    """The sandbox driven directly (8 requests in flight on 8 connections: the httpx client's own cost
    grows with its connection count). The sandbox is one single-threaded process, so its CPU per request
    gives its ceiling on one core."""
    await box.reset()
    org = str(uuid.uuid4())
    accounts = [str(uuid.uuid4()) for _ in range(100)]
    counter = iter(range(requests))

    async with httpx.AsyncClient(
        base_url=box.url, limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    ) as http:

        async def client() -> None:
            for i in counter:
                body = {
                    "contactId": str(uuid.uuid4()),
                    "channel": "telegram",
                    "channelId": str(7_000_000_000 + i),
                    "content": f"Hello Contact{i} #0",
                    "bdAccountId": accounts[i % len(accounts)],
                    "source": "campaign",
                    "idempotencyKey": f"bench:{i}",
                }
                response = await http.post(
                    "/api/messaging/send", json=body, headers={"x-organization-id": org}
                )
                response.raise_for_status()

        cpu = h.CpuWindow(sandbox_pid=box.pid).start()
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(in_flight):
                nursery.start_soon(client)
        elapsed = time.perf_counter() - t0
        cpu_figures = cpu.stop()
    await box.reset()
    sandbox_ms = (cpu_figures["sandbox_process_cpu_s"] or 0.0) * 1000 / requests
    client_ms = (cpu_figures["service_process_cpu_s"] or 0.0) * 1000 / requests
    return {
        "requests": requests,
        "in_flight": in_flight,
        "requests_per_s": round(requests / elapsed, 1),
        "sandbox_cpu_ms_per_request": round(sandbox_ms, 3),
        "sandbox_ceiling_per_s_on_one_core": round(1000 / sandbox_ms, 1) if sandbox_ms else None,
        "httpx_client_cpu_ms_per_request": round(client_ms, 3),
        "cpu": cpu_figures,
    }


# --- the scenario ---------------------------------------------------------------------------------------


async def run(size: str, out_dir: Path | None = None) -> dict[str, Any]:
    p = SIZES[size]
    report = h.Report("throughput", size, {**p, "gap_s": 0, "sandbox_latency_ms": 0})
    async with h.sandbox_process({"seed": 1}) as box:
        async with h.bench_database("s1_service") as dsn:
            settings = h.service_settings(dsn, box.url)
            report.parameters["db_pool_max"] = settings.db_pool_max
            sends = await prepare(settings, p)
            product = await measure_product(settings, box, sends)
        async with h.bench_database("s1_ledger") as dsn:
            settings = h.service_settings(dsn, box.url)
            await prepare(settings, p)
            ledger = await measure_ledger(dsn, settings.db_pool_max, box)
        sandbox = await measure_sandbox(box, p["sandbox_probe"])
        # Instrumented passes (statement counts), a tenth of the size: not timed.
        small = {**p, "per_account": max(2, p["per_account"] // 10)}
        async with h.bench_database("s1_count") as dsn:
            settings = h.service_settings(dsn, box.url)
            n = await prepare(settings, small)
            await box.reset()
            product["statements"] = await count_product_statements(settings, n)
        async with h.bench_database("s1_count_ledger") as dsn:
            settings = h.service_settings(dsn, box.url)
            n = await prepare(settings, small)
            counter = h.StatementLog()
            await trio.to_thread.run_sync(_ledger_in_thread, dsn, 4, counter)
            ledger["statements"] = counter.per_send(n)
    report.figures = product
    report.baseline = {"ledger_writes_only": ledger, "sandbox_alone": sandbox}
    report.ratios = {
        "service_vs_ledger_sends_per_s": h.ratio(
            product["durable_sends_per_s"], ledger["durable_sends_per_s"]
        ),
        "service_vs_sandbox_sends_per_s": h.ratio(product["durable_sends_per_s"], sandbox["requests_per_s"]),
        "service_vs_ledger_commits_per_send": h.ratio(
            product["commits_per_send"], ledger["commits_per_send"]
        ),
    }
    report.targets = {
        "durable_sends_per_s >= 1000": h.target(
            product["durable_sends_per_s"], TARGET_SENDS_PER_S, at_most=False
        ),
    }
    if product["sent_rows_committed"] != sends:
        report.notes.append(f"only {product['sent_rows_committed']} of {sends} sends were recorded as sent")
    return await h.emit(report, out_dir)
