"""The CRM's pipeline service: ``POST {PIPELINE_SERVICE_URL}/api/pipeline/leads`` (original-v1 §5.4).

A 409 "Contact is already in this pipeline" is success (the lead exists; its id is in ``details``).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from campaignsvc.errors import CampaignsvcError


class LeadCreationFailed(CampaignsvcError):
    """The pipeline service refused or could not be reached; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class PipelineClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        internal_auth_secret: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"x-internal-auth": internal_auth_secret} if internal_auth_secret else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, headers=headers, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create_lead(
        self,
        *,
        organization_id: uuid.UUID,
        user_id: uuid.UUID | None,
        contact_id: uuid.UUID,
        pipeline_id: uuid.UUID,
        stage_id: uuid.UUID | None,
        responsible_id: uuid.UUID | None,
        correlation_id: str,
    ) -> uuid.UUID | None:
        """The lead's id (new or existing); None when the service did not say."""
        body: dict[str, Any] = {"contactId": str(contact_id), "pipelineId": str(pipeline_id)}
        if stage_id is not None:
            body["stageId"] = str(stage_id)
        if responsible_id is not None:
            body["responsibleId"] = str(responsible_id)
        headers = {"x-organization-id": str(organization_id), "x-correlation-id": correlation_id}
        if user_id is not None:
            headers["x-user-id"] = str(user_id)
        try:
            response = await self._http.post("/api/pipeline/leads", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise LeadCreationFailed(
                f"pipeline service unreachable: {type(exc).__name__}", retryable=True
            ) from exc
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code in (200, 201):
            return _uuid(payload.get("id") if isinstance(payload, dict) else None)
        if response.status_code == 409:
            details = payload.get("details") if isinstance(payload, dict) else None
            return _uuid(details.get("leadId") if isinstance(details, dict) else None)
        message = payload.get("error") if isinstance(payload, dict) else None
        raise LeadCreationFailed(
            f"pipeline service answered {response.status_code}: {message or response.text[:200]}",
            retryable=response.status_code >= 500 or response.status_code == 429,
        )


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None
