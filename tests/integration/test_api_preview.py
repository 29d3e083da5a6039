"""Preview and the AI variant stub over the real app and database (SPEC R-API-3, R-SEQ-3, R-TPL)."""

from __future__ import annotations

import uuid

import pytest

from campaignsvc.config import Settings
from campaignsvc.storage import seed
from tests.factories import make_org

STEP_KEYS = {
    "stepId",
    "index",
    "orderIndex",
    "triggerType",
    "delayHours",
    "delayMinutes",
    "isHidden",
    "templateId",
    "variantId",
    "status",
}


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {}, min_gap_ms_same_bd_account=0, log_level="warning", ai_personalize_text="Loved your talk."
    )


async def _campaign(client, org) -> str:
    response = await client.post("/api/campaigns", json={"name": "Outreach"}, headers=org.headers())
    return (await response.get_json())["id"]


async def _step(client, org, cid: str, content: str, **step) -> dict:
    body = {"name": "t", "channel": "telegram", "content": content}
    response = await client.post(f"/api/campaigns/{cid}/templates", json=body, headers=org.headers())
    template = await response.get_json()
    response = await client.post(
        f"/api/campaigns/{cid}/sequences", json={"templateId": template["id"], **step}, headers=org.headers()
    )
    assert response.status_code == 201, await response.get_data()
    return await response.get_json()


async def test_preview__every_step_rendered_or_skipped_with_its_reason(client, org, store):
    company = await org.company("Acme")
    pipeline, stages = await org.pipeline()
    (contact,) = await store.run(
        seed.contacts,
        organization_id=org.id,
        rows=[{"first_name": "Ann", "username": "@ann", "telegram_id": "42", "company_id": company}],
    )
    await store.run(
        seed.lead, organization_id=org.id, contact_id=contact, pipeline_id=pipeline, stage_id=stages[1]
    )
    cid = await _campaign(client, org)
    greet = await _step(
        client,
        org,
        cid,
        "{Hi|Hello|Hey} {{contact.first_name}} from {{company.name}}! {{ai.personalize}}",
        delayHours=0,
    )
    hidden = await _step(client, org, cid, "Hidden", orderIndex=1, isHidden=True)
    in_stage = await _step(
        client,
        org,
        cid,
        "You are qualified, @{{contact.username}}",
        orderIndex=2,
        triggerType="after_reply",
        delayMinutes=5,
        conditions={"inPipelineStage": {"pipelineId": str(pipeline), "stageIds": [str(stages[1])]}},
    )
    failing = await _step(
        client,
        org,
        cid,
        "Email check",
        orderIndex=3,
        conditions={
            "contact": [
                {"field": "first_name", "op": "equals", "value": "ann"},
                {"field": "email", "op": "not_empty"},
            ]
        },
    )
    missing = await _step(client, org, cid, "Dear {{contact.last_name}}", orderIndex=4)

    url = f"/api/campaigns/{cid}/preview?contactId={contact}"
    response = await client.get(url, headers=org.headers("viewer"))
    body = await response.get_json()
    assert response.status_code == 200
    assert (body["campaignId"], body["contactId"]) == (cid, str(contact))
    steps = body["steps"]
    assert [s["stepId"] for s in steps] == [
        greet["id"],
        hidden["id"],
        in_stage["id"],
        failing["id"],
        missing["id"],
    ]
    assert [s["index"] for s in steps] == [0, 1, 2, 3, 4]
    first = steps[0]
    assert set(first) == STEP_KEYS | {"text"}
    assert first["status"] == "send" and first["templateId"] == greet["template_id"]
    assert first["text"].split(" ", 1)[0] in ("Hi", "Hello", "Hey")
    assert first["text"].endswith(" Ann from Acme! Loved your talk.")
    assert (first["orderIndex"], first["delayHours"], first["delayMinutes"], first["isHidden"]) == (
        0,
        0,
        0,
        False,
    )
    assert steps[1] == {**steps[1], "status": "skip", "reason": "hidden", "isHidden": True}
    assert "text" not in steps[1]
    assert steps[2]["status"] == "send" and steps[2]["text"] == "You are qualified, @ann"
    assert (steps[2]["triggerType"], steps[2]["delayMinutes"]) == ("after_reply", 5)
    assert (steps[3]["status"], steps[3]["reason"], steps[3]["detail"]) == (
        "skip",
        "conditions",
        "conditions.contact.1",
    )
    assert (steps[4]["status"], steps[4]["reason"], steps[4]["detail"]) == (
        "skip",
        "missing_data",
        "contact.last_name",
    )

    again = await (await client.get(url, headers=org.headers())).get_json()
    assert again == body  # seeded by (campaign, contact, step): stable

    await store.execute("UPDATE leads SET stage_id = $1", stages[0])
    moved = await (await client.get(url, headers=org.headers())).get_json()
    assert (moved["steps"][2]["reason"], moved["steps"][2]["detail"]) == (
        "conditions",
        "conditions.inPipelineStage",
    )


async def test_preview__stop_if_replied_and_legacy_invalid_template(client, org, store):
    (contact,) = await org.contacts(1)
    cid = await _campaign(client, org)
    step = await _step(client, org, cid, "Bump", conditions={"stopIfReplied": True})
    await store.execute(
        "INSERT INTO campaign_participants (campaign_id, contact_id, status, replied_at) VALUES ($1, $2, 'replied', now())",
        uuid.UUID(cid),
        contact,
    )
    await _step(client, org, cid, "Hello", orderIndex=1)
    await store.execute(
        "UPDATE campaign_templates SET content = 'Hi {{oops}}' WHERE id <> $1", uuid.UUID(step["template_id"])
    )
    body = await (
        await client.get(f"/api/campaigns/{cid}/preview?contactId={contact}", headers=org.headers())
    ).get_json()
    bump, legacy = body["steps"]
    assert (bump["status"], bump["reason"], bump["detail"]) == (
        "skip",
        "conditions",
        "conditions.stopIfReplied",
    )
    assert (legacy["status"], legacy["reason"]) == ("skip", "invalid_template")
    assert "unknown placeholder" in legacy["detail"] and "(at position 3)" in legacy["detail"]


async def test_preview__validation_not_found_and_tenancy(client, org, store):
    (contact,) = await org.contacts(1)
    cid = await _campaign(client, org)
    other = await make_org(store, "Other")
    (theirs,) = await other.contacts(1)
    base = f"/api/campaigns/{cid}/preview"
    for query, path in [("", "contactId"), ("?contactId=nope", "contactId")]:
        response = await client.get(base + query, headers=org.headers())
        payload = await response.get_json()
        assert response.status_code == 400 and payload["details"][0]["path"] == path
    response = await client.get(f"{base}?contactId={theirs}", headers=org.headers())
    assert response.status_code == 404
    assert await response.get_json() == {"error": "Contact not found", "code": "NOT_FOUND"}
    await store.execute("UPDATE contacts SET deleted_at = now() WHERE id = $1", contact)
    assert (await client.get(f"{base}?contactId={contact}", headers=org.headers())).status_code == 404
    response = await client.get(f"{base}?contactId={theirs}", headers=other.headers())
    assert await response.get_json() == {"error": "Campaign not found", "code": "NOT_FOUND"}
    assert (await client.get(f"{base}?contactId={contact}")).status_code == 401
    empty = await client.get(
        f"/api/campaigns/{await _campaign(client, other)}/preview?contactId={theirs}", headers=other.headers()
    )
    assert (await empty.get_json())["steps"] == []


async def test_generate_variant__stub_returns_the_content(client, org, store):
    cid = await _campaign(client, org)
    step = await _step(client, org, cid, "{Hi|Hello} {{contact.first_name|there}}")
    url = f"/api/campaigns/{cid}/ai/generate-variant"
    expected_stub = {"provider": "stub", "message": "AI will be connected later"}

    response = await client.post(
        url, json={"content": "Hey there", "instructions": "shorter"}, headers=org.headers()
    )
    assert response.status_code == 200
    assert await response.get_json() == {"content": "Hey there", **expected_stub}
    response = await client.post(url, json={"templateId": step["template_id"]}, headers=org.headers())
    assert await response.get_json() == {
        "content": "{Hi|Hello} {{contact.first_name|there}}",
        **expected_stub,
    }

    sibling_template = (await _step(client, org, await _campaign(client, org), "Elsewhere"))["template_id"]
    other = await make_org(store, "Other")
    foreign_template = (await _step(client, other, await _campaign(client, other), "Theirs"))["template_id"]
    for body, path in [
        ({}, "content"),
        ({"content": ""}, "content"),
        ({"content": "x" * 50_001}, "content"),
        ({"content": "x", "instructions": "i" * 2001}, "instructions"),
        ({"templateId": "nope"}, "templateId"),
        ({"templateId": sibling_template}, "templateId"),
        ({"templateId": foreign_template}, "templateId"),
        ({"templateId": str(uuid.uuid4())}, "templateId"),
    ]:
        response = await client.post(url, json=body, headers=org.headers())
        payload = await response.get_json()
        assert response.status_code == 400 and payload["code"] == "VALIDATION", body
        assert [d["path"] for d in payload["details"]] == [path], body
    assert (await client.post(url, json={"content": "x"}, headers=org.headers("viewer"))).status_code == 403
    response = await client.post(url, json={"content": "x"}, headers=other.headers())
    assert response.status_code == 404
    await store.execute("UPDATE campaigns SET deleted_at = now() WHERE id = $1", uuid.UUID(cid))
    assert (await client.post(url, json={"content": "x"}, headers=org.headers())).status_code == 404


async def test_openapi__preview_and_variant_are_documented(client):
    doc = await (await client.get("/openapi.json")).get_json()
    preview = doc["paths"]["/api/campaigns/{id}/preview"]["get"]
    assert {p["name"] for p in preview["parameters"]} == {"id", "contactId"}
    schemas = doc["components"]["schemas"]
    assert {"Preview", "PreviewStep", "VariantOut", "VariantRequest"} <= set(schemas)
    assert set(schemas["PreviewStep"]["properties"]["reason"]["anyOf"][0]["enum"]) == {
        "hidden",
        "conditions",
        "missing_data",
        "invalid_template",
    }
