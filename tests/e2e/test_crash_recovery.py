"""The real process killed with SIGKILL mid-campaign and restarted: nothing is sent twice, nobody is lost."""

from __future__ import annotations

import collections
import signal

import httpx
import trio

from tests.conftest import free_port, start_service, stop_service
from tests.e2e.processes import HttpClient, start_sandbox_process
from tests.factories import make_org
from tests.integration.dispatch_helpers import Env


async def test_sigkill_mid_campaign__restart_sends_nothing_twice_and_loses_nobody(
    store, database_url, tmp_path
):
    sandbox_port = free_port()
    sandbox = await start_sandbox_process(
        tmp_path / "sandbox.log", sandbox_port, "--latency-ms", "40", "--jitter-ms", "30"
    )
    env_vars = {
        "DATABASE_URL": database_url,
        "MESSAGING_SERVICE_URL": f"http://127.0.0.1:{sandbox_port}",
        "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "0",
        "CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY": "0",
        "IN_DOUBT_RETRY_AFTER_SECONDS": "1",
        "LOG_LEVEL": "warning",
    }
    service = await start_service(dict(env_vars), tmp_path / "service-1.log")
    try:
        org = await make_org(store)
        accounts = [await org.bd_account() for _ in range(4)]
        contacts = await org.contacts(40)
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            env = Env(
                store=store,
                settings=None,
                sandbox=None,
                supervisor=None,
                services=None,
                client=HttpClient(http),
                org=org,
            )
            cid = await env.campaign(accounts=accounts, contacts=contacts, steps=[{}, {}, {}])
            await env.api("POST", f"/api/campaigns/{cid}/start")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sandbox_port}") as box:
                with trio.fail_after(30):
                    while len((await box.get("/sandbox/messages")).json()["items"]) < 30:
                        await trio.sleep(0.02)
            service.process.send_signal(signal.SIGKILL)
            service.process.wait(10)
        in_flight = await store.fetchval("SELECT count(*) FROM campaign_sends WHERE status = 'sending'")

        service = await start_service(dict(env_vars), tmp_path / "service-2.log")
        with trio.fail_after(60):
            while (
                await store.fetchval("SELECT status FROM campaigns WHERE id = $1::uuid", cid) != "completed"
            ):
                await trio.sleep(0.1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sandbox_port}") as box:
            delivered = (await box.get("/sandbox/messages")).json()["items"]
        keys = collections.Counter(m["metadata"]["idempotencyKey"] for m in delivered)
        assert len(keys) == 120, (
            f"expected 40 participants x 3 steps, got {len(keys)} (in flight at kill: {in_flight})"
        )
        assert set(keys.values()) == {1}, "a message was delivered twice"
        statuses = await store.fetch(
            "SELECT status, count(*) AS n FROM campaign_participants GROUP BY status"
        )
        assert {r["status"]: r["n"] for r in statuses} == {"completed": 40}
        ledger = await store.fetch("SELECT status, count(*) AS n FROM campaign_sends GROUP BY status")
        assert {r["status"]: r["n"] for r in ledger} == {"sent": 120}
    finally:
        stop_service(service)
        sandbox.terminate()
        sandbox.wait(10)
