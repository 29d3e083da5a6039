"""The account's recorded last start is the start of its Messaging call, which a restart recovers."""

from __future__ import annotations

import datetime as dt
import uuid

from campaignsvc.storage import accounts as accounts_db
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
    state = (await store.run(accounts_db.limiter_states, [account]))[account]
    claimed = await store.fetchval(
        "SELECT max(s.claimed_at) FROM campaign_sends s WHERE s.campaign_id = $1", uuid.UUID(cid)
    )
    # The call starts after its claim and before it arrives, within the loop's jitter of the arrival.
    assert claimed <= state["last_send_at"] <= last["sent_at"]
    assert last["sent_at"] - state["last_send_at"] < dt.timedelta(milliseconds=50)
    # Recorded with its outcome: a restart uses it as it is, without the allowance for a start only planned.
    assert state["last_send_exact"]


async def test_a_start_only_planned__is_not_exact(nursery, store, org):
    """The process died between claim and outcome: the claim's planned start is later than any recorded call."""
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    cid = await env.campaign(accounts=[account], contacts=await org.contacts(1), steps=[{}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    planned = dt.datetime.now(dt.UTC)
    await store.execute(
        "UPDATE campaign_account_state SET last_send_at = $2 WHERE bd_account_id = $1", account, planned
    )
    state = (await store.run(accounts_db.limiter_states, [account]))[account]
    assert state["last_send_at"] == planned
    assert not state["last_send_exact"]


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
