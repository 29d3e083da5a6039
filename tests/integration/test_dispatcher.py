"""The dispatcher end to end: real database, real HTTP to the sandbox Messaging Service."""

from __future__ import annotations

import datetime as dt
import uuid

import trio
from prometheus_client import REGISTRY

from campaignsvc.sandbox import SandboxConfig
from tests.integration.dispatch_helpers import FakePipeline, reply_event, start_env


async def test_three_step_campaign__runs_to_completion_with_one_send_per_participant_and_step(
    nursery, store, org
):
    env = await start_env(nursery, store, org)
    accounts = [await org.bd_account(), await org.bd_account()]
    contacts = await org.contacts(20)
    cid = await env.campaign(accounts=accounts, contacts=contacts, steps=[{}, {}, {}])
    started = await env.api("POST", f"/api/campaigns/{cid}/start")
    assert started["status"] == "active"

    await env.wait_status(cid, "completed")
    keys = env.sent_keys()
    assert len(keys) == 60
    assert set(keys.values()) == {1}
    assert all(k.startswith(f"campaign:{cid}:participant:") for k in keys)
    rows = await env.participants(cid)
    assert {r["status"] for r in rows} == {"completed"}
    assert {r["bd_account_id"] for r in rows} == set(accounts)
    assert sorted(sum(1 for r in rows if r["bd_account_id"] == a) for a in accounts) == [10, 10]
    ledger = await store.fetch("SELECT status, count(*) AS n FROM campaign_sends GROUP BY status")
    assert {r["status"]: r["n"] for r in ledger} == {"sent": 60}
    events = await store.fetch("SELECT event_type, count(*) AS n FROM campaign_outbox GROUP BY event_type")
    counts = {r["event_type"]: r["n"] for r in events}
    assert counts["campaign.message.sent"] == 60
    assert counts["campaign.completed"] == 1
    assert counts["campaign.started"] == 1
    first = env.sandbox.state.messages[0]
    assert first["content"].startswith("Step 0 for Contact")


async def test_reply__stops_the_sequence_and_is_recorded(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    contacts = await org.contacts(2)
    cid = await env.campaign(accounts=[account], contacts=contacts, steps=[{}, {"delayMinutes": 30}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(2)
    rows = await env.participants(cid)
    await trio.sleep(0.2)
    target = rows[0]
    result = await env.api(
        "POST",
        "/api/campaigns/events",
        reply_event(
            org, contact_id=target["contact_id"], account_id=account, channel_id=target["channel_id"]
        ),
    )
    assert result["duplicate"] is False
    after = {r["id"]: r for r in await env.participants(cid)}
    assert after[target["id"]]["status"] == "replied"
    assert after[target["id"]]["replied_at"] is not None
    assert after[target["id"]]["next_send_at"] is None
    other = after[rows[1]["id"]]
    assert other["status"] == "sent" and other["next_send_at"] is not None


async def test_reply__outbound_echo_and_duplicate_event_change_nothing(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(accounts=[account], contacts=[contact], steps=[{}, {"delayMinutes": 30}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    await trio.sleep(0.2)
    (row,) = await env.participants(cid)
    echo = reply_event(
        org, contact_id=contact, account_id=account, channel_id=row["channel_id"], direction="outbound"
    )
    await env.api("POST", "/api/campaigns/events", echo)
    assert (await env.participants(cid))[0]["status"] == "sent"

    event = reply_event(org, contact_id=contact, account_id=account, channel_id=row["channel_id"])
    first = await env.api("POST", "/api/campaigns/events", event)
    second = await env.api("POST", "/api/campaigns/events", event)
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert (await env.participants(cid))[0]["status"] == "replied"


async def test_after_reply__step_fires_only_after_the_reply(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(
        accounts=[account],
        contacts=[contact],
        steps=[{}, {"triggerType": "after_reply"}, {"delayMinutes": 30}],
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    await trio.sleep(0.3)
    (row,) = await env.participants(cid)
    assert (row["status"], row["current_step"], row["next_send_at"], row["waiting_reason"]) == (
        "sent",
        1,
        None,
        "reply",
    )
    assert len(env.sandbox.state.messages) == 1

    await env.api(
        "POST",
        "/api/campaigns/events",
        reply_event(org, contact_id=contact, account_id=account, channel_id=row["channel_id"]),
    )
    await env.wait_sent(2)
    assert env.sandbox.state.messages[1]["metadata"]["idempotencyKey"].endswith(":step:1")
    await trio.sleep(0.2)
    (row,) = await env.participants(cid)
    assert (row["status"], row["current_step"]) == ("sent", 2)
    assert row["replied_at"] is not None


async def test_pause__drops_queued_sends_and_resume_continues_without_resending(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    contacts = await org.contacts(6)
    # 1 s between two sends of the account: a pause after the first send leaves the rest queued.
    cid = await env.campaign(
        accounts=[account], contacts=contacts, steps=[{}, {}], audience={"sendDelaySeconds": 1}
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    paused = await env.api("POST", f"/api/campaigns/{cid}/pause")
    assert paused["status"] == "paused"
    await trio.sleep(1.5)
    sent_while_paused = len(env.sandbox.state.messages)
    assert sent_while_paused <= 2  # at most the send already under way when the pause arrived
    resumed = await env.api("POST", f"/api/campaigns/{cid}/resume")
    assert resumed["status"] == "active"
    await env.wait_status(cid, "completed", within=60)
    keys = env.sent_keys()
    assert len(keys) == 12 and set(keys.values()) == {1}


async def test_flood_wait__blocks_the_account_and_the_participant_is_requeued(nursery, store, org):
    config = SandboxConfig(seed=1, latency_ms=0, jitter_ms=0, account_min_gap_s=5, flood_wait_s=1)
    env = await start_env(nursery, store, org, sandbox=config)
    account = await org.bd_account()
    contacts = await org.contacts(2)
    cid = await env.campaign(accounts=[account], contacts=contacts, steps=[{}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed", within=30)
    outcomes = [r.outcome for r in env.sandbox.state.received]
    assert outcomes.count("flood_wait") >= 1
    assert outcomes.count("sent") == 2
    blocked = await store.fetchrow(
        "SELECT flood_wait_until, flood_reason FROM bd_accounts WHERE id = $1", account
    )
    assert blocked["flood_reason"] == "flood_wait" and blocked["flood_wait_until"] is not None
    rows = await env.participants(cid)
    assert {r["status"] for r in rows} == {"completed"}


async def test_permanent_error__fails_only_that_participant(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    contacts = await org.contacts(3)
    channel = await store.fetchval("SELECT telegram_id FROM contacts WHERE id = $1", contacts[1])
    env.sandbox.state.update_config({"recipient_errors": {channel: "privacy"}})
    cid = await env.campaign(accounts=[account], contacts=contacts, steps=[{}, {}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    rows = {r["contact_id"]: r for r in await env.participants(cid)}
    assert rows[contacts[1]]["status"] == "failed"
    assert "privacy" in rows[contacts[1]]["last_error"]
    assert rows[contacts[0]]["status"] == rows[contacts[2]]["status"] == "completed"
    assert len(env.sent_keys()) == 4


async def test_timeout__send_is_in_doubt_and_resolved_with_the_same_key(nursery, store, org):
    config = SandboxConfig(
        seed=1, latency_ms=0, jitter_ms=0, account_min_gap_s=0, timeout_rate=1.0, hang_s=1.0
    )
    env = await start_env(
        nursery, store, org, sandbox=config, messaging_timeout_s=0.3, in_doubt_retry_after_s=1
    )
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    cid = await env.campaign(accounts=[account], contacts=[contact], steps=[{}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    with trio.fail_after(10):
        while not await store.fetchval("SELECT count(*) FROM campaign_sends WHERE status = 'in_doubt'"):
            await trio.sleep(0.05)
    env.sandbox.state.update_config({"timeout_rate": 0.0})
    await env.wait_status(cid, "completed", within=30)
    received = env.sandbox.state.received
    keys = {r.idempotency_key for r in received}
    assert len(keys) == 1  # every attempt carried the same key
    assert len(env.sandbox.state.messages) == 1  # delivered once: the retry was answered as a replay
    assert any(r.replay for r in received)
    assert await store.fetchval("SELECT status FROM campaign_sends") == "sent"


async def test_participants_added_to_a_running_campaign_are_sent(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    first = await org.contacts(1)
    cid = await env.campaign(accounts=[account], contacts=first, steps=[{}, {"delayMinutes": 30}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    more = await org.contacts(2)
    added = await env.api(
        "POST", f"/api/campaigns/{cid}/participants/add", {"contactIds": [str(c) for c in more]}
    )
    assert added == {"inserted": 2, "requested": 2, "eligibleWithTelegram": 2, "campaignStatus": "active"}
    await env.wait_sent(3)


async def test_start__validation_errors(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    empty = await env.campaign(accounts=[account], contacts=[], steps=[])
    body = await env.api("POST", f"/api/campaigns/{empty}/start", expect=400)
    assert body["error"] == "Add at least one sequence step before starting the campaign"
    no_contacts = await env.campaign(accounts=[account], contacts=[], steps=[{}])
    body = await env.api("POST", f"/api/campaigns/{no_contacts}/start", expect=400)
    assert body["code"] == "VALIDATION"
    await env.api("POST", f"/api/campaigns/{uuid.uuid4()}/start", expect=404)


async def test_throttle__shows_live_limiter_state_per_account(nursery, store, org):
    env = await start_env(nursery, store, org)
    busy = await org.bd_account(display_name="Busy")
    await org.bd_account(display_name="Idle")
    blocked_until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    await org.bd_account(display_name="Blocked", flood_wait_until=blocked_until)
    contacts = await org.contacts(3)
    cid = await env.campaign(
        accounts=[busy], contacts=contacts, steps=[{}], audience={"sendDelaySeconds": 30}
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    await trio.sleep(0.2)
    rows = {r["displayName"]: r for r in await env.api("GET", "/api/campaigns/agents/throttle")}
    # The next participants were spread 30 s apart at the start: the account waits for the next one.
    assert rows["Busy"]["state"] == "idle"
    assert rows["Busy"]["sentToday"] == 1
    assert rows["Busy"]["lastSendAt"] is not None
    assert sum(rows["Busy"]["sendsPerMinute"]) == 1
    assert rows["Idle"]["state"] == "idle" and rows["Idle"]["sentToday"] == 0
    # An account without a running limiter is described from the database, its block included.
    blocked = rows["Blocked"]
    assert blocked["state"] == "flood_blocked"
    assert blocked["nextAllowedAt"] == blocked["blockedUntil"]
    assert dt.datetime.fromisoformat(blocked["blockedUntil"].replace("Z", "+00:00")) == blocked_until


async def test_leads__created_once_on_first_send_and_announced(nursery, store, org):
    pipeline = FakePipeline()
    env = await start_env(nursery, store, org, pipeline=pipeline)
    account = await org.bd_account()
    contacts = await org.contacts(3)
    pipeline_id, stages = await org.pipeline()
    cid = await env.campaign(
        accounts=[account], contacts=contacts, steps=[{}, {}], pipelineId=str(pipeline_id)
    )
    await env.api("PATCH", f"/api/campaigns/{cid}", {"leadCreationSettings": {"trigger": "on_first_send"}})
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    with trio.fail_after(10):
        while (
            await store.fetchval(
                "SELECT count(*) FROM campaign_participants WHERE lead_created_at IS NOT NULL"
            )
            < 3
        ):
            await trio.sleep(0.05)
    assert len(pipeline.calls) == 3
    assert {c["body"]["stageId"] for c in pipeline.calls} == {str(stages[0])}
    assert {c["headers"]["x-user-id"] for c in pipeline.calls} == {str(org.owner_id)}
    events = await store.fetch(
        "SELECT envelope FROM campaign_outbox WHERE event_type = 'lead.created.from.campaign'"
    )
    assert len(events) == 3
    assert {e["envelope"]["data"]["campaignId"] for e in events} == {cid}


async def test_leads__on_reply_logs_activity_once(nursery, store, org):
    pipeline = FakePipeline()
    env = await start_env(nursery, store, org, pipeline=pipeline)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    pipeline_id, stages = await org.pipeline()
    cid = await env.campaign(
        accounts=[account], contacts=[contact], steps=[{}, {"delayMinutes": 30}], pipelineId=str(pipeline_id)
    )
    await env.api(
        "PATCH",
        f"/api/campaigns/{cid}",
        {"leadCreationSettings": {"trigger": "on_reply", "default_stage_id": str(stages[1])}},
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    await trio.sleep(0.2)
    assert pipeline.calls == []
    (row,) = await env.participants(cid)
    lead_id = await store.fetchval(
        "INSERT INTO leads (organization_id, contact_id, pipeline_id, stage_id) VALUES ($1, $2, $3, $4) RETURNING id",
        org.id,
        contact,
        pipeline_id,
        stages[1],
    )
    pipeline.leads[(str(contact), str(pipeline_id))] = str(lead_id)  # the contact is already in the pipeline
    await env.api(
        "POST",
        "/api/campaigns/events",
        reply_event(org, contact_id=contact, account_id=account, channel_id=row["channel_id"]),
    )
    with trio.fail_after(10):
        while not await store.fetchval(
            "SELECT lead_created_at FROM campaign_participants WHERE id = $1", row["id"]
        ):
            await trio.sleep(0.05)
    assert [c["body"]["stageId"] for c in pipeline.calls] == [str(stages[1])]
    activity = await store.fetch(
        "SELECT type FROM lead_activity_log WHERE lead_id = $1 ORDER BY type", lead_id
    )
    assert [a["type"] for a in activity] == ["campaign_reply_received", "lead_created"]
    event = await store.fetchval(
        "SELECT envelope FROM campaign_outbox WHERE event_type = 'lead.created.from.campaign'"
    )
    assert event["data"]["leadId"] == str(lead_id) and "repliedAt" in event["data"]


async def test_participants_bulk_into_a_running_campaign_are_scheduled_and_sent(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    cid = await env.campaign(
        accounts=[account], contacts=await org.contacts(1), steps=[{}, {"delayMinutes": 30}]
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    more = await org.contacts(2)
    added = await env.api(
        "POST", f"/api/campaigns/{cid}/participants-bulk", {"contactIds": [str(c) for c in more]}
    )
    assert added == {"added": 2}
    await env.wait_sent(3)


async def test_dynamic_enrolment__a_lead_entering_the_stage_joins_the_running_campaign(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    pipeline_id, stages = await org.pipeline()
    audience = {"dynamicPipelineId": str(pipeline_id), "dynamicStageIds": [str(stages[1])]}
    cid = await env.campaign(
        accounts=[account],
        contacts=await org.contacts(1),
        steps=[{}, {"delayMinutes": 30}],
        audience=audience,
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    newcomer, other_stage = await org.contacts(2)
    event = {
        "id": str(uuid.uuid4()),
        "type": "lead.stage.changed",
        "organizationId": str(org.id),
        "data": {
            "contactId": str(newcomer),
            "pipelineId": str(pipeline_id),
            "fromStageId": str(stages[0]),
            "toStageId": str(stages[1]),
        },
    }
    await env.api("POST", "/api/campaigns/events", event)
    ignored = {**event, "id": str(uuid.uuid4()), "type": "lead.created"}
    ignored["data"] = {
        "contactId": str(other_stage),
        "pipelineId": str(pipeline_id),
        "stageId": str(stages[0]),
    }
    await env.api("POST", "/api/campaigns/events", ignored)
    await env.wait_sent(2)
    members = {r["contact_id"] for r in await env.participants(cid)}
    assert newcomer in members and other_stage not in members


async def test_start__materialises_the_audience_from_filters_scheduled_in_one_go(nursery, store, org):
    env = await start_env(nursery, store, org)
    accounts = [await org.bd_account(), await org.bd_account()]
    acme = await org.company("Acme")
    in_company = await org.contacts(6, company_id=acme)
    await org.contacts(3)  # other company: not in the audience
    username_only = await org.contact(first_name="U", telegram_id=None, username="@u_only", company_id=acme)
    await org.contact(first_name="Nobody", telegram_id=None, company_id=acme)  # unreachable: left out
    taken = await env.campaign(accounts=accounts[:1], contacts=in_company[:2], steps=[{}])
    audience = {"filters": {"companyId": str(acme)}, "onlyNew": True}
    cid = await env.campaign(accounts=accounts, contacts=[], steps=[{}], audience=audience)
    await env.api("POST", f"/api/campaigns/{cid}/start")
    rows = await env.participants(cid)
    assert {r["contact_id"] for r in rows} == {*in_company[2:], username_only}
    assert all(r["next_send_at"] is not None and r["status"] == "pending" for r in rows)
    assert sorted(sum(1 for r in rows if r["bd_account_id"] == a) for a in accounts) == [2, 3]
    by_contact = {r["contact_id"]: r for r in rows}
    assert by_contact[username_only]["channel_id"] == "u_only"
    await env.wait_status(cid, "completed")
    assert taken  # the other campaign only served to make those contacts "not new"


async def test_every_call__is_observed_in_the_lateness_histogram(nursery, store, org):
    """The service's main SLO metric: one observation per Messaging call, from its start to its due time."""

    def observed() -> float:
        return REGISTRY.get_sample_value("campaign_send_lateness_seconds_count") or 0.0

    env = await start_env(nursery, store, org)
    before = observed()
    cid = await env.campaign(
        accounts=[await org.bd_account()], contacts=await org.contacts(3), steps=[{}, {}]
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    assert observed() - before == 6
