"""Audience import: CSV, username lists, participants-bulk (original-v1 §2.4, §4.13).

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
from quart import Blueprint

from campaignsvc.domain.audience_import import ImportPlan, parse_contacts_csv, parse_username_list
from campaignsvc.errors import UniqueViolation
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import conflict, not_found, validation
from campaignsvc.http.models.audience import (
    BulkAdded,
    CsvImport,
    ImportResult,
    ParticipantsBulk,
    UsernameImport,
)
from campaignsvc.storage import audience as db
from campaignsvc.storage import campaigns as campaigns_db

bp = Blueprint("audience", __name__, url_prefix="/api/campaigns")

NOT_FOUND = "Campaign not found"
MAX_SAMPLES = 10


async def _import(campaign_id: uuid.UUID, plan: ImportPlan, deleted_sample: Callable[[Any], str]) -> dict:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> list[db.Matched]:
        if await campaigns_db.get(conn, who.organization_id, campaign_id) is None:
            raise not_found(NOT_FOUND)
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
    errors=(404, 409),
)
async def import_csv(id: uuid.UUID, body: CsvImport) -> dict:
    # Parsing 5 MB of CSV takes about a second: off the event loop.
    plan = await trio.to_thread.run_sync(
        functools.partial(parse_contacts_csv, body.content, has_header=body.hasHeader)
    )
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
    errors=(404, 409),
)
async def import_usernames(id: uuid.UUID, body: UsernameImport) -> dict:
    plan = await trio.to_thread.run_sync(parse_username_list, body.text)
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
        if await campaigns_db.get_for_update(conn, org, id) is None:
            raise not_found(NOT_FOUND)
        unknown = await db.unknown_contacts(conn, org, body.contactIds)
        problems = [
            {"path": f"contactIds.{i}", "message": "contact not found in this organization"}
            for i, contact in enumerate(body.contactIds)
            if contact in unknown
        ]
        if body.bdAccountId and await campaigns_db.foreign_ids(
            conn, org, {"bd_accounts": [body.bdAccountId]}
        ):
            problems.append({"path": "bdAccountId", "message": "BD account not found in this organization"})
        if problems:
            raise validation("Referenced records not found", problems)
        return await db.add_participants(conn, org, id, body.contactIds, body.bdAccountId)

    return {"added": await services().store.run(run)}
