"""Lifecycle endpoints: each writes the state change (and its event) in one transaction, then tells the
supervisor; the response is the new state."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from quart import Blueprint

from campaignsvc.actors.messages import CampaignDeactivated
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import conflict, not_found
from campaignsvc.http.models.campaigns import CampaignRow
from campaignsvc.storage import campaigns as campaigns_db
from campaignsvc.storage import lifecycle as db
from campaignsvc.storage import outbox

bp = Blueprint("lifecycle", __name__, url_prefix="/api/campaigns")


async def _event(
    conn: asyncpg.Connection, who: ident.Identity, event_type: str, campaign_id: uuid.UUID
) -> None:
    await outbox.enqueue(
        conn,
        event_type=event_type,
        organization_id=who.organization_id,
        user_id=who.user_id,
        data={"campaignId": str(campaign_id)},
    )


@endpoint(bp, "POST", "/<id>/pause", summary="Pause an active campaign", response=CampaignRow, errors=(404,))
async def pause_campaign(id: uuid.UUID) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record | None:
        row = await db.pause(conn, who.organization_id, id)
        if row is not None:
            await _event(conn, who, "campaign.paused", id)
        return row

    row = await services().store.run(run)
    if row is None:
        raise not_found("Campaign not found or not active")
    await _after_change(CampaignDeactivated(id))
    return dict(row.items())


async def stop_campaign(id: uuid.UUID) -> dict[str, Any]:
    """active|paused → completed. Used by ``POST /:id/stop`` and ``PATCH {status: "completed"}``."""
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        current = await campaigns_db.get_for_update(conn, who.organization_id, id)
        if current is None:
            raise not_found("Campaign not found")
        if current["status"] == "completed":
            return current
        row = await db.stop(conn, who.organization_id, id, reason="stopped")
        if row is None:
            raise conflict("Only active or paused campaigns can be stopped")
        await _event(conn, who, "campaign.completed", id)
        return row

    row = await services().store.run(run)
    await _after_change(CampaignDeactivated(id))
    return dict(row.items())


@endpoint(
    bp,
    "POST",
    "/<id>/stop",
    summary="Stop an active or paused campaign (→ completed)",
    response=CampaignRow,
    errors=(404, 409),
)
async def stop_campaign_endpoint(id: uuid.UUID) -> dict[str, Any]:
    return await stop_campaign(id)


async def _after_change(message: object) -> None:
    services().events_written()
    await services().supervisor.tell(message)
