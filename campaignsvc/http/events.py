"""``POST /api/campaigns/events``: the same envelopes the RabbitMQ queue carries, over HTTP (SPEC R-EVT-3),
for deployments without RabbitMQ, for gateways and for the demo. Internal auth when configured."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict
from quart import Blueprint

from campaignsvc.errors import InvalidEvent
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import validation
from campaignsvc.integrations.events import CONSUMED_TYPES, event_from_envelope

bp = Blueprint("events", __name__, url_prefix="/api/campaigns")


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
)
async def post_event(body: Envelope) -> dict[str, Any]:
    envelope = body.model_dump(mode="json")
    try:
        event = event_from_envelope(envelope, envelope["type"])
    except InvalidEvent as exc:
        raise validation(str(exc)) from None
    if event.type not in CONSUMED_TYPES:
        return {"ok": True, "type": event.type, "duplicate": False, "ignored": True}
    effects = await services().inbound.handle(event)
    return {"ok": True, "type": event.type, "duplicate": effects.duplicate, "ignored": False}
