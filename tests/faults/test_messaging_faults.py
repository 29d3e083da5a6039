"""Every Messaging fault at once in one campaign: 502s (nothing sent), hangs past the service's timeout
(delivered later), 500s after the message was taken, and FLOOD_WAIT 429s with retryAfterSeconds. The
ambiguous ones are retried with the same key, so the sandbox must never deliver a key twice."""

from __future__ import annotations

import httpx

from tests.factories import make_org
from tests.faults.harness import check, invariants, open_stand

GAP_S = 0.3


async def test_messaging_faults_together__no_key_delivered_twice_and_everything_completes(
    store, database_url, tmp_path
):
    org = await make_org(store)
    stand = await open_stand(
        tmp_path,
        store,
        org,
        {
            "DATABASE_URL": database_url,
            "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": str(int(GAP_S * 1000)),
            "CAMPAIGN_MESSAGING_HTTP_TIMEOUT_MS": "800",
            # Transient failures are the point here; a participant must not run out of attempts.
            "MAX_SEND_ATTEMPTS": "30",
        },
    )
    try:
        await stand.start_sandbox(
            "--latency-ms",
            "30",
            "--jitter-ms",
            "20",
            "--seed",
            "11",
            # Above the service's gap and its safety margin (20 ms): a send paced right after an accepted
            # one gets FLOOD_WAIT; the next one after the block is accepted again.
            "--account-min-gap-s",
            str(GAP_S + 0.1),
            "--flood-wait-s",
            "0.5",
            config={"error_rate": 0.12, "timeout_rate": 0.06, "hang_s": 2.0, "abort_rate": 0.06},
        )
        await stand.start_service()
        accounts = [await org.bd_account() for _ in range(4)]
        cid = await stand.env.campaign(
            accounts=accounts,
            contacts=await org.contacts(40),
            steps=[{}, {}],
            audience={"sendDelaySeconds": GAP_S},
        )
        await stand.env.api("POST", f"/api/campaigns/{cid}/start")
        # ~60 s alone, ~95 s inside the whole suite on two cores: transient retries back off (1-2 s, 2-4 s,
        # ...) and every accepted send is followed by a FLOOD_WAIT block. The bound only stops a hang.
        completion_s = await stand.wait_completed([cid], within=300)
        figures, problems = await invariants(
            stand, [cid], gaps={str(a): GAP_S for a in accounts}, steps={cid: 2}
        )
        async with httpx.AsyncClient(base_url=stand.sandbox_url) as box:
            outcomes = (await box.get("/sandbox/stats")).json()["byOutcome"]
        figures["outcomes"] = outcomes
        figures["completion_s"] = completion_s
        for fault in ("downstream_error", "timeout_delivered", "abort_delivered", "flood_wait"):
            if not outcomes.get(fault):
                problems.append(f"the scenario injected no {fault}: the mix did not happen")
        check("messaging_faults", figures, problems)
    finally:
        await stand.close()
