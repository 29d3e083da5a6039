"""The reconciler (issue items 1 and 8): a stall heals itself and is visible; a live limiter sees its
account's row change without a restart."""

from __future__ import annotations

import uuid

import trio

from campaignsvc import metrics
from tests.integration.dispatch_helpers import start_env

QUICK = dict(
    reconcile_interval_s=0.1, stranded_after_s=1.0, account_refresh_s=0.1, send_interval_ms=86_400_000
)


async def test_stranded_participants__are_counted_and_offered_again(nursery, store, org):
    env = await start_env(nursery, store, org, **QUICK)
    account = await org.bd_account()
    cid = await env.campaign(
        accounts=[account], contacts=await org.contacts(3), steps=[{}, {"delayHours": 1}]
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(3)
    with trio.fail_after(30):
        while any(r["current_step"] != 1 for r in await env.participants(cid)):
            await trio.sleep(0.05)
    counted = metrics.STRANDED._value.get()
    # A stall as a lost slot leaves it: the campaign believes a send of the account is out, and its due
    # participants changed where no message announced it (another writer, a missed wake-up).
    actor = env.supervisor.campaigns[uuid.UUID(cid)].actor
    actor.busy[account] = uuid.uuid4()
    await store.execute(
        "UPDATE campaign_participants SET next_send_at = now() - interval '10 minutes' WHERE campaign_id = $1",
        uuid.UUID(cid),
    )

    await env.wait_status(cid, "completed", within=60)
    assert len(env.sent_keys()) == 6
    assert env.supervisor.reconciler.stranded >= 3
    assert metrics.STRANDED._value.get() >= counted + 3


async def test_account_row_change__reaches_its_live_limiter(nursery, store, org):
    env = await start_env(nursery, store, org, **QUICK)
    account = await org.bd_account(max_dm_per_day=3)
    limiter = env.supervisor.limiter(account)
    with trio.fail_after(30):
        while limiter.settings.policy.daily_cap != 3:
            await trio.sleep(0.05)
    assert limiter.settings.policy.active

    await store.execute(
        "UPDATE bd_accounts SET max_dm_per_day = 7, is_active = false, timezone = 'Asia/Tokyo' WHERE id = $1",
        account,
    )
    with trio.fail_after(30):
        while limiter.settings.policy.daily_cap != 7 or limiter.settings.policy.active:
            await trio.sleep(0.05)
    assert str(limiter.settings.policy.timezone) == "Asia/Tokyo"
    await store.execute("UPDATE bd_accounts SET is_active = true WHERE id = $1", account)
    with trio.fail_after(30):
        while not limiter.settings.policy.active:
            await trio.sleep(0.05)
