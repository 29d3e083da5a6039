"""The account's recorded last start is the start of its Messaging call, which a restart recovers."""

from __future__ import annotations

import datetime as dt
import uuid

from tests.integration.dispatch_helpers import start_env


async def test_recorded_last_start__is_the_calls_start_not_the_claims(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    # The second send waits a 1 s gap, so it is claimed ahead of its start (CLAIM_LEAD).
    cid = await env.campaign(
        accounts=[account], contacts=await org.contacts(2), steps=[{}], audience={"sendDelaySeconds": 1}
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    last = max(env.sandbox.state.messages, key=lambda m: m["sent_at"])
    recorded = await store.fetchval(
        "SELECT last_send_at FROM campaign_account_state WHERE bd_account_id = $1", account
    )
    claimed = await store.fetchval(
        "SELECT max(s.claimed_at) FROM campaign_sends s WHERE s.campaign_id = $1", uuid.UUID(cid)
    )
    # The call starts after its claim and before it arrives, within the loop's jitter of the arrival.
    assert claimed <= recorded <= last["sent_at"]
    assert last["sent_at"] - recorded < dt.timedelta(milliseconds=50)
    # Recorded with its outcome: a restart uses it as it is, without the allowance for a start only planned.
    exact = await store.fetchval(
        "SELECT last_call_at >= last_send_at FROM campaign_account_state WHERE bd_account_id = $1", account
    )
    assert exact


async def test_a_restarted_limiter__waits_the_gap_from_the_recorded_call_start(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    started = dt.datetime.now(dt.UTC)
    await store.execute(
        "INSERT INTO campaign_account_state (bd_account_id, last_send_at, updated_at) VALUES ($1, $2, now())",
        account,
        started,
    )
    cid = await env.campaign(
        accounts=[account], contacts=await org.contacts(1), steps=[{}], audience={"sendDelaySeconds": 2}
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    (message,) = env.sandbox.state.messages
    assert message["sent_at"] - started >= dt.timedelta(seconds=2)
