"""Campaign CRUD over the real app and database (original-v1 §2.3)."""

from __future__ import annotations

import uuid

from tests.factories import make_org


async def _create(client, org, **body):
    body.setdefault("name", "Q1 outreach")
    response = await client.post("/api/campaigns", json=body, headers=org.headers())
    assert response.status_code == 201, await response.get_data()
    return await response.get_json()


async def test_create__returns_the_draft_row_and_writes_campaign_created(client, org, store):
    account = await org.bd_account(display_name="Sales 1")
    row = await _create(
        client, org, name="  Spring  ", targetAudience={"bdAccountIds": [str(account)], "custom": 1}
    )
    assert row["name"] == "Spring"
    assert row["status"] == "draft"
    assert row["organization_id"] == str(org.id)
    assert row["created_by_user_id"] == str(org.owner_id)
    assert row["target_audience"] == {"bdAccountIds": [str(account)], "custom": 1}
    assert row["schedule"] is None
    assert row["created_at"].endswith("Z") and len(row["created_at"]) == 24
    events = await store.fetch("SELECT event_type, envelope FROM campaign_outbox")
    assert [e["event_type"] for e in events] == ["campaign.created"]
    assert events[0]["envelope"]["data"] == {"campaignId": row["id"]}


async def test_list__pagination_kpis_summary_and_accounts(client, org):
    account = await org.bd_account(display_name="  ", first_name="Ivan", last_name="P")
    for i in range(3):
        await _create(client, org, name=f"c{i}", targetAudience={"bdAccountId": str(account)})
    response = await client.get("/api/campaigns?limit=2&page=2", headers=org.headers())
    body = await response.get_json()
    assert response.status_code == 200
    assert (body["total"], body["page"], body["limit"]) == (3, 2, 2)
    assert [c["name"] for c in body["data"]] == ["c0"]
    item = body["data"][0]
    assert item["total_participants"] == 0 and item["total_revenue"] == 0
    assert item["owner_name"] == "Olga Owner"
    assert item["bd_account_name"] == "Ivan P"
    assert item["bd_accounts"][0]["displayName"] == "Ivan P"
    assert body["summary"] == {"total_sent": 0, "total_replied": 0, "total_won": 0}


async def test_list__viewer_sees_no_accounts_and_agent_sees_own(client, org):
    agent = await org.user("bidi")
    mine = await org.bd_account(created_by_user_id=agent)
    other = await org.bd_account()
    await _create(client, org, targetAudience={"bdAccountIds": [str(other), str(mine)]})
    viewer = await (await client.get("/api/campaigns", headers=org.headers("viewer"))).get_json()
    assert viewer["data"][0]["bd_accounts"] == []
    as_agent = await (await client.get("/api/campaigns", headers=org.headers("bidi", agent))).get_json()
    assert [a["id"] for a in as_agent["data"][0]["bd_accounts"]] == [str(mine)]


async def test_detail__templates_sequences_and_counts(client, org):
    row = await _create(client, org)
    response = await client.get(f"/api/campaigns/{row['id']}", headers=org.headers())
    detail = await response.get_json()
    assert response.status_code == 200
    assert detail["templates"] == [] and detail["sequences"] == []
    assert detail["total_participants"] == 0
    assert "selected_contacts" not in detail


async def test_identity__missing_or_bad_headers_are_401(client, org):
    assert (await client.get("/api/campaigns")).status_code == 401
    bad = {"X-Organization-Id": "nope"}
    response = await client.get("/api/campaigns", headers=bad)
    assert response.status_code == 401
    assert (await response.get_json())["code"] == "UNAUTHORIZED"
    assert (
        await client.get("/api/campaigns", headers={**org.headers(), "X-User-Role": "god"})
    ).status_code == 401


async def test_identity__viewer_cannot_write(client, org):
    response = await client.post("/api/campaigns", json={"name": "x"}, headers=org.headers("viewer"))
    assert response.status_code == 403
    assert (await response.get_json())["code"] == "FORBIDDEN"


async def test_validation__bad_path_uuid_and_body_fields_are_400(client, org):
    response = await client.get("/api/campaigns/not-a-uuid", headers=org.headers())
    assert response.status_code == 400
    assert await response.get_json() == {
        "error": "Validation failed",
        "code": "VALIDATION",
        "details": [{"path": "id", "message": "must be a UUID"}],
    }
    response = await client.post(
        "/api/campaigns",
        json={"name": "x" * 256, "targetAudience": {"sendDelayMinSeconds": 10, "sendDelayMaxSeconds": 5}},
        headers=org.headers(),
    )
    body = await response.get_json()
    assert response.status_code == 400
    assert {d["path"] for d in body["details"]} == {"name", "targetAudience"}
    response = await client.get("/api/campaigns?page=abc", headers=org.headers())
    assert response.status_code == 400
    response = await client.post("/api/campaigns", data=b"{not json", headers=org.headers())
    assert response.status_code == 400


async def test_tenancy__other_organizations_campaign_is_404_everywhere(client, org, store):
    row = await _create(client, org)
    other = await make_org(store, "Other")
    cid = row["id"]
    for method, path in [
        ("GET", f"/api/campaigns/{cid}"),
        ("PATCH", f"/api/campaigns/{cid}"),
        ("DELETE", f"/api/campaigns/{cid}"),
        ("POST", f"/api/campaigns/{cid}/duplicate"),
        ("POST", f"/api/campaigns/{cid}/reset-progress"),
        ("POST", f"/api/campaigns/{cid}/pause"),
        ("POST", f"/api/campaigns/{cid}/stop"),
    ]:
        response = await client.open(path, method=method, json={"name": "hijack"}, headers=other.headers())
        assert response.status_code == 404, (method, path)
    still = await store.fetchval("SELECT name FROM campaigns WHERE id = $1", uuid.UUID(cid))
    assert still == "Q1 outreach"


async def test_tenancy__foreign_ids_in_the_body_are_rejected(client, org, store):
    other = await make_org(store, "Other")
    foreign_account = await other.bd_account()
    foreign_company = await other.company()
    response = await client.post(
        "/api/campaigns",
        json={
            "name": "x",
            "companyId": str(foreign_company),
            "targetAudience": {"bdAccountIds": [str(foreign_account)]},
        },
        headers=org.headers(),
    )
    body = await response.get_json()
    assert response.status_code == 400
    assert {d["path"] for d in body["details"]} == {"companyId", "targetAudience.bdAccountIds.0"}


async def test_patch__rename_any_status_edit_only_draft_or_paused(client, org, store):
    row = await _create(client, org)
    cid = row["id"]
    renamed = await client.patch(f"/api/campaigns/{cid}", json={"name": "New"}, headers=org.headers())
    assert (await renamed.get_json())["name"] == "New"
    await store.execute("UPDATE campaigns SET status = 'active' WHERE id = $1", uuid.UUID(cid))
    renamed = await client.patch(f"/api/campaigns/{cid}", json={"name": "Newer"}, headers=org.headers())
    assert renamed.status_code == 200
    edit = await client.patch(
        f"/api/campaigns/{cid}", json={"schedule": None, "name": "x"}, headers=org.headers()
    )
    assert edit.status_code == 400
    assert (await edit.get_json())["error"] == "Only draft or paused campaigns can be updated"


async def test_patch__rename_needs_lifecycle_permission(client, org):
    row = await _create(client, org)
    agent = await org.user("bidi")
    response = await client.patch(
        f"/api/campaigns/{row['id']}", json={"name": "mine"}, headers=org.headers("bidi", agent)
    )
    assert response.status_code == 403


async def test_patch__status_completed_stops_active_and_paused(client, org, store):
    row = await _create(client, org)
    cid = uuid.UUID(row["id"])
    await store.execute("UPDATE campaigns SET status = 'paused' WHERE id = $1", cid)
    response = await client.patch(
        f"/api/campaigns/{cid}", json={"status": "completed"}, headers=org.headers()
    )
    assert (await response.get_json())["status"] == "completed"
    types = [
        r["event_type"] for r in await store.fetch("SELECT event_type FROM campaign_outbox ORDER BY seq")
    ]
    assert types == ["campaign.created", "campaign.completed"]


async def test_delete__soft_and_invisible_afterwards(client, org, store):
    row = await _create(client, org)
    cid = row["id"]
    response = await client.delete(f"/api/campaigns/{cid}", headers=org.headers())
    assert response.status_code == 204
    assert (await client.get(f"/api/campaigns/{cid}", headers=org.headers())).status_code == 404
    listing = await (await client.get("/api/campaigns", headers=org.headers())).get_json()
    assert listing["total"] == 0
    assert await store.fetchval("SELECT deleted_at IS NOT NULL FROM campaigns WHERE id = $1", uuid.UUID(cid))


async def test_delete__active_campaign_is_refused(client, org, store):
    row = await _create(client, org)
    await store.execute("UPDATE campaigns SET status = 'active' WHERE id = $1", uuid.UUID(row["id"]))
    response = await client.delete(f"/api/campaigns/{row['id']}", headers=org.headers())
    assert response.status_code == 400


async def test_duplicate__copies_templates_steps_and_audience_as_draft(client, org, store):
    row = await _create(client, org, targetAudience={"limit": 5})
    cid = uuid.UUID(row["id"])
    tpl = await store.fetchval(
        "INSERT INTO campaign_templates (organization_id, campaign_id, name, channel, content) "
        "VALUES ($1, $2, 't', 'telegram', 'Hi') RETURNING id",
        org.id,
        cid,
    )
    await store.execute(
        "INSERT INTO campaign_sequences (campaign_id, order_index, template_id, delay_hours) VALUES ($1, 0, $2, 0)",
        cid,
        tpl,
    )
    contact = await org.contact()
    await store.execute(
        "INSERT INTO campaign_participants (campaign_id, contact_id) VALUES ($1, $2)", cid, contact
    )
    response = await client.post(f"/api/campaigns/{cid}/duplicate", headers=org.headers())
    copy = await response.get_json()
    assert response.status_code == 201
    assert copy["name"] == "Copy of Q1 outreach" and copy["status"] == "draft"
    detail = await (await client.get(f"/api/campaigns/{copy['id']}", headers=org.headers())).get_json()
    assert [t["content"] for t in detail["templates"]] == ["Hi"]
    assert detail["sequences"][0]["template_id"] == detail["templates"][0]["id"]
    assert [c["id"] for c in detail["selected_contacts"]] == [str(contact)]


async def test_openapi__document_lists_the_endpoints(client):
    response = await client.get("/openapi.json")
    doc = await response.get_json()
    assert response.status_code == 200
    assert doc["openapi"] == "3.1.0"
    assert {"get", "post"} <= set(doc["paths"]["/api/campaigns"])
    assert "CampaignRow" in doc["components"]["schemas"]
