"""A running dispatcher for integration tests: the real app, supervisor and database, sending to the
sandbox Messaging Service over HTTP; and helpers to build campaigns through the public API."""

from __future__ import annotations

import collections
import uuid
from typing import Any

import attrs
import httpx
import trio

from campaignsvc.actors.supervisor import Supervisor
from campaignsvc.config import Settings
from campaignsvc.http.context import Services
from campaignsvc.integrations.pipeline import PipelineClient
from campaignsvc.runtime import build
from campaignsvc.sandbox import SandboxConfig
from campaignsvc.storage.store import Store
from tests.factories import Org
from tests.integration.sandbox_helpers import Sandbox, start_sandbox


@attrs.define
class Env:
    store: Store
    settings: Settings
    sandbox: Sandbox
    supervisor: Supervisor
    services: Services
    client: Any
    org: Org

    async def api(self, method: str, path: str, json: Any = None, expect: int | None = 200, **kw: Any) -> Any:
        headers = self.org.headers()
        if path == "/api/campaigns/events":  # a service's delivery: no user identity
            headers = {"X-Organization-Id": str(self.org.id)}
        response = await self.client.open(path, method=method, json=json, headers=headers, **kw)
        body = await response.get_json()
        if expect is not None:
            assert response.status_code == expect, (response.status_code, body)
        return body

    async def campaign(
        self,
        *,
        accounts: list[uuid.UUID],
        contacts: list[uuid.UUID],
        steps: list[dict[str, Any]],
        audience: dict[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """A draft campaign with one template per step and the contacts as participants."""
        target = {"bdAccountIds": [str(a) for a in accounts], "sendDelaySeconds": 0, **(audience or {})}
        row = await self.api(
            "POST", "/api/campaigns", {"name": "test", "targetAudience": target, **fields}, 201
        )
        cid = row["id"]
        for i, step in enumerate(steps):
            content = step.pop("content", f"Step {i} for {{{{contact.first_name|friend}}}}")
            template = await self.api(
                "POST",
                f"/api/campaigns/{cid}/templates",
                {"name": f"t{i}", "channel": "telegram", "content": content},
                201,
            )
            body = {"orderIndex": i, "templateId": template["id"], "delayHours": 0, "delayMinutes": 0, **step}
            await self.api("POST", f"/api/campaigns/{cid}/sequences", body, 201)
        if contacts:
            await self.api(
                "POST", f"/api/campaigns/{cid}/participants/add", {"contactIds": [str(c) for c in contacts]}
            )
        return cid

    async def status(self, campaign_id: str) -> str:
        return await self.store.fetchval("SELECT status FROM campaigns WHERE id = $1", uuid.UUID(campaign_id))

    async def wait_status(self, campaign_id: str, status: str, within: float = 30) -> None:
        with trio.fail_after(within):
            while await self.status(campaign_id) != status:
                await trio.sleep(0.05)

    async def participants(self, campaign_id: str) -> list[Any]:
        return await self.store.fetch(
            "SELECT * FROM campaign_participants WHERE campaign_id = $1 ORDER BY enqueue_order",
            uuid.UUID(campaign_id),
        )

    def sent_keys(self) -> collections.Counter[str]:
        """Idempotency keys of the messages the sandbox actually delivered (replays excluded)."""
        return collections.Counter(m["metadata"]["idempotencyKey"] for m in self.sandbox.state.messages)

    async def wait_sent(self, count: int, within: float = 30) -> None:
        with trio.fail_after(within):
            await self.sandbox.state.wait_for(lambda: len(self.sandbox.state.messages) >= count)


async def start_env(
    nursery: trio.Nursery,
    store: Store,
    org: Org,
    *,
    sandbox: SandboxConfig | None = None,
    pipeline: httpx.AsyncBaseTransport | None = None,
    **settings_overrides: Any,
) -> Env:
    box = await start_sandbox(
        nursery, sandbox or SandboxConfig(seed=1, latency_ms=0, jitter_ms=0, account_min_gap_s=0)
    )
    overrides: dict[str, Any] = dict(
        min_gap_ms_same_bd_account=0,
        max_sends_per_account_per_day=0,
        messaging_service_url=box.url,
        messaging_timeout_s=2.0,
        in_doubt_retry_after_s=1,
        log_level="warning",
    )
    overrides.update(settings_overrides)
    settings = Settings.from_env({}, **overrides)
    runtime = build(
        settings, store, pipeline=PipelineClient("http://pipeline.test", transport=pipeline or FakePipeline())
    )
    await runtime.start(nursery)
    client = runtime.app().test_client()
    return Env(store, settings, box, runtime.supervisor, runtime.services, client, org)


class FakePipeline(httpx.AsyncBaseTransport):
    """The pipeline service's lead contract (original-v1 §5.4): 201 with the new lead, 409 with the
    existing lead's id for a contact already in the pipeline."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.leads: dict[tuple[str, str], str] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(await request.aread())
        self.calls.append({"body": body, "headers": dict(request.headers)})
        key = (body["contactId"], body["pipelineId"])
        if key in self.leads:
            error = {
                "error": "Contact is already in this pipeline",
                "code": "CONFLICT",
                "details": {"leadId": self.leads[key]},
            }
            return httpx.Response(409, json=error)
        self.leads[key] = str(uuid.uuid4())
        return httpx.Response(201, json={"id": self.leads[key], "contact_id": body["contactId"]})


def reply_event(
    org: Org, *, contact_id: Any, account_id: Any, channel_id: str, direction: str = "inbound"
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": "message.received",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "organizationId": str(org.id),
        "data": {
            "messageId": str(uuid.uuid4()),
            "channel": "telegram",
            "channelId": channel_id,
            "contactId": str(contact_id),
            "bdAccountId": str(account_id),
            "content": "hi!",
            "direction": direction,
        },
    }
