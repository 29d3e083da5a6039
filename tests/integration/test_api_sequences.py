"""Sequence steps over the real app and database (original-v1 §2.6; SPEC R-SEQ-5, R-API-4)."""

from __future__ import annotations

import uuid

from tests.factories import make_org

STEP_KEYS = {
    "id",
    "campaign_id",
    "order_index",
    "template_id",
    "delay_hours",
    "delay_minutes",
    "conditions",
    "trigger_type",
    "is_hidden",
    "created_at",
    "updated_at",
    "template_name",
    "channel",
    "content",
    "variants",
    "autoWinner",
}
FOREIGN_TEMPLATE = "Template not found or does not belong to this campaign"


async def _campaign(client, org) -> str:
    response = await client.post("/api/campaigns", json={"name": "Outreach"}, headers=org.headers())
    return (await response.get_json())["id"]


async def _template(client, org, cid: str, name: str = "Intro") -> str:
    body = {"name": name, "channel": "telegram", "content": "Hi {{contact.first_name|there}}"}
    response = await client.post(f"/api/campaigns/{cid}/templates", json=body, headers=org.headers())
    return (await response.get_json())["id"]


async def _step(client, org, cid: str, **body) -> dict:
    response = await client.post(f"/api/campaigns/{cid}/sequences", json=body, headers=org.headers())
    assert response.status_code == 201, await response.get_data()
    return await response.get_json()


async def test_create_with_defaults_list_in_order_patch_and_delete(client, org):
    cid = await _campaign(client, org)
    tpl = await _template(client, org, cid)
    first = await _step(client, org, cid, templateId=tpl)
    assert set(first) == STEP_KEYS
    assert first["campaign_id"] == cid and first["template_id"] == tpl
    assert (first["order_index"], first["delay_hours"], first["delay_minutes"]) == (0, 24, 0)
    assert (first["trigger_type"], first["is_hidden"], first["conditions"]) == ("delay", False, {})
    assert (first["template_name"], first["channel"]) == ("Intro", "telegram")
    later = await _step(
        client,
        org,
        cid,
        templateId=tpl,
        orderIndex=2,
        delayHours=8784,
        delayMinutes=59,
        triggerType="after_reply",
        isHidden=True,
        conditions={"stopIfReplied": True, "custom": "kept"},
    )
    middle = await _step(client, org, cid, templateId=tpl, orderIndex=1, delayHours=0)
    tie = await _step(client, org, cid, templateId=tpl, orderIndex=1)  # same order_index: creation time

    listing = await (await client.get(f"/api/campaigns/{cid}/sequences", headers=org.headers())).get_json()
    assert [s["id"] for s in listing] == [first["id"], middle["id"], tie["id"], later["id"]]
    assert listing[3]["conditions"] == {"stopIfReplied": True, "custom": "kept"}
    assert set(listing[0]) == STEP_KEYS and listing[0]["content"] == "Hi {{contact.first_name|there}}"

    other_tpl = await _template(client, org, cid, name="Follow-up")
    path = f"/api/campaigns/{cid}/sequences/{middle['id']}"
    patched = await client.patch(
        path, json={"templateId": other_tpl, "delayMinutes": 30, "conditions": None}, headers=org.headers()
    )
    body = await patched.get_json()
    assert patched.status_code == 200
    assert (body["template_id"], body["template_name"], body["delay_minutes"]) == (other_tpl, "Follow-up", 30)
    assert body["delay_hours"] == 0 and body["conditions"] == {}
    assert await (await client.patch(path, json={}, headers=org.headers())).get_json() == body

    deleted = await client.delete(path, headers=org.headers())
    assert deleted.status_code == 204 and await deleted.get_data() == b""
    again = await client.delete(path, headers=org.headers())
    assert again.status_code == 404
    assert await again.get_json() == {"error": "Sequence step not found", "code": "NOT_FOUND"}
    assert (await client.patch(path, json={"delayHours": 1}, headers=org.headers())).status_code == 404


async def test_validation__ranges_types_and_conditions(client, org):
    cid = await _campaign(client, org)
    tpl = await _template(client, org, cid)
    url = f"/api/campaigns/{cid}/sequences"
    cases = [
        ({}, "templateId"),
        ({"templateId": "nope"}, "templateId"),
        ({"templateId": tpl, "delayHours": 8785}, "delayHours"),
        ({"templateId": tpl, "delayHours": -1}, "delayHours"),
        ({"templateId": tpl, "delayHours": "5"}, "delayHours"),
        ({"templateId": tpl, "delayHours": 1.5}, "delayHours"),
        ({"templateId": tpl, "delayMinutes": 60}, "delayMinutes"),
        ({"templateId": tpl, "orderIndex": -1}, "orderIndex"),
        ({"templateId": tpl, "orderIndex": True}, "orderIndex"),
        ({"templateId": tpl, "triggerType": "later"}, "triggerType"),
        ({"templateId": tpl, "isHidden": "yes"}, "isHidden"),
        ({"templateId": tpl, "conditions": "always"}, "conditions"),
        (
            {"templateId": tpl, "conditions": {"contact": [{"field": "age", "op": "equals"}]}},
            "conditions.contact.0.field",
        ),
        ({"templateId": tpl, "conditions": {"inPipelineStage": {"pipelineId": "x", "stageIds": []}}}, None),
    ]
    for body, field in cases:
        response = await client.post(url, json=body, headers=org.headers())
        payload = await response.get_json()
        assert response.status_code == 400, body
        assert payload["code"] == "VALIDATION", body
        if field:
            assert [d["path"] for d in payload["details"]] == [field], body
    assert await org.store.fetchval("SELECT count(*) FROM campaign_sequences") == 0

    step = await _step(client, org, cid, templateId=tpl)
    for body in ({"delayMinutes": 75}, {"templateId": None}, {"isHidden": None}, {"delayHours": 9000}):
        response = await client.patch(f"{url}/{step['id']}", json=body, headers=org.headers())
        assert response.status_code == 400, body  # not clamped as the original did


async def test_templates_must_be_of_this_campaign(client, org, store):
    cid = await _campaign(client, org)
    own = await _template(client, org, cid)
    sibling = await _template(client, org, await _campaign(client, org))
    other = await make_org(store, "Other")
    foreign = await _template(client, other, await _campaign(client, other))
    step = await _step(client, org, cid, templateId=own)
    for template_id in (sibling, foreign, str(uuid.uuid4())):
        for method, path in [
            ("POST", f"/api/campaigns/{cid}/sequences"),
            ("PATCH", f"/api/campaigns/{cid}/sequences/{step['id']}"),
        ]:
            response = await client.open(
                path, method=method, json={"templateId": template_id}, headers=org.headers()
            )
            assert response.status_code == 400, (method, template_id)
            assert await response.get_json() == {
                "error": FOREIGN_TEMPLATE,
                "code": "BAD_REQUEST",
                "details": [{"path": "templateId", "message": FOREIGN_TEMPLATE}],
            }
    assert await store.fetchval(
        "SELECT template_id FROM campaign_sequences WHERE id = $1", uuid.UUID(step["id"])
    ) == (uuid.UUID(own))


async def test_condition_pipelines_and_stages_must_be_the_organizations(client, org, store):
    cid = await _campaign(client, org)
    tpl = await _template(client, org, cid)
    pipeline, stages = await org.pipeline()
    second, second_stages = await org.pipeline("Partners", ("New",))
    other = await make_org(store, "Other")
    foreign, foreign_stages = await other.pipeline()
    url = f"/api/campaigns/{cid}/sequences"

    good = {"inPipelineStage": {"pipelineId": str(pipeline), "stageIds": [str(stages[0])]}}
    created = await _step(client, org, cid, templateId=tpl, conditions=good)
    assert created["conditions"] == good

    bad = {
        "inPipelineStage": {"pipelineId": str(foreign), "stageIds": [str(foreign_stages[0])]},
        "notInPipelineStage": {
            "pipelineId": str(pipeline),
            "stageIds": [str(stages[1]), str(second_stages[0])],
        },
    }
    response = await client.post(url, json={"templateId": tpl, "conditions": bad}, headers=org.headers())
    payload = await response.get_json()
    assert response.status_code == 400 and payload["code"] == "VALIDATION"
    assert payload["details"] == [
        {
            "path": "conditions.inPipelineStage.pipelineId",
            "message": "pipeline not found in this organization",
        },
        {"path": "conditions.inPipelineStage.stageIds.0", "message": "stage not found in this organization"},
        {
            "path": "conditions.notInPipelineStage.stageIds.1",
            "message": "stage is not a stage of this pipeline",
        },
    ]
    response = await client.patch(
        f"{url}/{created['id']}",
        json={"conditions": {"notInPipelineStage": bad["inPipelineStage"]}},
        headers=org.headers(),
    )
    assert response.status_code == 400
    assert await store.fetchval("SELECT count(*) FROM campaign_sequences") == 1
    assert second  # the second pipeline exists only to own the misplaced stage


async def test_active_campaign__steps_are_frozen_until_paused(client, org, store):
    cid = await _campaign(client, org)
    tpl = await _template(client, org, cid)
    step = await _step(client, org, cid, templateId=tpl)
    await store.execute("UPDATE campaigns SET status = 'active' WHERE id = $1", uuid.UUID(cid))
    path = f"/api/campaigns/{cid}/sequences/{step['id']}"
    for method, url, body in [
        ("POST", f"/api/campaigns/{cid}/sequences", {"templateId": tpl}),
        ("PATCH", path, {"delayHours": 1}),
        ("DELETE", path, None),
    ]:
        response = await client.open(url, method=method, json=body, headers=org.headers())
        payload = await response.get_json()
        assert response.status_code == 409, method
        assert (payload["code"], payload["error"]) == (
            "CONFLICT",
            "Pause the campaign before editing its steps",
        )
    assert (await client.get(f"/api/campaigns/{cid}/sequences", headers=org.headers())).status_code == 200
    await store.execute("UPDATE campaigns SET status = 'paused' WHERE id = $1", uuid.UUID(cid))
    assert (await client.delete(path, headers=org.headers())).status_code == 204


async def test_not_found__missing_deleted_and_other_campaigns_steps(client, org, store):
    cid = await _campaign(client, org)
    other_cid = await _campaign(client, org)
    tpl = await _template(client, org, other_cid)
    step = await _step(client, org, other_cid, templateId=tpl)
    for method, path in [
        ("GET", f"/api/campaigns/{uuid.uuid4()}/sequences"),
        ("POST", f"/api/campaigns/{uuid.uuid4()}/sequences"),
        ("PATCH", f"/api/campaigns/{cid}/sequences/{step['id']}"),
        ("DELETE", f"/api/campaigns/{cid}/sequences/{step['id']}"),
    ]:
        response = await client.open(path, method=method, json={"templateId": tpl}, headers=org.headers())
        assert response.status_code == 404, (method, path)
    await store.execute("UPDATE campaigns SET deleted_at = now() WHERE id = $1", uuid.UUID(other_cid))
    for method, path in [
        ("GET", f"/api/campaigns/{other_cid}/sequences"),
        ("POST", f"/api/campaigns/{other_cid}/sequences"),
        ("PATCH", f"/api/campaigns/{other_cid}/sequences/{step['id']}"),
        ("DELETE", f"/api/campaigns/{other_cid}/sequences/{step['id']}"),
    ]:
        response = await client.open(path, method=method, json={"templateId": tpl}, headers=org.headers())
        assert response.status_code == 404, (method, path)
        assert (await response.get_json())["error"] == "Campaign not found"
    response = await client.delete(f"/api/campaigns/{cid}/sequences/bad", headers=org.headers())
    assert (await response.get_json())["details"] == [{"path": "stepId", "message": "must be a UUID"}]


async def test_roles_and_tenancy(client, org, store):
    cid = await _campaign(client, org)
    tpl = await _template(client, org, cid)
    step = await _step(client, org, cid, templateId=tpl)
    path = f"/api/campaigns/{cid}/sequences/{step['id']}"
    viewer = org.headers("viewer")
    assert (await client.get(f"/api/campaigns/{cid}/sequences", headers=viewer)).status_code == 200
    for method, url in [("POST", f"/api/campaigns/{cid}/sequences"), ("PATCH", path), ("DELETE", path)]:
        assert (
            await client.open(url, method=method, json={"templateId": tpl}, headers=viewer)
        ).status_code == 403
        assert (await client.open(url, method=method, json={"templateId": tpl})).status_code == 401

    other = await make_org(store, "Other")
    theirs = await _campaign(client, other)
    for method, url in [
        ("GET", f"/api/campaigns/{cid}/sequences"),
        ("POST", f"/api/campaigns/{cid}/sequences"),
        ("PATCH", path),
        ("DELETE", path),
        ("PATCH", f"/api/campaigns/{theirs}/sequences/{step['id']}"),
        ("DELETE", f"/api/campaigns/{theirs}/sequences/{step['id']}"),
    ]:
        body = {"templateId": tpl, "delayHours": 1}
        response = await client.open(url, method=method, json=body, headers=other.headers())
        assert response.status_code == 404, (method, url)
    row = await store.fetchrow(
        "SELECT delay_hours FROM campaign_sequences WHERE id = $1", uuid.UUID(step["id"])
    )
    assert row["delay_hours"] == 24
    assert await store.fetchval("SELECT count(*) FROM campaign_sequences") == 1
