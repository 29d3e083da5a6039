"""Lifecycle and reset edges that used to be 500s or lost outcomes: a first step that waits for a reply
on a paused/completed campaign, and reset-progress while sends are unfinished."""

from __future__ import annotations

import uuid

import pytest


async def _api(client, org, method, path, body=None):
    response = await client.open(path, method=method, json=body, headers=org.headers())
    return response.status_code, await response.get_json()


async def _campaign(client, org, store, *, status, first_trigger, accounts=2):
    ids = [await org.bd_account() for _ in range(accounts)]
    status_, row = await _api(
        client,
        org,
        "POST",
        "/api/campaigns",
        {"name": "edges", "targetAudience": {"bdAccountIds": [str(a) for a in ids]}},
    )
    assert status_ == 201, row
    cid = row["id"]
    _, tpl = await _api(
        client,
        org,
        "POST",
        f"/api/campaigns/{cid}/templates",
        {"name": "t", "channel": "telegram", "content": "Hi"},
    )
    step = {"orderIndex": 0, "templateId": tpl["id"], "triggerType": first_trigger}
    assert (await _api(client, org, "POST", f"/api/campaigns/{cid}/sequences", step))[0] == 201
    await store.execute("UPDATE campaigns SET status = $2 WHERE id = $1", uuid.UUID(cid), status)
    return cid, ids


@pytest.mark.parametrize("status", ["paused", "completed"])
async def test_add_participants__first_step_waits_for_a_reply_is_400_not_500(client, org, store, status):
    cid, _ = await _campaign(client, org, store, status=status, first_trigger="after_reply")
    contacts = await org.contacts(2)
    code, body = await _api(
        client,
        org,
        "POST",
        f"/api/campaigns/{cid}/participants/add",
        {"contactIds": [str(c) for c in contacts]},
    )
    assert code == 400, body
    assert body["code"] == "VALIDATION" and "wait for a reply" in body["error"]
    assert await store.fetchval("SELECT count(*) FROM campaign_participants") == 0
    assert await store.fetchval("SELECT status FROM campaigns WHERE id = $1", uuid.UUID(cid)) == status


@pytest.mark.parametrize("status", ["paused", "completed"])
async def test_remove_account__first_step_waits_for_a_reply_moves_without_scheduling(
    client, org, store, status
):
    cid, accounts = await _campaign(client, org, store, status=status, first_trigger="after_reply")
    contacts = await org.contacts(2)
    for contact in contacts:
        await store.execute(
            "INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, status) "
            "VALUES ($1, $2, $3, 'pending')",
            uuid.UUID(cid),
            contact,
            accounts[0],
        )
    code, body = await _api(client, org, "DELETE", f"/api/campaigns/{cid}/accounts/{accounts[0]}")
    assert code == 200, body
    assert body == {"ok": True, "reassignedParticipants": 2, "remainingBdAccountIds": [str(accounts[1])]}
    rows = await store.fetch("SELECT bd_account_id, next_send_at FROM campaign_participants")
    # Placed again when the campaign is resumed, which requires a first step that can be sent.
    assert [(r["bd_account_id"], r["next_send_at"]) for r in rows] == [(None, None), (None, None)]


async def test_add_participants__paused_with_a_sendable_first_step_still_schedules(client, org, store):
    cid, _ = await _campaign(client, org, store, status="paused", first_trigger="delay")
    contacts = await org.contacts(1)
    code, body = await _api(
        client, org, "POST", f"/api/campaigns/{cid}/participants/add", {"contactIds": [str(contacts[0])]}
    )
    assert (code, body["inserted"]) == (200, 1)
    assert await store.fetchval("SELECT next_send_at IS NOT NULL FROM campaign_participants")


@pytest.mark.parametrize("ledger_status", ["sending", "in_doubt"])
async def test_reset_progress__refused_while_a_send_is_unfinished(client, org, store, ledger_status):
    cid, accounts = await _campaign(client, org, store, status="paused", first_trigger="delay")
    contacts = await org.contacts(2)
    participant = None
    for contact in contacts:
        participant = await store.fetchval(
            "INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, status) "
            "VALUES ($1, $2, $3, 'pending') RETURNING id",
            uuid.UUID(cid),
            contact,
            accounts[0],
        )
    await store.execute(
        "INSERT INTO campaign_sends (campaign_participant_id, campaign_id, sequence_step, status, idempotency_key) "
        "VALUES ($1, $2, 0, $3, 'k')",
        participant,
        uuid.UUID(cid),
        ledger_status,
    )
    code, body = await _api(client, org, "POST", f"/api/campaigns/{cid}/reset-progress")
    assert code == 409, body
    assert body["code"] == "CONFLICT" and "unfinished" in body["error"]
    assert await store.fetchval("SELECT count(*) FROM campaign_sends") == 1
    assert await store.fetchval("SELECT count(*) FROM campaign_participants WHERE id = $1", participant) == 1
    assert await store.fetchval("SELECT status FROM campaigns WHERE id = $1", uuid.UUID(cid)) == "paused"

    await store.execute("UPDATE campaign_sends SET status = 'sent'")
    code, body = await _api(client, org, "POST", f"/api/campaigns/{cid}/reset-progress")
    assert (code, body["status"]) == (200, "draft")
    assert await store.fetchval("SELECT count(*) FROM campaign_sends") == 0
