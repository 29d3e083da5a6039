"""The real process SIGKILLed at random moments of live campaigns, again and again, then left to finish:
nothing delivered twice, nobody lost, no account's arrivals closer than its gap — including the campaign
whose gap is longer than a restart, so a restarted process must remember the last send of each account."""

from __future__ import annotations

import datetime as dt
import random

import trio

from tests.factories import make_org
from tests.faults.harness import check, invariants, open_stand

KILLS = 10
SLOW_GAP_S = 3.0
FAST_GAP_S = 0.25


async def test_sigkill_loop__ten_kills_mid_campaign_send_nothing_twice_and_keep_every_gap(
    store, database_url, tmp_path
):
    org = await make_org(store)
    stand = await open_stand(
        tmp_path,
        store,
        org,
        {"DATABASE_URL": database_url, "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": str(int(FAST_GAP_S * 1000))},
    )
    rng = random.Random(20260101)
    try:
        await stand.start_sandbox("--latency-ms", "40", "--jitter-ms", "30", "--seed", "3")
        await stand.start_service()
        slow_accounts = [await org.bd_account() for _ in range(2)]
        fast_accounts = [await org.bd_account() for _ in range(4)]
        slow = await stand.env.campaign(
            accounts=slow_accounts,
            contacts=await org.contacts(8),
            steps=[{}, {}],
            audience={"sendDelaySeconds": SLOW_GAP_S},
        )
        fast = await stand.env.campaign(
            accounts=fast_accounts,
            contacts=await org.contacts(100),
            steps=[{}, {}, {}],
            audience={"sendDelaySeconds": FAST_GAP_S},
        )
        for cid in (slow, fast):
            await stand.env.api("POST", f"/api/campaigns/{cid}/start")
        downtime = []
        for _ in range(KILLS):
            await trio.sleep(rng.uniform(0.3, 2.5))
            stand.kill_service()
            killed_at = trio.current_time()
            await stand.start_service()
            downtime.append(trio.current_time() - killed_at)
        fault_over = dt.datetime.now(dt.UTC)
        completion_s = await stand.wait_completed([slow, fast], within=90)
        gaps = {str(a): SLOW_GAP_S for a in slow_accounts} | {str(a): FAST_GAP_S for a in fast_accounts}
        figures, problems = await invariants(
            stand, [slow, fast], gaps=gaps, steps={slow: 2, fast: 3}, fault_over=fault_over
        )
        figures["restart_s_max"] = round(max(downtime), 2)
        figures["completion_after_last_restart_s"] = completion_s
        check("sigkill_loop", figures, problems)
    finally:
        await stand.close()
