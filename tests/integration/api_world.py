"""An organization's CRM rows and a campaign built through the public API, shared by the OpenAPI
conformance test and the cross-tenant matrix."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from tests.factories import Org

# call(method, path, json=None, *, headers=None, query=None, expect=None) -> (status, body)
Call = Callable[..., Awaitable[tuple[int, Any]]]


@attrs.define
class Crm:
    """What the CRM holds for one organization: accounts, contacts, a pipeline, chats and sources."""

    org: Org
    accounts: list[uuid.UUID]
    contacts: list[uuid.UUID]
    company: uuid.UUID
    pipeline: uuid.UUID
    stages: list[uuid.UUID]
    user: uuid.UUID
    chat: str
    telegram_ids: list[str]


async def seed_crm(org: Org, *, contacts: int = 4) -> Crm:
    store = org.store
    accounts = [
        await org.bd_account(display_name="Sales 1", timezone="Europe/Berlin", username="sales_one"),
        await org.bd_account(first_name="Ivan", last_name="P", phone_number="+49301234567"),
    ]
    ids = await org.contacts(contacts)
    telegram_ids = [
        await store.fetchval("SELECT telegram_id FROM contacts WHERE id = $1", contact) for contact in ids
    ]
    company = await org.company()
    pipeline, stages = await org.pipeline()
    user = await org.user("bidi")
    chat = f"-100{uuid.uuid4().int % 10**9}"
    await store.execute(
        "INSERT INTO bd_account_sync_chats (bd_account_id, telegram_chat_id, title, peer_type) "
        "VALUES ($1, $2, 'Founders chat', 'chat')",
        accounts[0],
        chat,
    )
    await store.execute(
        "INSERT INTO contact_telegram_sources (organization_id, contact_id, bd_account_id, telegram_chat_id, "
        "telegram_chat_title, search_keyword) VALUES ($1, $2, $3, $4, 'Founders chat', 'founders')",
        org.id,
        ids[0],
        accounts[0],
        chat,
    )
    await store.execute(
        "INSERT INTO messages (organization_id, contact_id, bd_account_id, channel, channel_id, direction, "
        "content) VALUES ($1, $2, $3, 'telegram', $4, 'inbound', 'hello group')",
        org.id,
        ids[0],
        accounts[0],
        chat,
    )
    await store.execute(
        "INSERT INTO leads (organization_id, contact_id, pipeline_id, stage_id) VALUES ($1, $2, $3, $4)",
        org.id,
        ids[0],
        pipeline,
        stages[0],
    )
    return Crm(org, accounts, ids, company, pipeline, stages, user, chat, telegram_ids)


@attrs.define
class CampaignIds:
    id: str
    templates: list[str]
    steps: list[str]
    participants: list[str] = attrs.field(factory=list)

    @property
    def url(self) -> str:
        return f"/api/campaigns/{self.id}"


async def build_campaign(call: Call, crm: Crm, *, name: str = "World", **fields: Any) -> CampaignIds:
    """A draft campaign through the API: both accounts, two templates, two steps (the second waits a
    day and has a stage condition), and every contact as a participant."""
    audience = {"bdAccountIds": [str(a) for a in crm.accounts], "sendDelaySeconds": 0}
    _, row = await call(
        "POST",
        "/api/campaigns",
        {
            "name": name,
            "companyId": str(crm.company),
            "pipelineId": str(crm.pipeline),
            "targetAudience": audience,
            **fields,
        },
        expect=201,
    )
    ids = CampaignIds(row["id"], [], [])
    contents = [
        "Hi {{contact.first_name|there}}, {quick|short} question",
        "Following up, {{contact.first_name}}",
    ]
    for i, content in enumerate(contents):
        _, template = await call(
            "POST",
            f"{ids.url}/templates",
            {"name": f"t{i}", "channel": "telegram", "content": content},
            expect=201,
        )
        ids.templates.append(template["id"])
    steps = [
        {"orderIndex": 0, "templateId": ids.templates[0], "delayHours": 0},
        {
            "orderIndex": 1,
            "templateId": ids.templates[1],
            "delayHours": 24,
            "conditions": {
                "notInPipelineStage": {"pipelineId": str(crm.pipeline), "stageIds": [str(crm.stages[2])]}
            },
        },
    ]
    for step in steps:
        _, row = await call("POST", f"{ids.url}/sequences", step, expect=201)
        ids.steps.append(row["id"])
    await call(
        "POST",
        f"{ids.url}/participants-bulk",
        {"contactIds": [str(c) for c in crm.contacts]},
        expect=200,
    )
    _, rows = await call("GET", f"{ids.url}/participants", expect=200)
    ids.participants = [r["participant_id"] for r in rows]
    return ids
