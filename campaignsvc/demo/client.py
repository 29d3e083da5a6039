"""The demo drives the service through its public HTTP API, as a CRM front end would."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from campaignsvc.errors import CampaignsvcError


class DemoApiError(CampaignsvcError):
    """The service answered a demo request with an unexpected status (the message has the body)."""


class Api:
    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self._http = http
        self._headers = headers

    async def call(self, method: str, path: str, json: Any = None, *, expect: int = 200) -> Any:
        response = await self._http.request(method, path, json=json, headers=self._headers)
        if response.status_code != expect:
            raise DemoApiError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    async def get_optional(self, path: str) -> Any | None:
        """GET that may legitimately be missing (404): None then."""
        response = await self._http.get(path, headers=self._headers)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise DemoApiError(f"GET {path} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    async def agents(self) -> list[dict[str, Any]]:
        return await self.call("GET", "/api/campaigns/agents")

    async def throttle(self) -> list[dict[str, Any]]:
        return await self.call("GET", "/api/campaigns/agents/throttle")

    async def campaigns(self, status: str | None = None) -> list[dict[str, Any]]:
        query = "?limit=100" + (f"&status={status}" if status else "")
        return (await self.call("GET", f"/api/campaigns{query}"))["data"]

    async def campaign(self, campaign_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/api/campaigns/{campaign_id}")

    async def stats(self, campaign_id: str) -> dict[str, Any] | None:
        return await self.get_optional(f"/api/campaigns/{campaign_id}/stats")

    async def create_campaign(self, body: dict[str, Any]) -> str:
        return (await self.call("POST", "/api/campaigns", body, expect=201))["id"]

    async def add_step(self, campaign_id: str, index: int, content: str, step: dict[str, Any]) -> None:
        template = await self.call(
            "POST",
            f"/api/campaigns/{campaign_id}/templates",
            {"name": f"Step {index + 1}", "channel": "telegram", "content": content},
            expect=201,
        )
        body = {"orderIndex": index, "templateId": template["id"], **step}
        await self.call("POST", f"/api/campaigns/{campaign_id}/sequences", body, expect=201)

    async def add_participants(self, campaign_id: str, contacts: list[uuid.UUID]) -> dict[str, Any]:
        return await self.call(
            "POST",
            f"/api/campaigns/{campaign_id}/participants/add",
            {"contactIds": [str(c) for c in contacts]},
        )

    async def start(self, campaign_id: str) -> dict[str, Any]:
        return await self.call("POST", f"/api/campaigns/{campaign_id}/start")

    async def stop(self, campaign_id: str) -> None:
        await self.call("POST", f"/api/campaigns/{campaign_id}/stop")
