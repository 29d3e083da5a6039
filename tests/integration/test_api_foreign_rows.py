"""Rows written by the original service may point at another organization's contacts, templates or
conversations (its §7 allowed it). Every join carries the organization, so the detail never shows them."""

from __future__ import annotations

import uuid

from tests.factories import make_org


async def test_detail__foreign_templates_steps_contacts_and_conversations_are_not_shown(client, org, store):
    other = await make_org(store, "Other")
    response = await client.post("/api/campaigns", json={"name": "legacy"}, headers=org.headers())
    cid = uuid.UUID((await response.get_json())["id"])
    own_tpl = await store.fetchval(
        "INSERT INTO campaign_templates (organization_id, campaign_id, name, channel, content) "
        "VALUES ($1, $2, 'mine', 'telegram', 'Hi') RETURNING id",
        org.id,
        cid,
    )
    foreign_tpl = await store.fetchval(
        "INSERT INTO campaign_templates (organization_id, campaign_id, name, channel, content) "
        "VALUES ($1, $2, 'theirs', 'telegram', 'secret text') RETURNING id",
        other.id,
        cid,
    )
    for index, tpl in enumerate((own_tpl, foreign_tpl)):
        await store.execute(
            "INSERT INTO campaign_sequences (campaign_id, order_index, template_id) VALUES ($1, $2, $3)",
            cid,
            index,
            tpl,
        )
    (mine,) = await org.contacts(1)
    (theirs,) = await other.contacts(1)
    for contact in (mine, theirs):
        await store.execute(
            "INSERT INTO campaign_participants (campaign_id, contact_id, status) VALUES ($1, $2, 'pending')",
            cid,
            contact,
        )
    await store.execute(
        "INSERT INTO conversations (organization_id, bd_account_id, channel_id, contact_id, campaign_id, won_at, "
        "revenue_amount) VALUES ($1, $2, '1', $3, $4, now(), 99)",
        other.id,
        await other.bd_account(),
        theirs,
        cid,
    )

    response = await client.get(f"/api/campaigns/{cid}", headers=org.headers())
    detail = await response.get_json()
    assert response.status_code == 200, detail
    assert [t["id"] for t in detail["templates"]] == [str(own_tpl)]
    assert [s["template_id"] for s in detail["sequences"]] == [str(own_tpl)]
    assert [c["id"] for c in detail["selected_contacts"]] == [str(mine)]
    assert (detail["total_won"], detail["total_revenue"]) == (0, 0)
    listed = await (await client.get("/api/campaigns", headers=org.headers())).get_json()
    assert listed["summary"]["total_won"] == 0 and listed["data"][0]["total_won"] == 0

    response = await client.post(f"/api/campaigns/{cid}/duplicate", headers=org.headers())
    copy = uuid.UUID((await response.get_json())["id"])
    assert response.status_code == 201
    copied = await store.fetch("SELECT name FROM campaign_templates WHERE campaign_id = $1", copy)
    assert [r["name"] for r in copied] == ["mine"]
    assert await store.fetchval("SELECT count(*) FROM campaign_sequences WHERE campaign_id = $1", copy) == 1
    participants = await store.fetch(
        "SELECT contact_id FROM campaign_participants WHERE campaign_id = $1", copy
    )
    assert [r["contact_id"] for r in participants] == [mine]
