"""The organization's do-not-contact list: ``GET/POST /api/campaigns/do-not-contact``,
``DELETE /api/campaigns/do-not-contact/:entryId``. Every campaign honours it at enrolment and in every
claim (docs/semantics.md, "Do not contact"); another organization's list is invisible."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from quart import Blueprint

from campaignsvc.domain.reporting import contact_name
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import not_found
from campaignsvc.http.models.do_not_contact import Added, EntriesAdd, EntriesPage, ListQuery
from campaignsvc.http.scope import require_contacts
from campaignsvc.storage import do_not_contact as db

bp = Blueprint("do_not_contact", __name__, url_prefix="/api/campaigns")


def _entry(row: Mapping[str, Any]) -> dict[str, Any]:
    has_contact = row["contact_id"] is not None and row["first_name"] is not None
    return {
        "id": row["id"],
        "contactId": row["contact_id"],
        "telegramId": row["telegram_id"] or row["contact_telegram_id"],
        "username": row["username"] or row["contact_username"],
        "contactName": contact_name(
            row["display_name"], row["first_name"], row["last_name"], row["contact_username"],
            row["contact_telegram_id"],
        )
        if has_contact
        else None,
        "reason": row["reason"],
        "addedByUserId": row["added_by_user_id"],
        "sourceCampaignId": row["source_campaign_id"],
        "createdAt": row["created_at"],
    }  # fmt: skip


@endpoint(
    bp,
    "GET",
    "/do-not-contact",
    summary="The organization's do-not-contact list, newest first",
    query=ListQuery,
    response=EntriesPage,
)
async def list_entries(query: ListQuery) -> dict[str, Any]:
    org = ident.current().organization_id
    rows, total = await services().store.run(
        db.page, org, limit=query.limit, offset=query.offset, q=query.q or None, transaction=False
    )
    return {"data": [_entry(r) for r in rows], "total": total}


@endpoint(
    bp,
    "POST",
    "/do-not-contact",
    summary="Put contacts, Telegram ids or usernames on the list: no campaign of the organization "
    "messages them again",
    body=EntriesAdd,
    response=Added,
    errors=(400,),
)
async def add_entries(body: EntriesAdd) -> dict[str, int]:
    who = ident.current()
    contacts = body.contactIds or []

    async def run(conn: asyncpg.Connection) -> int:
        await require_contacts(conn, who.organization_id, contacts)
        return await db.add(
            conn,
            who.organization_id,
            contact_ids=contacts,
            telegram_ids=body.telegramIds or [],
            usernames=body.usernames or [],
            reason=body.reason,
            user_id=who.user_id,
        )

    return {"added": await services().store.run(run)}


@endpoint(
    bp,
    "DELETE",
    "/do-not-contact/<entryId>",
    summary="Take an entry off the list",
    status=204,
    errors=(404,),
)
async def delete_entry(entryId: uuid.UUID) -> None:
    org = ident.current().organization_id
    if not await services().store.run(db.delete, org, entryId):
        raise not_found("Entry not found")
