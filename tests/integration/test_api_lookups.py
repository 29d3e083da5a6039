"""Lookup endpoints over the real app and database (original-v1 §2.2, §2.4)."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

from tests.factories import make_org

AGENT_KEYS = {
    "id",
    "displayName",
    "floodWaitUntil",
    "floodWaitSeconds",
    "floodReason",
    "floodLastAt",
    "spamRestrictedAt",
    "spamRestrictionSource",
    "peerFloodCount1h",
    "photoFileId",
    "isActive",
    "connectionState",
    "firstName",
    "lastName",
    "username",
    "phoneNumber",
    "telegramId",
    "sentToday",
}
PICKER_KEYS = {
    "id",
    "first_name",
    "last_name",
    "display_name",
    "username",
    "telegram_id",
    "email",
    "phone",
    "outreach_status",
}


async def _campaign(client, org, name: str = "Outreach") -> str:
    response = await client.post("/api/campaigns", json={"name": name}, headers=org.headers())
    return (await response.get_json())["id"]


async def _participant(store, campaign_id, contact_id, status: str = "pending") -> uuid.UUID:
    return await store.fetchval(
        "INSERT INTO campaign_participants (campaign_id, contact_id, status) VALUES ($1, $2, $3) RETURNING id",
        uuid.UUID(str(campaign_id)),
        contact_id,
        status,
    )


async def _send(store, participant, account, at: dt.datetime, status: str = "sent", step: int = 0) -> None:
    await store.execute(
        "INSERT INTO campaign_sends (campaign_participant_id, sequence_step, bd_account_id, sent_at, status) "
        "VALUES ($1, $2, $3, $4, $5)",
        participant,
        step,
        account,
        at,
        status,
    )


def _midnight(zone: str) -> dt.datetime:
    tz = zoneinfo.ZoneInfo(zone)
    today = dt.datetime.now(tz).date()
    return dt.datetime.combine(today, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


async def test_agents__shape_scope_and_sends_since_local_midnight(client, org, store):
    agent = await org.user("bidi")
    far_east = await org.bd_account(
        display_name="B East", timezone="Pacific/Kiritimati", created_by_user_id=agent
    )
    utc = await org.bd_account(display_name=None, phone_number="+100", timezone="Not/AZone")
    await org.bd_account(display_name="Z Off", is_active=False)
    other = await make_org(store, "Other")
    await other.bd_account(display_name="Theirs")

    cid = await _campaign(client, org)
    contacts = await org.contacts(3)
    parts = [await _participant(store, cid, c) for c in contacts]
    east_midnight = _midnight("Pacific/Kiritimati")
    await _send(store, parts[0], far_east, east_midnight + dt.timedelta(minutes=1))
    await _send(store, parts[0], far_east, east_midnight - dt.timedelta(minutes=1), step=1)  # yesterday there
    await _send(store, parts[1], far_east, east_midnight + dt.timedelta(minutes=2), status="failed")
    utc_midnight = _midnight("UTC")
    await _send(store, parts[1], utc, utc_midnight + dt.timedelta(seconds=1), step=1)
    await _send(store, parts[2], utc, utc_midnight + dt.timedelta(seconds=2))
    await _send(store, parts[2], utc, utc_midnight - dt.timedelta(seconds=1), step=1)

    response = await client.get("/api/campaigns/agents", headers=org.headers())
    agents = await response.get_json()
    assert response.status_code == 200
    assert [a["displayName"] for a in agents] == [
        "B East",
        "+100",
    ]  # display_name NULLS LAST, inactive hidden
    assert all(set(a) == AGENT_KEYS for a in agents)
    assert [a["sentToday"] for a in agents] == [1, 2]
    assert agents[0]["id"] == str(far_east) and agents[0]["isActive"] is True
    assert agents[0]["connectionState"] == "connected" and agents[0]["peerFloodCount1h"] == 0

    assert await (await client.get("/api/campaigns/agents", headers=org.headers("viewer"))).get_json() == []
    mine = await (await client.get("/api/campaigns/agents", headers=org.headers("bidi", agent))).get_json()
    assert [a["id"] for a in mine] == [str(far_east)]
    assert (await client.get("/api/campaigns/agents")).status_code == 401


async def test_group_sources_and_their_contacts(client, org, store):
    account = await org.bd_account(display_name="Sales 1")
    inactive = await org.bd_account(is_active=False)
    other = await make_org(store, "Other")
    foreign = await other.bd_account()
    for acc, chat, title, peer in [
        (account, "-100200", "B group", "chat"),
        (account, "-100100", "A channel", "channel"),
        (account, "555", "A person", "user"),
        (inactive, "-100300", "Inactive", "chat"),
        (foreign, "-100400", "Theirs", "chat"),
    ]:
        await store.execute(
            "INSERT INTO bd_account_sync_chats (bd_account_id, telegram_chat_id, title, peer_type) VALUES ($1, $2, $3, $4)",
            acc,
            chat,
            title,
            peer,
        )
    sources = await (await client.get("/api/campaigns/group-sources", headers=org.headers())).get_json()
    assert [s["title"] for s in sources] == ["A channel", "B group"]
    assert set(sources[0]) == {
        "id",
        "bd_account_id",
        "telegram_chat_id",
        "title",
        "peer_type",
        "account_name",
    }
    assert sources[0]["bd_account_id"] == str(account) and sources[0]["account_name"] == "Sales 1"
    assert sources[0]["peer_type"] == "channel" and sources[0]["telegram_chat_id"] == "-100100"

    alive, gone = await org.contacts(2)
    await store.execute("UPDATE contacts SET deleted_at = now() WHERE id = $1", gone)
    foreign_contact = (await other.contacts(1))[0]
    for org_id, contact in [
        (org.id, alive),
        (org.id, alive),
        (org.id, gone),
        (org.id, None),
        (other.id, foreign_contact),
    ]:
        await store.execute(
            "INSERT INTO messages (organization_id, contact_id, bd_account_id, channel, channel_id, direction, content) "
            "VALUES ($1, $2, $3, 'telegram', '-100200', 'inbound', 'hi')",
            org_id,
            contact,
            account,
        )
    url = "/api/campaigns/group-sources/contacts"
    response = await client.get(f"{url}?bdAccountId={account}&telegramChatId=-100200", headers=org.headers())
    assert await response.get_json() == {"contactIds": [str(alive)]}

    for query, paths in [
        ("", {"bdAccountId", "telegramChatId"}),
        (f"?bdAccountId={account}", {"telegramChatId"}),
        ("?bdAccountId=nope&telegramChatId=1", {"bdAccountId"}),
        (f"?bdAccountId={account}&telegramChatId=" + "9" * 256, {"telegramChatId"}),
    ]:
        response = await client.get(url + query, headers=org.headers())
        payload = await response.get_json()
        assert response.status_code == 400 and payload["code"] == "VALIDATION", query
        assert {d["path"] for d in payload["details"]} == paths
    response = await client.get(f"{url}?bdAccountId={foreign}&telegramChatId=-100400", headers=org.headers())
    assert response.status_code == 404
    assert await response.get_json() == {"error": "Account not found", "code": "NOT_FOUND"}


async def test_telegram_sources__keywords_and_groups(client, org, store):
    account = await org.bd_account()
    other = await make_org(store, "Other")
    a, b, c = await org.contacts(3)
    (theirs,) = await other.contacts(1)
    for org_id, contact, chat, title, keyword in [
        (org.id, a, "-1", None, "crypto"),
        (org.id, b, "-1", "Traders", "  "),
        (org.id, c, "-2", None, "ai"),
        (org.id, a, "-3", "Alpha", "crypto"),
        (other.id, theirs, "-9", "Secret", "secret"),
    ]:
        await store.execute(
            "INSERT INTO contact_telegram_sources (organization_id, contact_id, bd_account_id, telegram_chat_id, "
            "telegram_chat_title, search_keyword) VALUES ($1, $2, $3, $4, $5, $6)",
            org_id,
            contact,
            account if org_id == org.id else None,
            chat,
            title,
            keyword,
        )
    keywords = await (
        await client.get("/api/campaigns/telegram-source-keywords", headers=org.headers())
    ).get_json()
    assert keywords == ["ai", "crypto"]
    groups = await (
        await client.get("/api/campaigns/telegram-source-groups", headers=org.headers())
    ).get_json()
    assert groups == [
        {"bdAccountId": str(account), "telegramChatId": "-3", "telegramChatTitle": "Alpha"},
        {"bdAccountId": str(account), "telegramChatId": "-1", "telegramChatTitle": "Traders"},
        {"bdAccountId": str(account), "telegramChatId": "-2"},
    ]


async def test_contacts_for_picker__filters_and_fixed_defects(client, org, store):
    account = await org.bd_account()
    ann = await org.contact(first_name="Ann", telegram_id="101", email="ann@x.test")
    bob = await org.contact(first_name="Bob", username="bob_user")  # username only: included now
    await org.contact(first_name="Cid")  # neither telegram id nor username
    gone = await org.contact(first_name="Dan", telegram_id="104")
    await store.execute("UPDATE contacts SET deleted_at = now() WHERE id = $1", gone)
    pct = await org.contact(first_name="Eve", last_name="100% sure", telegram_id="105")
    under = await org.contact(first_name="Fay", last_name="a_b", telegram_id="106")
    slash = await org.contact(first_name="Gil", last_name="back\\slash", telegram_id="107")
    other = await make_org(store, "Other")
    await other.contact(first_name="Ann", telegram_id="101")

    cid = await _campaign(client, org)
    await _participant(store, cid, ann)
    deleted_cid = await _campaign(client, org, "Old")
    await _participant(store, deleted_cid, bob)
    await store.execute("UPDATE campaigns SET deleted_at = now() WHERE id = $1", uuid.UUID(deleted_cid))
    await store.execute(
        "INSERT INTO contact_telegram_sources (organization_id, contact_id, bd_account_id, telegram_chat_id, search_keyword) "
        "VALUES ($1, $2, $3, '-1', 'crypto')",
        org.id,
        under,
        account,
    )

    async def pick(query: str = "") -> list[dict]:
        response = await client.get(f"/api/campaigns/contacts-for-picker{query}", headers=org.headers())
        assert response.status_code == 200, await response.get_data()
        return await response.get_json()

    everyone = await pick()
    assert [c["first_name"] for c in everyone] == ["Ann", "Bob", "Eve", "Fay", "Gil"]
    assert set(everyone[0]) == PICKER_KEYS
    assert {c["first_name"]: c["outreach_status"] for c in everyone}["Ann"] == "in_outreach"
    assert {c["first_name"]: c["outreach_status"] for c in everyone}["Bob"] == "new"  # deleted campaign
    assert [c["first_name"] for c in await pick("?outreachStatus=in_outreach")] == ["Ann"]
    assert len(await pick("?outreachStatus=new")) == 4
    assert [c["id"] for c in await pick("?search=%25")] == [str(pct)]
    assert [c["id"] for c in await pick("?search=a_b")] == [str(under)]
    assert [c["id"] for c in await pick("?search=k%5Cs")] == [str(slash)]
    assert [c["id"] for c in await pick("?search=ANN%40X")] == [str(ann)]
    assert [c["id"] for c in await pick("?sourceKeyword=crypto")] == [str(under)]
    assert [c["id"] for c in await pick(f"?sourceTelegramChatId=-1&sourceBdAccountId={account}")] == [
        str(under)
    ]
    assert await pick(f"?sourceTelegramChatId=-1&sourceBdAccountId={uuid.uuid4()}") == []
    assert len(await pick("?limit=2")) == 2
    assert len(await pick("?limit=5000")) == 5  # lowered to the maximum
    for query in (
        "?limit=0",
        "?limit=abc",
        "?outreachStatus=maybe",
        "?sourceBdAccountId=x",
        "?search=" + "s" * 256,
    ):
        response = await client.get(f"/api/campaigns/contacts-for-picker{query}", headers=org.headers())
        assert response.status_code == 400, query
        assert (await response.get_json())["code"] == "VALIDATION"


async def test_audience_conflicts__participations_in_live_campaigns(client, org, store):
    ann = await org.contact(first_name="Ann", last_name="Lee", username="ann")
    bob = await org.contact(first_name="Bob", display_name="Bobby")
    account = await org.bd_account()
    current = await _campaign(client, org, "B current")
    earlier = await _campaign(client, org, "A earlier")
    deleted = await _campaign(client, org, "C deleted")
    part = await _participant(store, earlier, ann, "sent")
    sent_at = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
    await _send(store, part, account, sent_at)
    await _send(store, part, account, sent_at + dt.timedelta(days=1), status="failed", step=1)
    await _participant(store, current, ann)
    await _participant(store, current, bob)
    await _participant(store, deleted, bob)
    await store.execute("UPDATE campaigns SET deleted_at = now() WHERE id = $1", uuid.UUID(deleted))
    other = await make_org(store, "Other")
    (foreign,) = await other.contacts(1)

    url = f"/api/campaigns/{current}/audience/conflicts"
    response = await client.post(
        url, json={"contactIds": [str(ann), str(bob)]}, headers=org.headers("viewer")
    )
    body = await response.get_json()
    assert response.status_code == 200
    rows = sorted(body["conflicts"], key=lambda r: (r["contact_id"] != str(ann), r["campaign_name"]))
    assert rows == [
        {
            "contact_id": str(ann),
            "campaign_id": earlier,
            "campaign_name": "A earlier",
            "participant_status": "sent",
            "last_sent_at": "2026-03-01T10:00:00.000Z",
            "is_current_campaign": False,
            "contact_name": "Ann Lee",
            "contact_username": "ann",
        },
        {
            "contact_id": str(ann),
            "campaign_id": current,
            "campaign_name": "B current",
            "participant_status": "pending",
            "last_sent_at": None,
            "is_current_campaign": True,
            "contact_name": "Ann Lee",
            "contact_username": "ann",
        },
        {
            "contact_id": str(bob),
            "campaign_id": current,
            "campaign_name": "B current",
            "participant_status": "pending",
            "last_sent_at": None,
            "is_current_campaign": True,
            "contact_name": "Bobby",
            "contact_username": None,
        },
    ]

    response = await client.post(url, json={"contactIds": [str(ann), str(foreign)]}, headers=org.headers())
    payload = await response.get_json()
    assert response.status_code == 400 and payload["code"] == "VALIDATION"
    assert payload["details"] == [
        {"path": "contactIds.1", "message": "contact not found in this organization"}
    ]
    for body in ({"contactIds": []}, {"contactIds": ["x"]}, {"contactIds": [str(uuid.uuid4())] * 5001}, {}):
        assert (await client.post(url, json=body, headers=org.headers())).status_code == 400
    for path in (
        f"/api/campaigns/{deleted}/audience/conflicts",
        f"/api/campaigns/{uuid.uuid4()}/audience/conflicts",
    ):
        assert (
            await client.post(path, json={"contactIds": [str(ann)]}, headers=org.headers())
        ).status_code == 404
    response = await client.post(url, json={"contactIds": [str(foreign)]}, headers=other.headers())
    assert response.status_code == 404  # their contact, my campaign
