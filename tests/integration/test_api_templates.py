"""Templates and presets over the real app and database (original-v1 §2.4 presets, §2.5; SPEC R-SEQ-5)."""

from __future__ import annotations

import uuid

from tests.factories import make_org

TEMPLATE_KEYS = {
    "id",
    "organization_id",
    "campaign_id",
    "name",
    "channel",
    "content",
    "conditions",
    "created_at",
    "updated_at",
    "media_url",
    "media_type",
    "media_metadata",
    "variant_group",
    "variant_weight",
}


async def _campaign(client, org, status: str | None = None) -> str:
    response = await client.post("/api/campaigns", json={"name": "Outreach"}, headers=org.headers())
    assert response.status_code == 201
    cid = (await response.get_json())["id"]
    if status:
        await org.store.execute("UPDATE campaigns SET status = $2 WHERE id = $1", uuid.UUID(cid), status)
    return cid


async def _template(client, org, cid: str, **body) -> dict:
    body = {"name": "Intro", "channel": "telegram", "content": "Hi {{contact.first_name|there}}", **body}
    response = await client.post(f"/api/campaigns/{cid}/templates", json=body, headers=org.headers())
    assert response.status_code == 201, await response.get_data()
    return await response.get_json()


async def test_create_list_patch__rows_as_the_original(client, org):
    cid = await _campaign(client, org)
    first = await _template(client, org, cid, name="  Intro  ", conditions={"kept": True})
    assert set(first) == TEMPLATE_KEYS
    assert first["name"] == "Intro" and first["channel"] == "telegram"
    assert first["campaign_id"] == cid and first["organization_id"] == str(org.id)
    assert first["conditions"] == {"kept": True} and first["variant_weight"] == 100
    assert first["created_at"].endswith("Z")
    second = await _template(client, org, cid, name="Follow-up", content="")  # empty content is allowed
    assert second["conditions"] == {}

    listing = await client.get(f"/api/campaigns/{cid}/templates", headers=org.headers())
    assert listing.status_code == 200
    assert [t["id"] for t in await listing.get_json()] == [first["id"], second["id"]]

    path = f"/api/campaigns/{cid}/templates/{first['id']}"
    patched = await client.patch(
        path, json={"content": "{Hi|Hello} {{company.name|}}"}, headers=org.headers()
    )
    body = await patched.get_json()
    assert patched.status_code == 200
    assert body["content"] == "{Hi|Hello} {{company.name|}}" and body["name"] == "Intro"
    assert body["updated_at"] >= first["updated_at"]
    unchanged = await client.patch(path, json={}, headers=org.headers())
    assert (await unchanged.get_json()) == body


async def test_validation__lengths_placeholders_and_nulls(client, org):
    cid = await _campaign(client, org)
    url = f"/api/campaigns/{cid}/templates"
    cases = [
        ({"name": "x" * 256, "channel": "telegram", "content": "Hi"}, "name"),
        ({"name": "   ", "channel": "telegram", "content": "Hi"}, "name"),
        ({"name": "n", "channel": "t" * 51, "content": "Hi"}, "channel"),
        ({"name": "n", "content": "Hi"}, "channel"),
        ({"name": "n", "channel": "telegram", "content": "x" * 50_001}, "content"),
        ({"name": "n", "channel": "telegram", "content": 5}, "content"),
        ({"name": "n", "channel": "telegram", "content": "Hi", "conditions": []}, "conditions"),
    ]
    for body, field in cases:
        response = await client.post(url, json=body, headers=org.headers())
        payload = await response.get_json()
        assert response.status_code == 400, body
        assert payload["code"] == "VALIDATION"
        assert [d["path"] for d in payload["details"]] == [field], body

    response = await client.post(
        url, json={"name": "n", "channel": "telegram", "content": "Hi {{contact.age}}"}, headers=org.headers()
    )
    payload = await response.get_json()
    assert response.status_code == 400 and payload["code"] == "VALIDATION"
    assert payload["details"][0]["path"] == "content"
    assert "unknown placeholder" in payload["details"][0]["message"]
    assert "(at position 3)" in payload["details"][0]["message"]
    response = await client.post(
        url, json={"name": "n", "channel": "telegram", "content": "{Hi|Hello"}, headers=org.headers()
    )
    assert "(at position 0)" in (await response.get_json())["details"][0]["message"]

    tpl = await _template(client, org, cid)
    for body in ({"name": None}, {"content": "{single}"}, {"channel": ""}):
        response = await client.patch(f"{url}/{tpl['id']}", json=body, headers=org.headers())
        assert response.status_code == 400, body
    response = await client.patch(f"{url}/not-a-uuid", json={}, headers=org.headers())
    assert (await response.get_json())["details"] == [{"path": "templateId", "message": "must be a UUID"}]


async def test_not_found__campaign_template_and_soft_deleted(client, org, store):
    cid = await _campaign(client, org)
    other_cid = await _campaign(client, org)
    tpl = await _template(client, org, other_cid)
    missing = uuid.uuid4()
    for method, path, message in [
        ("GET", f"/api/campaigns/{missing}/templates", "Campaign not found"),
        ("POST", f"/api/campaigns/{missing}/templates", "Campaign not found"),
        ("PATCH", f"/api/campaigns/{cid}/templates/{missing}", "Template not found"),
        ("PATCH", f"/api/campaigns/{cid}/templates/{tpl['id']}", "Template not found"),  # other campaign's
        ("DELETE", f"/api/campaigns/{cid}/templates/{tpl['id']}", "Template not found"),
    ]:
        body = {"name": "n", "channel": "telegram", "content": "x"}
        response = await client.open(path, method=method, json=body, headers=org.headers())
        assert response.status_code == 404, (method, path)
        assert await response.get_json() == {"error": message, "code": "NOT_FOUND"}

    await store.execute("UPDATE campaigns SET deleted_at = now() WHERE id = $1", uuid.UUID(other_cid))
    for method in ("GET", "POST"):
        body = {"name": "n", "channel": "telegram", "content": "x"}
        response = await client.open(
            f"/api/campaigns/{other_cid}/templates", method=method, json=body, headers=org.headers()
        )
        assert response.status_code == 404
    response = await client.patch(
        f"/api/campaigns/{other_cid}/templates/{tpl['id']}", json={"name": "x"}, headers=org.headers()
    )
    assert response.status_code == 404


async def test_active_campaign__templates_are_frozen_until_paused(client, org, store):
    cid = await _campaign(client, org)
    tpl = await _template(client, org, cid)
    await store.execute("UPDATE campaigns SET status = 'active' WHERE id = $1", uuid.UUID(cid))
    path = f"/api/campaigns/{cid}/templates/{tpl['id']}"
    for method, url, body in [
        ("POST", f"/api/campaigns/{cid}/templates", {"name": "n", "channel": "telegram", "content": "x"}),
        ("PATCH", path, {"content": "changed"}),
        ("DELETE", path, None),
    ]:
        response = await client.open(url, method=method, json=body, headers=org.headers())
        payload = await response.get_json()
        assert response.status_code == 409, method
        assert payload["code"] == "CONFLICT"
        assert payload["error"] == "Pause the campaign before editing its steps"
    assert (
        await store.fetchval("SELECT content FROM campaign_templates WHERE id = $1", uuid.UUID(tpl["id"]))
        == (tpl["content"])
    )
    await store.execute("UPDATE campaigns SET status = 'paused' WHERE id = $1", uuid.UUID(cid))
    assert (await client.patch(path, json={"content": "changed"}, headers=org.headers())).status_code == 200


async def test_delete__refused_while_a_step_uses_it(client, org, store):
    cid = await _campaign(client, org)
    used = await _template(client, org, cid)
    unused = await _template(client, org, cid, name="Spare")
    step = await client.post(
        f"/api/campaigns/{cid}/sequences", json={"templateId": used["id"]}, headers=org.headers()
    )
    assert step.status_code == 201
    response = await client.delete(f"/api/campaigns/{cid}/templates/{used['id']}", headers=org.headers())
    payload = await response.get_json()
    assert response.status_code == 409 and payload["code"] == "CONFLICT"
    assert payload["details"] == {"steps": 1}

    response = await client.delete(f"/api/campaigns/{cid}/templates/{unused['id']}", headers=org.headers())
    assert response.status_code == 204 and await response.get_data() == b""
    assert (
        await store.fetchval("SELECT count(*) FROM campaign_templates WHERE campaign_id = $1", uuid.UUID(cid))
        == 1
    )
    again = await client.delete(f"/api/campaigns/{cid}/templates/{unused['id']}", headers=org.headers())
    assert again.status_code == 404


async def test_presets__create_list_and_validation(client, org):
    created = await client.post(
        "/api/campaigns/presets",
        json={"name": " Welcome ", "content": "Hi {{contact.first_name|}}"},
        headers=org.headers(),
    )
    preset = await created.get_json()
    assert created.status_code == 201
    assert set(preset) == {"id", "name", "channel", "content", "created_at"}
    assert preset["name"] == "Welcome" and preset["channel"] == "telegram"
    await client.post("/api/campaigns/presets", json={"name": "Alpha", "content": "x"}, headers=org.headers())
    listing = await (await client.get("/api/campaigns/presets", headers=org.headers("viewer"))).get_json()
    assert [p["name"] for p in listing] == ["Alpha", "Welcome"]
    assert set(listing[0]) == {"id", "name", "channel", "content", "created_at"}

    for body, field in [
        ({"name": "n", "content": ""}, "content"),
        ({"name": "n", "content": "{{contact.nope}}"}, "content"),
        ({"name": "n" * 256, "content": "x"}, "name"),
        ({"name": "n", "content": "x", "channel": "c" * 51}, "channel"),
    ]:
        response = await client.post("/api/campaigns/presets", json=body, headers=org.headers())
        assert response.status_code == 400, body
        assert [d["path"] for d in (await response.get_json())["details"]] == [field]


async def test_roles__viewer_reads_only_and_identity_is_required(client, org):
    cid = await _campaign(client, org)
    tpl = await _template(client, org, cid)
    viewer = org.headers("viewer")
    assert (await client.get(f"/api/campaigns/{cid}/templates", headers=viewer)).status_code == 200
    for method, path in [
        ("POST", f"/api/campaigns/{cid}/templates"),
        ("PATCH", f"/api/campaigns/{cid}/templates/{tpl['id']}"),
        ("DELETE", f"/api/campaigns/{cid}/templates/{tpl['id']}"),
        ("POST", "/api/campaigns/presets"),
    ]:
        response = await client.open(path, method=method, json={"name": "x"}, headers=viewer)
        assert response.status_code == 403, (method, path)
        assert (await client.open(path, method=method, json={})).status_code == 401
    assert (await client.get("/api/campaigns/presets")).status_code == 401


async def test_tenancy__another_organization_cannot_see_or_touch_templates(client, org, store):
    cid = await _campaign(client, org)
    tpl = await _template(client, org, cid)
    await client.post("/api/campaigns/presets", json={"name": "Mine", "content": "x"}, headers=org.headers())
    other = await make_org(store, "Other")
    headers = other.headers()
    for method, path in [
        ("GET", f"/api/campaigns/{cid}/templates"),
        ("POST", f"/api/campaigns/{cid}/templates"),
        ("PATCH", f"/api/campaigns/{cid}/templates/{tpl['id']}"),
        ("DELETE", f"/api/campaigns/{cid}/templates/{tpl['id']}"),
    ]:
        body = {"name": "hijack", "channel": "telegram", "content": "x"}
        response = await client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 404, (method, path)
    # Their own campaign with my template id in the path: still not found.
    theirs = await _campaign(client, other)
    response = await client.patch(
        f"/api/campaigns/{theirs}/templates/{tpl['id']}", json={"name": "hijack"}, headers=headers
    )
    assert response.status_code == 404
    assert await (await client.get("/api/campaigns/presets", headers=headers)).get_json() == []
    row = await store.fetchrow(
        "SELECT name, campaign_id FROM campaign_templates WHERE id = $1", uuid.UUID(tpl["id"])
    )
    assert (row["name"], str(row["campaign_id"])) == ("Intro", cid)
    assert (
        await store.fetchval("SELECT count(*) FROM campaign_templates WHERE campaign_id = $1", uuid.UUID(cid))
        == 1
    )


async def test_openapi__documents_template_and_preset_operations(client):
    doc = await (await client.get("/openapi.json")).get_json()
    item = doc["paths"]["/api/campaigns/{campaignId}/templates/{templateId}"]
    assert {"patch", "delete"} <= set(item)
    assert "409" in item["delete"]["responses"]
    assert doc["paths"]["/api/campaigns/presets"]["post"]["responses"]["201"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/PresetRow"}
