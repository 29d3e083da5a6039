"""A large backlog: 3,000 participants on 10 accounts, all due at start with no gap, must drain at the
sandbox's pace. And a step edit mid-campaign: after every contact got step A, the campaign is paused, A and
B swap places through the API and it resumes — no contact may get A's text a second time."""

from __future__ import annotations

import collections

import trio

from tests.factories import make_org
from tests.faults.harness import check, invariants, open_stand


async def test_large_backlog__3000_due_at_start_on_10_accounts_all_delivered_once(
    store, database_url, tmp_path
):
    org = await make_org(store)
    stand = await open_stand(
        tmp_path, store, org, {"DATABASE_URL": database_url, "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "0"}
    )
    try:
        await stand.start_sandbox("--latency-ms", "5", "--jitter-ms", "3", "--seed", "13")
        await stand.start_service()
        accounts = [await org.bd_account() for _ in range(10)]
        contacts = await org.contacts(3000)
        cid = await stand.env.campaign(
            accounts=accounts, contacts=[], steps=[{}], audience={"sendDelaySeconds": 0}
        )
        for i in range(0, len(contacts), 1000):  # participants/add takes at most 2,000 per call (v1)
            chunk = [str(c) for c in contacts[i : i + 1000]]
            await stand.env.api("POST", f"/api/campaigns/{cid}/participants/add", {"contactIds": chunk})
        await stand.env.api("POST", f"/api/campaigns/{cid}/start")
        completion_s = await stand.wait_completed([cid], within=150)
        figures, problems = await invariants(
            stand, [cid], gaps={str(a): 0.0 for a in accounts}, steps={cid: 1}
        )
        figures["completion_s"] = completion_s
        if figures["deliveries"] != 3000:
            problems.append(f"{figures['deliveries']} of 3000 messages delivered")
        check("large_backlog", figures, problems)
    finally:
        await stand.close()


async def test_step_swap_while_paused__no_contact_gets_the_same_step_twice(store, database_url, tmp_path):
    org = await make_org(store)
    stand = await open_stand(
        tmp_path, store, org, {"DATABASE_URL": database_url, "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "100"}
    )
    try:
        await stand.start_sandbox("--latency-ms", "10", "--seed", "17")
        await stand.start_service()
        accounts = [await org.bd_account() for _ in range(2)]
        contacts = await org.contacts(10)
        cid = await stand.env.campaign(
            accounts=accounts,
            contacts=contacts,
            # B a minute after A (the shortest delay the API takes): the swap lands before any B is due.
            steps=[
                {"content": "A: hello {{contact.first_name}}"},
                {"content": "B: follow-up", "delayMinutes": 1},
            ],
            audience={"sendDelaySeconds": 0.1},
        )
        await stand.env.api("POST", f"/api/campaigns/{cid}/start")
        with trio.fail_after(30):
            while len(await stand.sandbox_get("messages")) < len(contacts):
                await trio.sleep(0.1)
        await stand.env.api("POST", f"/api/campaigns/{cid}/pause")
        steps = sorted(
            await stand.env.api("GET", f"/api/campaigns/{cid}/sequences"), key=lambda s: s["order_index"]
        )
        a, b = steps[0]["id"], steps[1]["id"]
        # Through a free index, in case the order must stay unique while the two change places.
        await stand.env.api("PATCH", f"/api/campaigns/{cid}/sequences/{a}", {"orderIndex": 2})
        await stand.env.api("PATCH", f"/api/campaigns/{cid}/sequences/{b}", {"orderIndex": 0})
        await stand.env.api("PATCH", f"/api/campaigns/{cid}/sequences/{a}", {"orderIndex": 1})
        await stand.env.api("POST", f"/api/campaigns/{cid}/resume")
        completion_s = await stand.wait_completed([cid], within=100)
        figures, problems = await invariants(
            stand, [cid], gaps={str(x): 0.1 for x in accounts}, steps={cid: 1}
        )
        messages = await stand.sandbox_get("messages")
        texts = collections.Counter(m["content"][:2] for m in messages)
        figures["texts"] = dict(texts)
        figures["completion_s"] = completion_s
        check("step_swap", figures, problems)
    finally:
        await stand.close()
