"""Audience: CSV and username-list imports, participants-bulk, removing participants (original-v1 §2.4,
§2.9, §4.13).

The imports only match or create contacts and return their ids (the front end then adds them as
participants); participants-bulk adds participants. None of them sends anything.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import trio
from quart import Blueprint, request

from campaignsvc.actors.messages import ParticipantsChanged
from campaignsvc.domain.audience_import import (
    ImportPlan,
    TooManyRows,
    parse_contacts_csv,
    parse_username_list,
)
from campaignsvc.domain.status import CampaignStatus
from campaignsvc.errors import UniqueViolation
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import ApiError, conflict, not_found, validation
from campaignsvc.http.models.audience import (
    BulkAdded,
    CsvImport,
    Deleted,
    ImportResult,
    IntentPatch,
    ParticipantIntent,
    ParticipantsBulk,
    UsernameImport,
)
from campaignsvc.http.scope import campaign_or_404, raise_references, reference_errors
from campaignsvc.storage import audience as db
from campaignsvc.storage import campaigns as campaigns_db
from campaignsvc.storage import replies as replies_db

bp = Blueprint("audience", __name__, url_prefix="/api/campaigns")

MAX_SAMPLES = 10
_IMPORTS = ("audience.import_csv", "audience.import_usernames")


@bp.before_request
async def _bounded_body() -> None:
    """An import's body is read chunk by chunk and refused with 413 as soon as it passes
    CSV_IMPORT_MAX_BYTES, before it is parsed (or held whole in memory)."""
    if request.endpoint not in _IMPORTS:
        return
    limit = services().settings.csv_import_max_bytes
    too_large = ApiError(
        413, "PAYLOAD_TOO_LARGE", f"The import is larger than {limit} bytes (CSV_IMPORT_MAX_BYTES); split it"
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.body:
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    # The endpoint wrapper reads the body again: hand it what was read.
    request.body = request.body_class(None, None)
    request.body.set_result(b"".join(chunks))


async def _parse(parse: Callable[..., ImportPlan], *args: Any, **kw: Any) -> ImportPlan:
    limit = services().settings.csv_import_max_rows
    try:
        # Parsing 5 MB of CSV takes about a second: off the event loop.
        return await trio.to_thread.run_sync(functools.partial(parse, *args, max_rows=limit, **kw))
    except TooManyRows:
        raise validation(
            f"The import has more than {limit} rows (CSV_IMPORT_MAX_ROWS); split it into smaller files"
        ) from None


async def _import(campaign_id: uuid.UUID, plan: ImportPlan, deleted_sample: Callable[[Any], str]) -> dict:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> list[db.Matched]:
        await campaign_or_404(conn, who.organization_id, campaign_id)
        return await db.match_or_create_contacts(conn, who.organization_id, plan.rows) if plan.rows else []

    try:
        matched = await services().store.run(run)
    except UniqueViolation:
        raise conflict("Contacts changed while importing; try again") from None
    deleted = [m.row for m in matched if m.outcome == "deleted"]
    samples = [*plan.samples, *(deleted_sample(row) for row in deleted)][:MAX_SAMPLES]
    return {
        "contactIds": list(dict.fromkeys(m.contact_id for m in matched if m.outcome != "deleted")),
        "created": sum(m.outcome == "created" for m in matched),
        "matched": len({m.contact_id for m in matched if m.outcome == "matched"}),
        "skipped": plan.invalid + len(deleted),
        "invalidSamples": samples,
    }


@endpoint(
    bp,
    "POST",
    "/<id>/audience/from-csv",
    summary="Match or create contacts from a CSV file (returns their ids; adds no participants)",
    body=CsvImport,
    response=ImportResult,
    errors=(404, 409, 413),
)
async def import_csv(id: uuid.UUID, body: CsvImport) -> dict:
    plan = await _parse(parse_contacts_csv, body.content, has_header=body.hasHeader)
    return await _import(
        id, plan, lambda row: f"line {row.line}: telegram id {row.telegram_id} belongs to a deleted contact"
    )


@endpoint(
    bp,
    "POST",
    "/<id>/audience/from-usernames",
    summary="Match or create contacts from a list of usernames or Telegram ids (adds no participants)",
    body=UsernameImport,
    response=ImportResult,
    errors=(404, 409, 413),
)
async def import_usernames(id: uuid.UUID, body: UsernameImport) -> dict:
    plan = await _parse(parse_username_list, body.text)
    return await _import(id, plan, lambda row: row.telegram_id)


@endpoint(
    bp,
    "POST",
    "/<id>/participants-bulk",
    summary="Add contacts of the organization as pending participants (no sends)",
    body=ParticipantsBulk,
    response=BulkAdded,
    errors=(404,),
)
async def participants_bulk(id: uuid.UUID, body: ParticipantsBulk) -> dict:
    who = ident.current()
    org = who.organization_id

    async def run(conn: asyncpg.Connection) -> int:
        await campaign_or_404(conn, org, id, lock=True)
        unknown = await db.unknown_contacts(conn, org, body.contactIds)
        problems = reference_errors(body.contactIds, unknown, path="contactIds", noun="contact")
        if body.bdAccountId and await campaigns_db.foreign_ids(
            conn, org, {"bd_accounts": [body.bdAccountId]}
        ):
            problems.append({"path": "bdAccountId", "message": "BD account not found in this organization"})
        raise_references(problems)
        return await db.add_participants(conn, org, id, body.contactIds, body.bdAccountId)

    added = await services().store.run(run)
    if added:
        # A running campaign schedules them at once (its actor enrols unscheduled participants).
        services().bus.publish(ParticipantsChanged(id))
    return {"added": added}


# --- removing participants ----------------------------------------------------------------------------


async def _editable(conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID) -> None:
    """The campaign row, locked so that it cannot start while participants are removed; not while active."""
    campaign = await campaign_or_404(conn, org, campaign_id, lock=True)
    if campaign["status"] == CampaignStatus.ACTIVE:
        raise conflict("Pause the campaign before removing participants")


@endpoint(
    bp,
    "DELETE",
    "/<id>/participants/<contactId>",
    summary="Remove one contact from the campaign (not while it is active): deleted 1, or 0 if it was "
    "not a participant",
    response=Deleted,
    errors=(404, 409),
)
async def remove_participant(id: uuid.UUID, contactId: uuid.UUID) -> dict[str, int]:
    org = ident.current().organization_id

    async def run(conn: asyncpg.Connection) -> str:
        await _editable(conn, org, id)
        return await db.delete_participant(conn, org, id, contactId)

    outcome = await services().store.run(run)
    if outcome == "busy":
        raise conflict("A message to this participant is being sent; try again when it is recorded")
    return {"deleted": 1 if outcome == "deleted" else 0}


@endpoint(
    bp,
    "PATCH",
    "/<id>/participants/<participantId>",
    summary="Correct what a participant's reply means (the rules never overwrite a person's reading)",
    body=IntentPatch,
    response=ParticipantIntent,
    errors=(404,),
)
async def set_reply_intent(id: uuid.UUID, participantId: uuid.UUID, body: IntentPatch) -> dict[str, Any]:
    org = ident.current().organization_id

    async def run(conn: asyncpg.Connection) -> asyncpg.Record | None:
        await campaign_or_404(conn, org, id)
        return await replies_db.set_intent(conn, org, id, participantId, body.replyIntent)

    row = await services().store.run(run)
    if row is None:
        raise not_found("Participant not found")
    return {
        "participantId": row["id"],
        "contactId": row["contact_id"],
        "status": row["status"],
        "replyIntent": row["reply_intent"],
        "repliedAt": row["replied_at"],
    }


@endpoint(
    bp,
    "DELETE",
    "/<id>/participants",
    summary="Remove every participant (not while the campaign is active)",
    response=Deleted,
    errors=(404, 409),
)
async def remove_participants(id: uuid.UUID) -> dict[str, int]:
    org = ident.current().organization_id

    async def run(conn: asyncpg.Connection) -> int:
        await _editable(conn, org, id)
        return await db.delete_participants(conn, org, id)

    return {"deleted": await services().store.run(run)}
