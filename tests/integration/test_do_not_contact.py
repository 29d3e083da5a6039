"""The organization's do-not-contact list over the real app and database: the API, enrolment leaving
listed contacts out, and a reply read as "unsubscribe" stopping another campaign's pending follow-up in
its claim."""

from __future__ import annotations

import json
import uuid

import trio

from campaignsvc.integrations.events import parse_event
from tests.factories import make_org
from tests.integration.dispatch_helpers import reply_event, start_env

URL = "/api/campaigns/do-not-contact"


async def test_api__add_list_search_delete_and_tenancy(client, org, store):
    contact = (await org.contacts(1, username="anna_k"))[0]
    headers = org.headers()
    body = {"contactIds": [str(contact)], "telegramIds": ["12345678"], "usernames": ["@Boris_B"]}
    response = await client.post(URL, json=body, headers=headers)
    assert (response.status_code, await response.get_json()) == (200, {"added": 3})
    response = await client.post(URL, json=body, headers=headers)
    assert await response.get_json() == {"added": 0}

    page = await (await client.get(URL, headers=headers)).get_json()
    assert page["total"] == 3
    by_value = {(e["contactId"], e["telegramId"], e["username"]): e for e in page["data"]}
    assert (None, None, "boris_b") in by_value and (None, "12345678", None) in by_value
    mine = next(e for e in page["data"] if e["contactId"] == str(contact))
    assert mine["username"] == "anna_k" and mine["contactName"] and mine["reason"] == "manual"
    assert mine["addedByUserId"] is not None
    found = await (await client.get(URL, query_string={"q": "bori"}, headers=headers)).get_json()
    assert [e["username"] for e in found["data"]] == ["boris_b"] and found["total"] == 1

    viewer = await client.post(URL, json={"usernames": ["someone"]}, headers=org.headers("viewer"))
    assert viewer.status_code == 403
    for bad in ({}, {"usernames": ["no spaces allowed"]}, {"telegramIds": ["12ab"]}, {"reason": "manual"}):
        assert (await client.post(URL, json=bad, headers=headers)).status_code == 400, bad

    other = await make_org(store, "Other Org")
    theirs = await (await client.get(URL, headers=other.headers())).get_json()
    assert theirs == {"data": [], "total": 0}
    foreign = await client.post(URL, json={"contactIds": [str(contact)]}, headers=other.headers())
    assert foreign.status_code == 400 and "contactIds.0" in json.dumps(await foreign.get_json())
    assert (await client.delete(f"{URL}/{mine['id']}", headers=other.headers())).status_code == 404

    assert (await client.delete(f"{URL}/{mine['id']}", headers=headers)).status_code == 204
    assert (await client.delete(f"{URL}/{mine['id']}", headers=headers)).status_code == 404
    assert (await (await client.get(URL, headers=headers)).get_json())["total"] == 2


async def test_enrolment__leaves_listed_contacts_out(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    contacts = await org.contacts(3)
    listed_tg = await store.fetchval("SELECT telegram_id FROM contacts WHERE id = $1", contacts[1])
    await env.api("POST", URL, {"telegramIds": [listed_tg]})
    cid = await env.campaign(accounts=[account], contacts=contacts, steps=[{}])
    rows = await env.participants(cid)
    assert {r["contact_id"] for r in rows} == {contacts[0], contacts[2]}
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    assert len(env.sandbox.state.messages) == 2


async def test_unsubscribe_reply__stops_another_campaigns_pending_follow_up_in_its_claim(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    first = await env.campaign(accounts=[account], contacts=[contact], steps=[{}, {"delayHours": 1}])
    second = await env.campaign(accounts=[account], contacts=[contact], steps=[{"delayHours": 1}])
    await env.api("POST", f"/api/campaigns/{first}/start")
    await env.api("POST", f"/api/campaigns/{second}/start")
    await env.wait_sent(1)
    (row,) = await env.participants(first)
    with trio.fail_after(10):
        while (row := (await env.participants(first))[0])["last_sent_at"] is None:
            await trio.sleep(0.05)
    envelope = reply_event(org, contact_id=contact, account_id=account, channel_id=row["channel_id"])
    envelope["data"]["content"] = "Отпишите меня, пожалуйста"
    await env.services.inbound.handle(parse_event(json.dumps(envelope)))
    entry = await store.fetchrow("SELECT * FROM campaign_do_not_contact WHERE contact_id = $1", contact)
    assert entry["reason"] == "reply_unsubscribe" and entry["source_campaign_id"] == uuid.UUID(first)

    # The other campaign's step comes due: its claim finds the contact on the list and sends nothing.
    await store.execute(
        "UPDATE campaign_participants SET next_send_at = now() WHERE campaign_id = $1", uuid.UUID(second)
    )
    env.supervisor.campaigns[uuid.UUID(second)].actor.wake()
    await env.wait_status(second, "completed")
    (other,) = await env.participants(second)
    assert (other["status"], other["last_error"]) == ("stopped", "On the organization's do-not-contact list")
    assert len(env.sandbox.state.messages) == 1


async def test_a_user_who_blocked_the_account__is_put_on_the_list_and_nobody_writes_again(
    nursery, store, org
):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    env.sandbox.state.update_config({"recipient_errors": {str(contact): "blocked"}})
    first = await env.campaign(accounts=[account], contacts=[contact], steps=[{}])
    await env.api("POST", f"/api/campaigns/{first}/start")
    await env.wait_status(first, "completed")
    (row,) = await env.participants(first)
    assert row["status"] == "failed" and "USER_IS_BLOCKED" in row["last_error"]
    entry = await store.fetchrow("SELECT * FROM campaign_do_not_contact WHERE contact_id = $1", contact)
    assert (entry["reason"], entry["source_campaign_id"]) == ("blocked_by_user", uuid.UUID(first))
    # Another campaign leaves them out from its start.
    env.sandbox.state.update_config({"recipient_errors": {}})
    second = await env.campaign(accounts=[account], contacts=[contact], steps=[{}])
    assert await env.participants(second) == []
