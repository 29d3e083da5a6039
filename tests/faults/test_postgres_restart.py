"""PostgreSQL stopped in immediate mode (a crash: no checkpoint, connections cut) and started again, three
times during a 400-participant campaign over 10 accounts, on a private cluster: the service rides it out
without a restart of its own, sends nothing twice, loses nobody and keeps every gap."""

from __future__ import annotations

import datetime as dt
import random

import asyncpg
import trio
from trio_asyncio import aio_as_trio

from campaignsvc.storage.store import Store
from tests.factories import make_org
from tests.faults.harness import check, invariants, open_stand
from tests.faults.private_pg import PrivateCluster

GAP_S = 0.15
RESTARTS = 3


async def _create_database(cluster: PrivateCluster, name: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(cluster.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    await aio_as_trio(run)()


async def test_postgres_immediate_restarts__campaign_completes_nothing_twice_nobody_lost(aio_loop, tmp_path):
    cluster = PrivateCluster()
    rng = random.Random(7)
    stand = None
    try:
        await cluster.init()
        await cluster.start()
        await _create_database(cluster, "campaignsvc")
        url = cluster.url("campaignsvc")
        # Migrations by the service itself, as a deployment runs them.
        first = await trio.run_process(
            [".venv/bin/campaignsvc", "migrate"], env={"DATABASE_URL": url, "LOG_LEVEL": "warning"}
        )
        assert first.returncode == 0
        async with Store.open(url, min_size=1, max_size=3) as store:
            org = await make_org(store)
            stand = await open_stand(
                tmp_path,
                store,
                org,
                {"DATABASE_URL": url, "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": str(int(GAP_S * 1000))},
            )
            await stand.start_sandbox("--latency-ms", "20", "--jitter-ms", "10", "--seed", "5")
            await stand.start_service()
            accounts = [await org.bd_account() for _ in range(10)]
            cid = await stand.env.campaign(
                accounts=accounts,
                contacts=await org.contacts(400),
                steps=[{}, {}],
                audience={"sendDelaySeconds": GAP_S},
            )
            await stand.env.api("POST", f"/api/campaigns/{cid}/start")
        # The test's own pool would hold connections the restarts break: none is open across them.
        down = []
        for _ in range(RESTARTS):
            await trio.sleep(rng.uniform(2.0, 3.0))
            await cluster.stop("immediate")
            pause = rng.uniform(0.2, 1.0)
            await trio.sleep(pause)
            await cluster.start()
            down.append(round(pause, 2))
        fault_over = dt.datetime.now(dt.UTC)
        service_alive = stand.service.process.poll() is None
        async with Store.open(url, min_size=1, max_size=3) as store:
            stand.store = store
            completion_s = await stand.wait_completed([cid], within=90)
            gaps = {str(a): GAP_S for a in accounts}
            figures, problems = await invariants(
                stand, [cid], gaps=gaps, steps={cid: 2}, fault_over=fault_over
            )
        figures["pg_restarts"] = RESTARTS
        figures["pg_down_s"] = down
        figures["completion_after_last_restart_s"] = completion_s
        figures["service_survived"] = service_alive
        if not service_alive:
            problems.append(f"the service exited during the restarts:\n{stand.service.log()[-3000:]}")
        check("postgres_restart", figures, problems)
    finally:
        if stand is not None:
            await stand.close()
        await cluster.close()
