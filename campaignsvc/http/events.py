"""``POST /api/campaigns/events``: the same envelopes the RabbitMQ queue carries, over HTTP (SPEC R-EVT-3),
for deployments without RabbitMQ, for gateways and for the demo.

An event can lift a flood block, mark participants replied or pause campaigns, and the gateway adds
X-Internal-Auth to every request a signed-in user makes, so that header proves nothing here. Ingestion
is service-to-service: ``EVENTS_INGEST_SECRET`` in ``X-Events-Ingest-Secret``; without that setting the
endpoint is open only in a deployment with no INTERNAL_AUTH_SECRET either (development, the demo). User
identity headers are refused, and an X-Organization-Id must name the envelope's organization."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict
from quart import Blueprint, request

from campaignsvc.errors import InvalidEvent
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import forbidden, validation
from campaignsvc.http.identity import check_secret
from campaignsvc.integrations.events import CONSUMED_TYPES, event_from_envelope

bp = Blueprint("events", __name__, url_prefix="/api/campaigns")

SECRET_HEADER = "X-Events-Ingest-Secret"
_USER_HEADERS = ("X-User-Id", "X-User-Role")


class Envelope(BaseModel):
    """The v1 event envelope (original-v1 §5.1)."""

    model_config = ConfigDict(extra="allow")
    id: uuid.UUID
    type: str
    timestamp: str | None = None
    organizationId: uuid.UUID
    data: dict[str, Any]


class EventResult(BaseModel):
    ok: bool
    type: str
    duplicate: bool
    ignored: bool


@endpoint(
    bp,
    "POST",
    "/events",
    summary="Deliver a CRM event (message.received, lead.*, bd_account.*) without RabbitMQ",
    tags=("events",),
    body=Envelope,
    response=EventResult,
    auth="internal",
    write=False,
    errors=(401, 403),
    credentials=("EventsIngestSecret",),
)
async def post_event(body: Envelope) -> dict[str, Any]:
    _check_ingest_credential()
    _check_organization(body.organizationId)
    envelope = body.model_dump(mode="json")
    try:
        event = event_from_envelope(envelope, envelope["type"])
    except InvalidEvent as exc:
        raise validation(str(exc)) from None
    if event.type not in CONSUMED_TYPES:
        return {"ok": True, "type": event.type, "duplicate": False, "ignored": True}
    effects = await services().inbound.handle(event)
    return {"ok": True, "type": event.type, "duplicate": effects.duplicate, "ignored": False}


def _check_ingest_credential() -> None:
    settings = services().settings
    if any(request.headers.get(name, "").strip() for name in _USER_HEADERS):
        # A user's request forwarded by the gateway; events come from services, never on a user's behalf.
        raise forbidden("Events are accepted from services only; user identity headers are not allowed")
    secret = settings.events_ingest_secret
    if secret is None:
        if settings.internal_auth_secret is not None:
            # A secured deployment that has not set the ingest secret: closed rather than trusting the
            # gateway's header, which every signed-in user's request carries.
            raise forbidden("Event ingestion over HTTP is disabled: EVENTS_INGEST_SECRET is not set")
        return
    check_secret(request.headers, SECRET_HEADER, secret, f"Missing or invalid {SECRET_HEADER}")


def _check_organization(organization_id: uuid.UUID) -> None:
    raw = request.headers.get("X-Organization-Id", "").strip()
    if not raw:
        return
    try:
        header = uuid.UUID(raw)
    except ValueError:
        raise validation("X-Organization-Id must be a UUID") from None
    if header != organization_id:
        raise forbidden("X-Organization-Id does not match the event's organizationId")
