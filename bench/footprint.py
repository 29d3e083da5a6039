"""Scenario 5 — footprint: RSS of one process holding 10,000 active campaigns (one campaign actor each)
and 10,000 account limiters, all idle.

One campaign is built through the API (audience, template, two steps) and then copied in SQL, each copy
active on its own account with one participant due tomorrow; the supervisor boots them all, as after a
restart. A limiter is then created for every account. RSS (``VmRSS``) is read before the supervisor
starts, when the campaign actors are idle, and when the limiters are too; the per-actor cost is the RSS
difference divided by the actor count. A second pass under ``tracemalloc`` gives the Python heap per actor
and the largest allocation sites. The process's CPU while everything idles is reported as well.

Baseline, same machine, same run: a bare trio actor (a task blocked on ``receive`` of its own memory
channel), measured the same way in a fresh process — the floor any actor design pays.
"""

from __future__ import annotations

import gc
import json
import math
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import trio

from bench import harness as h

SIZES = {
    "smoke": {"campaigns": 100, "tracemalloc_campaigns": 100, "idle_window_s": 1.0},
    "ci": {"campaigns": 1000, "tracemalloc_campaigns": 1000, "idle_window_s": 10.0},
    "full": {"campaigns": 10_000, "tracemalloc_campaigns": 2000, "idle_window_s": 10.0},
}
TARGET_RSS_MIB = 300.0


# --- building the campaigns ------------------------------------------------------------------------------


async def _columns(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return [r["column_name"] for r in rows]


async def _copy_rows(
    conn: asyncpg.Connection, table: str, proto_id: uuid.UUID, overrides: dict[str, tuple[str, list[Any]]]
) -> None:
    """Insert one copy of row ``proto_id`` of ``table`` per element of the override arrays."""
    columns = await _columns(conn, table)
    names = list(overrides)
    unnest = ", ".join(f"${i + 2}::{overrides[n][0]}[]" for i, n in enumerate(names))
    select = ", ".join(
        (f"u.{c}::jsonb" if overrides[c][0] == "text" and c.endswith("audience") else f"u.{c}")
        if c in overrides
        else f"p.{c}"
        for c in columns
    )
    await conn.execute(
        f"""
        INSERT INTO {table} ({", ".join(columns)})
        SELECT {select} FROM unnest({unnest}) AS u ({", ".join(names)}), {table} p WHERE p.id = $1
        """,
        proto_id,
        *(overrides[n][1] for n in names),
    )


async def build(svc: h.Service, count: int) -> list[uuid.UUID]:
    """``count`` active campaigns, each on its own account with one participant due tomorrow."""
    assert svc.org is not None
    accounts = await h.seed_accounts(svc.store, svc.org, count)
    contacts = await h.seed_contacts(svc.store, svc.org, count)
    proto = uuid.UUID(
        await h.create_campaign(
            svc, name="footprint", accounts=accounts[:1], gap_s=60, steps=2, step_delay_hours=24
        )
    )

    async def copy(conn: asyncpg.Connection) -> None:
        campaigns = [uuid.uuid4() for _ in range(count)]
        audiences = [json.dumps({"bdAccountIds": [str(a)], "sendDelaySeconds": 60}) for a in accounts]
        await _copy_rows(
            conn,
            "campaigns",
            proto,
            {
                "id": ("uuid", campaigns),
                "target_audience": ("text", audiences),
                "status": ("text", ["active"] * count),
            },
        )
        await conn.execute("UPDATE campaigns SET started_at = now() WHERE status = 'active'")
        templates = await conn.fetch("SELECT id FROM campaign_templates WHERE campaign_id = $1", proto)
        template_map: dict[uuid.UUID, list[uuid.UUID]] = {}
        for t in templates:
            ids = [uuid.uuid4() for _ in range(count)]
            template_map[t["id"]] = ids
            await _copy_rows(
                conn,
                "campaign_templates",
                t["id"],
                {"id": ("uuid", ids), "campaign_id": ("uuid", campaigns)},
            )
        steps = await conn.fetch(
            "SELECT id, template_id FROM campaign_sequences WHERE campaign_id = $1", proto
        )
        for s in steps:
            await _copy_rows(
                conn,
                "campaign_sequences",
                s["id"],
                {
                    "id": ("uuid", [uuid.uuid4() for _ in range(count)]),
                    "campaign_id": ("uuid", campaigns),
                    "template_id": ("uuid", template_map[s["template_id"]]),
                },
            )
        await conn.execute(
            """
            INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, channel_id, status,
                                               current_step, next_send_at)
            SELECT u.campaign, u.contact, u.account, ct.telegram_id, 'pending', 0, now() + interval '1 day'
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS u (campaign, contact, account)
            JOIN contacts ct ON ct.id = u.contact
            """,
            campaigns,
            contacts,
            accounts,
        )
        await conn.execute("ANALYZE")

    await svc.store.run(copy, transaction=False)
    return accounts


# --- waiting for idle ---------------------------------------------------------------------------------------


async def wait_idle(svc: h.Service, expect_campaigns: int, within_s: float) -> float:
    """Until every campaign actor has loaded its plan and the pool has been idle for a second."""
    t0 = time.monotonic()
    quiet_since = None
    with trio.fail_after(within_s):
        while True:
            campaigns = svc.supervisor.campaigns
            loaded = len(campaigns) >= expect_campaigns and all(
                r.actor.plan is not None for r in campaigns.values()
            )
            stats = svc.store.stats()
            busy = stats["size"] - stats["idle"]
            if loaded and busy == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 1.0:
                    return time.monotonic() - t0
            else:
                quiet_since = None
            await trio.sleep(0.05)


async def add_limiters(svc: h.Service, accounts: list[uuid.UUID]) -> None:
    for account in accounts:
        svc.supervisor.limiter(account)
        await trio.lowlevel.checkpoint()


async def measure_rss(
    settings: h.Settings, accounts: list[uuid.UUID], count: int, idle_window_s: float
) -> dict[str, Any]:
    async with h.running_service(settings, supervise=False) as svc:
        rss0 = h.settle_memory()
        async with trio.open_nursery() as nursery:
            t0 = time.monotonic()
            await nursery.start(svc.supervisor.run)
            boot = await wait_idle(svc, count, within_s=max(120.0, count / 20))
            rss1 = h.settle_memory()
            await add_limiters(svc, accounts)
            await wait_idle(svc, count, within_s=max(120.0, count / 20))
            ready = time.monotonic() - t0
            rss2 = h.settle_memory()
            cpu0 = h.cpu_seconds_self()
            await trio.sleep(idle_window_s)
            idle_cpu = (h.cpu_seconds_self() - cpu0) / idle_window_s
            rss3 = h.settle_memory()
            running = (len(svc.supervisor.campaigns), len(svc.supervisor.limiters))
            nursery.cancel_scope.cancel()
    return {
        "campaign_actors": running[0],
        "account_limiters": running[1],
        "rss_before_supervisor_mib": round(rss0, 1),
        "rss_with_campaign_actors_mib": round(rss1, 1),
        "rss_with_actors_and_limiters_mib": round(rss2, 1),
        "rss_after_idle_window_mib": round(rss3, 1),
        "rss_per_campaign_actor_kib": round((rss1 - rss0) * 1024 / count, 2),
        "rss_per_limiter_kib": round((rss2 - rss1) * 1024 / count, 2),
        "boot_to_idle_s": round(boot, 2),
        "boot_to_all_ready_s": round(ready, 2),
        "idle_cpu_share": round(idle_cpu, 4),
    }


def _top(diff: list[tracemalloc.StatisticDiff], n: int = 8) -> list[dict[str, Any]]:
    out = []
    for stat in diff[:n]:
        frame = stat.traceback[0]
        name = frame.filename.replace(str(h.ROOT) + "/", "")
        name = name.split("site-packages/", 1)[-1].split(
            f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/", 1
        )[-1]
        out.append({"where": f"{name}:{frame.lineno}", "kib": round(stat.size_diff / 1024, 1)})
    return out


async def measure_heap(settings: h.Settings, accounts: list[uuid.UUID], count: int) -> dict[str, Any]:
    async with h.running_service(settings, supervise=False) as svc:
        gc.collect()
        tracemalloc.start()
        try:
            snap0 = tracemalloc.take_snapshot()
            async with trio.open_nursery() as nursery:
                await nursery.start(svc.supervisor.run)
                await wait_idle(svc, count, within_s=max(180.0, count / 10))
                gc.collect()
                snap1 = tracemalloc.take_snapshot()
                await add_limiters(svc, accounts)
                await wait_idle(svc, count, within_s=max(180.0, count / 10))
                gc.collect()
                snap2 = tracemalloc.take_snapshot()
                nursery.cancel_scope.cancel()
        finally:
            tracemalloc.stop()
    actors = snap1.compare_to(snap0, "lineno")
    limiters = snap2.compare_to(snap1, "lineno")
    return {
        "campaigns": count,
        "heap_per_campaign_actor_kib": round(sum(s.size_diff for s in actors) / 1024 / count, 2),
        "heap_per_limiter_kib": round(sum(s.size_diff for s in limiters) / 1024 / count, 2),
        "top_campaign_actor_allocations": _top(actors),
        "top_limiter_allocations": _top(limiters),
    }


# --- the bare-actor baseline -------------------------------------------------------------------------------


async def _bare(count: int) -> dict[str, Any]:
    async def actor(task_status: trio.TaskStatus[trio.MemorySendChannel[object]]) -> None:
        send, receive = trio.open_memory_channel[object](math.inf)
        task_status.started(send)
        async with receive:
            async for _ in receive:
                pass

    rss0 = h.settle_memory()
    async with trio.open_nursery() as nursery:
        channels = [await nursery.start(actor) for _ in range(count)]
        rss1 = h.settle_memory()
        tracemalloc.start()
        snap0 = tracemalloc.take_snapshot()
        more = [await nursery.start(actor) for _ in range(count)]
        gc.collect()
        snap1 = tracemalloc.take_snapshot()
        tracemalloc.stop()
        heap = sum(s.size_diff for s in snap1.compare_to(snap0, "lineno"))
        nursery.cancel_scope.cancel()
    del channels, more
    return {
        "actors": count,
        "rss_per_actor_kib": round((rss1 - rss0) * 1024 / count, 2),
        "heap_per_actor_kib": round(heap / 1024 / count, 2),
    }


def bare_main(count: int) -> None:
    print(json.dumps(trio.run(_bare, count)), flush=True)


async def measure_bare(count: int) -> dict[str, Any]:
    result = await trio.run_process(
        [sys.executable, "-c", f"from bench.footprint import bare_main; bare_main({count})"],
        cwd=h.ROOT,
        capture_stdout=True,
    )
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


# --- the scenario ------------------------------------------------------------------------------------------


async def run(size: str, out_dir: Path | None = None) -> dict[str, Any]:
    p = SIZES[size]
    count = p["campaigns"]
    report = h.Report("footprint", size, {**p, "limiters": count})
    async with h.bench_database("s5") as dsn:
        # Nothing is due in this scenario: Messaging is never called.
        settings = h.service_settings(dsn, "http://127.0.0.1:9", send_interval_ms=60_000)
        async with h.running_service(settings, supervise=False) as svc:
            svc.org = await h.seed_org(svc.store)
            accounts = await build(svc, count)
        rss = await measure_rss(settings, accounts, count, p["idle_window_s"])
        subset = p["tracemalloc_campaigns"]
        if subset < count:
            async with h.running_service(settings, supervise=False) as svc:
                await svc.store.execute(
                    """
                    UPDATE campaigns SET status = 'paused' WHERE status = 'active'
                      AND id NOT IN (SELECT id FROM campaigns WHERE status = 'active' ORDER BY id LIMIT $1)
                    """,
                    subset,
                )
        heap = await measure_heap(settings, accounts[:subset], subset)
    bare = await measure_bare(count)
    report.figures = rss | heap
    report.baseline = {"bare_trio_actor": bare}
    report.ratios = {
        "rss_per_campaign_actor_vs_bare": h.ratio(
            rss["rss_per_campaign_actor_kib"], bare["rss_per_actor_kib"]
        ),
        "rss_per_limiter_vs_bare": h.ratio(rss["rss_per_limiter_kib"], bare["rss_per_actor_kib"]),
        "heap_per_campaign_actor_vs_bare": h.ratio(
            heap["heap_per_campaign_actor_kib"], bare["heap_per_actor_kib"]
        ),
        "heap_per_limiter_vs_bare": h.ratio(heap["heap_per_limiter_kib"], bare["heap_per_actor_kib"]),
    }
    report.targets = {
        "rss_mib <= 300": h.target(rss["rss_with_actors_and_limiters_mib"], TARGET_RSS_MIB),
    }
    if size != "full":
        report.notes.append(
            f"{count} campaigns and limiters; the SPEC's 10,000 is the full size (the per-actor figures scale)"
        )
    return await h.emit(report, out_dir)
