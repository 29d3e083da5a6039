"""Automatic answers and reply intent through the real entry point, with the dispatcher running: an
away message holds the next send back and does not stop the sequence; a person's reply is read, stored,
counted, announced and can be corrected by a person."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import trio

from campaignsvc.integrations.events import parse_event
from campaignsvc.usecases.inbound import Effects
from tests.integration.dispatch_helpers import Env, reply_event, start_env


async def _message(env: Env, row, account: uuid.UUID, **data) -> Effects:
    envelope = reply_event(
        env.org, contact_id=row["contact_id"], account_id=account, channel_id=row["channel_id"]
    )
    envelope["data"].update(data)
    return await env.services.inbound.handle(parse_event(json.dumps(envelope)))


async def _first_sent(env: Env, account: uuid.UUID, steps: list[dict], **audience) -> tuple[str, object]:
    (contact,) = await env.org.contacts(1)
    cid = await env.campaign(accounts=[account], contacts=[contact], steps=steps, audience=audience)
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    with_outcome = "SELECT count(*) FROM campaign_sends WHERE status = 'sent'"
    while not await env.store.fetchval(with_outcome):
        await trio.sleep(0.05)
    (row,) = await env.participants(cid)
    return cid, row


async def test_auto_reply__holds_the_next_send_and_the_sequence_goes_on(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    cid, row = await _first_sent(
        env, account, [{}, {"delayMinutes": 1}], autoReplyPauseHours=0.05
    )  # a 3-minute hold
    before = row["next_send_at"]
    effects = await _message(env, row, account, content="I'm on vacation until Monday", isOffline=True)
    assert (effects.replied, effects.automatic) == (0, 1)
    (after,) = await env.participants(cid)
    assert after["status"] == "sent" and after["replied_at"] is None and after["auto_replied_at"] is not None
    assert after["next_send_at"] > before and after["waiting_reason"] == "auto_reply"
    assert abs(after["next_send_at"] - (after["auto_replied_at"] + dt.timedelta(minutes=3))) < dt.timedelta(
        seconds=1
    )
    (page,) = await env.api("GET", f"/api/campaigns/{cid}/participants")
    assert page["waiting"]["code"] == "auto_reply_pause" and page["auto_replied_at"] is not None
    # When the hold ends, the next step goes out as usual.
    await store.execute("UPDATE campaign_participants SET next_send_at = now() WHERE id = $1", row["id"])
    env.supervisor.campaigns[uuid.UUID(cid)].actor.wake()
    await env.wait_status(cid, "completed")
    assert len(env.sandbox.state.messages) == 2


async def test_auto_reply__does_not_release_an_after_reply_step(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    cid, row = await _first_sent(env, account, [{}, {"triggerType": "after_reply"}])
    await _message(env, row, account, content="Auto: I'll answer soon", viaBusinessBotId="777")
    (after,) = await env.participants(cid)
    assert (after["status"], after["waiting_reason"], after["next_send_at"]) == ("sent", "reply", None)
    assert after["auto_replied_at"] is not None and after["reply_intent"] is None
    # The person's own answer then releases it.
    effects = await _message(env, row, account, content="Sure, tell me more")
    assert effects.released == 1
    (released,) = await env.participants(cid)
    assert released["reply_intent"] == "interested" and released["next_send_at"] is not None


async def test_reply_intent__stored_counted_announced_and_corrected_by_a_person(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    cid, row = await _first_sent(env, account, [{}, {"delayHours": 1}])
    effects = await _message(env, row, account, content="Не пишите мне больше, пожалуйста")
    assert effects.replied == 1
    (after,) = await env.participants(cid)
    assert (after["status"], after["reply_intent"]) == ("replied", "unsubscribe")
    stats = await env.api("GET", f"/api/campaigns/{cid}/stats")
    assert stats["repliesByIntent"] == {"unsubscribe": 1}
    (page,) = await env.api("GET", f"/api/campaigns/{cid}/participants")
    assert page["reply_intent"] == "unsubscribe" and page["waiting"] is None
    by_intent = f"/api/campaigns/{cid}/participants?replyIntent="
    assert [p["participant_id"] for p in await env.api("GET", by_intent + "unsubscribe")] == [
        page["participant_id"]
    ]
    assert await env.api("GET", by_intent + "interested") == []
    assert (await env.client.get(by_intent + "maybe", headers=org.headers())).status_code == 400
    announced = await store.fetch(
        "SELECT envelope FROM campaign_outbox WHERE event_type = 'campaign.participant.replied'"
    )
    assert len(announced) == 1
    payload = announced[0]["envelope"]
    payload = json.loads(payload) if isinstance(payload, str) else payload
    assert payload["data"]["intent"] == "unsubscribe" and payload["data"]["participantId"] == str(row["id"])

    url = f"/api/campaigns/{cid}/participants/{row['id']}"
    response = await env.client.patch(
        url, json={"replyIntent": "not_interested"}, headers=org.headers("viewer")
    )
    assert response.status_code == 403
    response = await env.client.patch(url, json={"replyIntent": "maybe"}, headers=org.headers())
    assert response.status_code == 400
    corrected = await env.api("PATCH", url, {"replyIntent": "not_interested"})
    assert corrected["replyIntent"] == "not_interested" and corrected["status"] == "replied"
    # A later reply does not overwrite a person's reading.
    await _message(env, row, account, content="Actually, interested, call me")
    (kept,) = await env.participants(cid)
    assert kept["reply_intent"] == "not_interested"
    missing = await env.client.patch(
        f"/api/campaigns/{cid}/participants/{uuid.uuid4()}",
        json={"replyIntent": "question"},
        headers=org.headers(),
    )
    assert missing.status_code == 404
