"""Scenario 3 — starting a big campaign: ``POST /api/campaigns/:id/start`` on a draft whose audience is
every contact of the organization (100,000 at full size).

Figures: API call → response (every participant materialised, assigned an account and a channel, and
given its first due time: "all scheduled"), API call → first message at the sandbox, and API call → every
account's first message (first sends are due at once, one per account). A start of more than 5,000
contacts writes the participants due first with the activation and the rest in a second transaction
(actors/enrolment.py), so the first messages can arrive before the response.

Baseline, same run, same database: the set-based minimum for the same result — one ``INSERT … SELECT``
that materialises the same participants with account, channel and due time computed in SQL.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from bench import harness as h

SIZES = {
    "smoke": {"participants": 1000, "accounts": 10},
    "ci": {"participants": 10_000, "accounts": 50},
    "full": {"participants": 100_000, "accounts": 100},
}
GAP_S = 60
TARGET_START_S = 3.0

BASELINE_SQL = """
INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, channel_id, status, current_step,
                                   next_send_at, enqueue_order)
SELECT $1, c.id, ($2::uuid[])[1 + c.n % cardinality($2::uuid[])],
       COALESCE(NULLIF(TRIM(c.telegram_id), ''), NULLIF(TRIM(c.username), '')), 'pending', 0,
       now() + (c.n / cardinality($2::uuid[])) * make_interval(secs => $3), c.n
FROM (SELECT ct.id, ct.telegram_id, ct.username, (row_number() OVER (ORDER BY ct.created_at, ct.id))::int - 1 AS n
      FROM contacts ct
      WHERE ct.organization_id = $4 AND ct.deleted_at IS NULL
        AND (NULLIF(TRIM(ct.telegram_id), '') IS NOT NULL OR NULLIF(TRIM(ct.username), '') IS NOT NULL)
      ORDER BY ct.created_at, ct.id LIMIT $5) c
"""


async def baseline(svc: h.Service, accounts: list[uuid.UUID], n: int) -> dict[str, Any]:
    assert svc.org is not None
    cid = await h.create_campaign(
        svc, name="start baseline", accounts=accounts, gap_s=GAP_S, limit=n, steps=2, step_delay_hours=24
    )

    async def write(conn: Any) -> str:
        status = await conn.execute(BASELINE_SQL, uuid.UUID(cid), accounts, float(GAP_S), svc.org.id, n)
        await conn.execute("UPDATE campaigns SET updated_at = now() WHERE id = $1", uuid.UUID(cid))
        return status

    t0 = time.perf_counter()
    status = await svc.store.run(write)
    elapsed = time.perf_counter() - t0
    return {"participants": int(status.rsplit(" ", 1)[-1]), "all_scheduled_s": round(elapsed, 3)}


async def run(size: str, out_dir: Path | None = None) -> dict[str, Any]:
    p = SIZES[size]
    n = p["participants"]
    report = h.Report("start", size, {**p, "gap_s": GAP_S, "sandbox_latency_ms": 0})
    async with h.sandbox_process({"seed": 3}) as box, h.bench_database("s3") as dsn:
        settings = h.service_settings(dsn, box.url)
        log = h.StatementLog()
        async with h.running_service(settings, statements=log) as svc:
            svc.org = await h.seed_org(svc.store)
            accounts = await h.seed_accounts(svc.store, svc.org, p["accounts"])
            await h.seed_contacts(svc.store, svc.org, n)
            await svc.store.execute("ANALYZE")
            base = await baseline(svc, accounts, n)
            cid = await h.create_campaign(
                svc, name="start", accounts=accounts, gap_s=GAP_S, limit=n, steps=2, step_delay_hours=24
            )
            await box.reset()
            log.reset()
            t0 = time.monotonic()
            await svc.api("POST", f"/api/campaigns/{cid}/start")
            scheduled_at = time.monotonic()
            slowest = log.slowest()
            log.enabled = False
            await box.wait_requests(p["accounts"], within_s=60)
            arrivals = sorted(r["received_mono"] for r in await box.received())
            scheduled = await svc.store.fetchval(
                "SELECT count(*) FROM campaign_participants WHERE campaign_id = $1 AND next_send_at IS NOT NULL",
                uuid.UUID(cid),
            )
    report.figures = {
        "participants": n,
        "participants_scheduled": scheduled,
        "start_to_all_scheduled_s": round(scheduled_at - t0, 3),
        "start_to_first_send_s": round(arrivals[0] - t0, 3),
        "start_to_first_send_of_every_account_s": round(arrivals[p["accounts"] - 1] - t0, 3),
        "slowest_statements_until_first_send": slowest,
    }
    report.baseline = {"single_insert_select": base}
    report.ratios = {
        "all_scheduled_vs_single_insert": h.ratio(
            report.figures["start_to_all_scheduled_s"], base["all_scheduled_s"]
        )
    }
    report.targets = {
        "start_to_all_scheduled_s <= 3": h.target(report.figures["start_to_all_scheduled_s"], TARGET_START_S),
        "start_to_first_send_s <= 3": h.target(report.figures["start_to_first_send_s"], TARGET_START_S),
    }
    if scheduled != n:
        report.notes.append(f"{scheduled} of {n} participants were scheduled")
    return await h.emit(report, out_dir)
