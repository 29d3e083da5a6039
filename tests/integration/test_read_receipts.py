"""Read receipts reach the participants in the background (actors/read_receipts.py); reading a report never
writes."""

from __future__ import annotations

import uuid

from campaignsvc.actors.read_receipts import ReadReceipts
from tests.integration.dispatch_helpers import start_env


async def _read_count(store, cid: str) -> int:
    return await store.fetchval(
        "SELECT count(*) FROM campaign_participants WHERE campaign_id = $1 AND read_at IS NOT NULL",
        uuid.UUID(cid),
    )


async def test_a_read_receipt__reaches_stats_through_the_actor_not_through_the_report(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid = await env.campaign(accounts=[await org.bd_account()], contacts=await org.contacts(3), steps=[{}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    # The CRM marks two of the three messages read.
    await store.execute(
        "UPDATE campaign_sends SET read_at = now() WHERE id IN "
        "(SELECT id FROM campaign_sends WHERE campaign_id = $1 ORDER BY id LIMIT 2)",
        uuid.UUID(cid),
    )
    stats = await env.api("GET", f"/api/campaigns/{cid}/stats")
    await env.api("GET", f"/api/campaigns/{cid}/participants?status=read")
    assert stats["total_read"] == 0 and await _read_count(store, cid) == 0  # reports only read

    await ReadReceipts(store, interval_s=60).sync()  # one round, as the actor runs it every interval
    assert await _read_count(store, cid) == 2
    stats = await env.api("GET", f"/api/campaigns/{cid}/stats")
    assert stats["total_read"] == 2


async def test_the_actor__skips_drafts_and_long_completed_campaigns(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid = await env.campaign(accounts=[await org.bd_account()], contacts=await org.contacts(1), steps=[{}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    await store.execute("UPDATE campaign_sends SET read_at = now() WHERE campaign_id = $1", uuid.UUID(cid))
    await store.execute(
        "UPDATE campaigns SET completed_at = now() - interval '8 days' WHERE id = $1", uuid.UUID(cid)
    )
    await ReadReceipts(store, interval_s=60).sync()
    assert await _read_count(store, cid) == 0
