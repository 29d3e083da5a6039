"""Replies that arrive in every participant state (issue item 6): while the first send is in flight or in
doubt, after a participant failed, and while a participant whose first step was skipped waits for one.
Real database, real sandbox Messaging Service, replies through the real entry point."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import trio

from campaignsvc.integrations.events import parse_event
from campaignsvc.sandbox import SandboxConfig
from campaignsvc.storage import lifecycle
from campaignsvc.usecases.inbound import Effects
from tests.integration.dispatch_helpers import Env, reply_event, start_env

# A condition no seeded contact meets: the step is skipped without a send.
NEVER = {"contact": [{"field": "email", "op": "equals", "value": "nobody@nowhere.test"}]}


async def _reply(env: Env, row, account: uuid.UUID) -> Effects:
    """The reply entry point the RabbitMQ consumer and the events endpoint both call."""
    envelope = reply_event(
        env.org, contact_id=row["contact_id"], account_id=account, channel_id=row["channel_id"]
    )
    return await env.services.inbound.handle(parse_event(json.dumps(envelope)))


async def _wait_row(env: Env, cid: str, predicate, within: float = 30):
    with trio.fail_after(within):
        while True:
            rows = await env.participants(cid)
            if rows and predicate(rows[0]):
                return rows[0]
            await trio.sleep(0.05)


async def _wait_ledger(env: Env, status: str, within: float = 30) -> None:
    with trio.fail_after(within):
        while not await env.store.fetchval("SELECT count(*) FROM campaign_sends WHERE status = $1", status):
            await trio.sleep(0.05)


async def test_reply_while_the_first_send_is_in_flight__stops_the_follow_up(nursery, store, org):
    # The sandbox holds the first send for hang_s and then delivers it; the caller waits that long.
    config = SandboxConfig(
        seed=1, latency_ms=0, jitter_ms=0, account_min_gap_s=0, timeout_rate=1.0, hang_s=3.0
    )
    env = await start_env(nursery, store, org, sandbox=config, messaging_timeout_s=30)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(accounts=[account], contacts=[contact], steps=[{}, {}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await _wait_ledger(env, "sending")
    env.sandbox.state.update_config({"timeout_rate": 0.0})
    (row,) = await env.participants(cid)
    assert row["last_sent_at"] is None

    await _reply(env, row, account)
    assert not env.sandbox.state.messages, "the reply must land while step 0 is still in flight"
    (row,) = await env.participants(cid)
    assert (row["status"], row["next_send_at"]) == ("replied", None)
    assert row["replied_at"] is not None

    # The message in flight is still delivered and recorded; the follow-up never goes out.
    await env.wait_status(cid, "completed")
    row = await _wait_row(env, cid, lambda r: r["last_sent_at"] is not None)
    assert row["status"] == "replied"
    assert [k.rsplit(":", 1)[-1] for k in env.sent_keys()] == ["0"]
    assert await store.fetchval("SELECT count(*) FROM campaign_sends WHERE sequence_step = 1") == 0


async def test_reply_while_the_first_send_is_in_doubt__stops_the_retry_and_the_follow_up(nursery, store, org):
    config = SandboxConfig(
        seed=1, latency_ms=0, jitter_ms=0, account_min_gap_s=0, timeout_rate=1.0, hang_s=0.5
    )
    env = await start_env(
        nursery, store, org, sandbox=config, messaging_timeout_s=0.2, in_doubt_retry_after_s=3600
    )
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(accounts=[account], contacts=[contact], steps=[{}, {}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await _wait_ledger(env, "in_doubt")
    row = await _wait_row(env, cid, lambda r: r["waiting_reason"] == "in_doubt")
    assert row["last_sent_at"] is None

    await _reply(env, row, account)
    (row,) = await env.participants(cid)
    assert (row["status"], row["next_send_at"], row["waiting_reason"]) == ("replied", None, None)
    assert row["replied_at"] is not None
    await env.wait_status(cid, "completed")


async def test_reply_of_a_failed_participant__is_recorded_and_retry_failed_leaves_it_out(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    contacts = await org.contacts(2)
    # The account's gap keeps step 1 at least 2 s after step 0: time to make step 1 fail for good.
    cid = await env.campaign(
        accounts=[account], contacts=contacts[:1], steps=[{}, {}], audience={"sendDelaySeconds": 2}
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    (row,) = await env.participants(cid)
    env.sandbox.state.update_config({"recipient_errors": {row["channel_id"]: "privacy"}})
    row = await _wait_row(env, cid, lambda r: r["status"] == "failed")
    assert row["last_sent_at"] is not None and row["current_step"] == 1
    await env.wait_status(cid, "completed")

    await _reply(env, row, account)
    (row,) = await env.participants(cid)
    assert row["status"] == "replied"
    assert row["replied_at"] is not None

    env.sandbox.state.update_config({"recipient_errors": {}})
    retried = await env.api("POST", f"/api/campaigns/{cid}/participants/retry-failed")
    assert retried == {"retried": 0, "campaignStatus": "completed"}
    assert (await env.participants(cid))[0]["status"] == "replied"


async def test_reply_of_a_replied_participant__is_recorded_too(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(accounts=[account], contacts=[contact], steps=[{}, {"delayMinutes": 30}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    row = await _wait_row(env, cid, lambda r: r["last_sent_at"] is not None)
    await _reply(env, row, account)
    (first,) = await env.participants(cid)
    assert first["status"] == "replied"

    second = await _reply(env, row, account)
    assert second.duplicate is False
    (row,) = await env.participants(cid)
    assert row["status"] == "replied"
    assert row["replied_at"] == first["replied_at"]  # the first reply stays the reply
    assert dt.datetime.fromisoformat(row["metadata"]["lastReplyAt"]) > first["replied_at"]


async def test_first_step_skipped_into_an_after_reply_wait__the_reply_releases_it(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(
        accounts=[account],
        contacts=[contact],
        steps=[{"conditions": NEVER}, {"triggerType": "after_reply"}],
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    row = await _wait_row(env, cid, lambda r: r["waiting_reason"] == "reply")
    assert (row["current_step"], row["last_sent_at"], row["next_send_at"]) == (1, None, None)

    await _reply(env, row, account)
    await env.wait_sent(1)
    assert env.sandbox.state.messages[0]["metadata"]["idempotencyKey"].endswith(":step:1")
    await env.wait_status(cid, "completed")
    (row,) = await env.participants(cid)
    assert row["status"] == "completed" and row["replied_at"] is not None


async def test_first_step_skipped_into_an_after_reply_wait__completes_after_the_reply_wait(
    nursery, store, org
):
    env = await start_env(nursery, store, org, reply_wait_hours=0.0)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(
        accounts=[account],
        contacts=[contact],
        steps=[{"conditions": NEVER}, {"triggerType": "after_reply"}],
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed", within=15)
    (row,) = await env.participants(cid)
    assert (row["status"], row["last_sent_at"], row["waiting_reason"]) == ("completed", None, None)
    assert not env.sandbox.state.messages


async def test_reply_wait_after_a_skip__counts_from_the_skip(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(
        accounts=[account],
        contacts=[contact],
        steps=[{"conditions": NEVER}, {"triggerType": "after_reply"}],
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    row = await _wait_row(env, cid, lambda r: r["waiting_reason"] == "reply")
    skipped_at = await store.fetchval(
        "SELECT completed_at FROM campaign_sends WHERE campaign_participant_id = $1 AND status = 'skipped'",
        row["id"],
    )
    wait = dt.timedelta(hours=1)
    campaign = uuid.UUID(cid)
    assert await store.run(lifecycle.complete_if_done, campaign, wait) == (False, skipped_at + wait)

    # The skip an hour and more ago: the wait is over.
    await store.execute(
        "UPDATE campaign_sends SET completed_at = completed_at - interval '61 minutes' WHERE campaign_participant_id = $1",
        row["id"],
    )
    assert await store.run(lifecycle.complete_if_done, campaign, wait) == (True, None)
    (row,) = await env.participants(cid)
    assert row["status"] == "completed"


async def _claim_held_until_a_reply_waits(conn, participant_id: uuid.UUID, campaign_id: uuid.UUID) -> None:
    """A claim's transaction: the participant locked, its ``sending`` row written, not yet committed —
    held until another transaction waits for the lock."""
    await conn.execute("SELECT 1 FROM campaign_participants WHERE id = $1 FOR UPDATE", participant_id)
    await conn.execute(
        """
        INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, idempotency_key, content,
                                    campaign_id, attempts, claimed_at)
        VALUES ($1, 0, 'sending', $2, 'Step 0', $3, 1, now())
        """,
        participant_id,
        f"campaign:{campaign_id}:participant:{participant_id}:step:0",
        campaign_id,
    )
    await conn.execute("SET LOCAL application_name = 'held-claim'")
    while not await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ):
        await asyncio.sleep(0.01)


async def test_reply_waiting_on_a_first_claim__counts_once_the_claim_commits(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(accounts=[account], contacts=[contact], steps=[{"delayHours": 1}, {}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    row = await _wait_row(env, cid, lambda r: r["next_send_at"] is not None)

    async def claim() -> None:
        await store.run(_claim_held_until_a_reply_waits, row["id"], uuid.UUID(cid))

    async with trio.open_nursery() as both:
        both.start_soon(claim)
        with trio.fail_after(30):
            while not await store.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'held-claim'"
            ):
                await trio.sleep(0.01)
        effects = await _reply(env, row, account)
        both.cancel_scope.cancel()  # a reply that did not wait for the claim leaves it holding
    assert effects.replied == 1
    (row,) = await env.participants(cid)
    assert (row["status"], row["next_send_at"]) == ("replied", None)
