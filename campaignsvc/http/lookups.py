"""Lookups: agents, group sources, Telegram sources, contact picker, audience conflicts (original-v1 §2.4).

All reads, scoped to the caller's organization; ``audience/conflicts`` is a POST only because its list of
contacts can be long, so viewers may use it too.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from quart import Blueprint

from campaignsvc.domain import pacing
from campaignsvc.domain.validation import parse_zone
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import not_found
from campaignsvc.http.models.lookups import (
    AgentOut,
    Conflicts,
    ConflictsBody,
    GroupContacts,
    GroupContactsQuery,
    GroupSource,
    PickerContact,
    PickerQuery,
    TelegramSourceGroup,
)
from campaignsvc.http.presenters import account_display_name, bd_account_object, visible_accounts
from campaignsvc.http.scope import campaign_or_404, require_contacts
from campaignsvc.storage import lookups as db

bp = Blueprint("lookups", __name__, url_prefix="/api/campaigns")


@endpoint(
    bp,
    "GET",
    "/agents",
    summary="Active BD accounts of the organization with their sends today",
    response=list[AgentOut],
)
async def list_agents() -> list[dict[str, Any]]:
    accounts, sent = await agents_sent_today(ident.current(), dt.datetime.now(dt.UTC))
    return [{**bd_account_object(a), "sentToday": sent.get(a["id"], 0)} for a in accounts]


async def agents_sent_today(
    who: ident.Identity, now: dt.datetime
) -> tuple[list[Mapping[str, Any]], dict[uuid.UUID, int]]:
    """The active BD accounts this caller may see, and each one's sends since its local midnight."""

    async def run(conn: asyncpg.Connection) -> tuple[list[Mapping[str, Any]], dict[uuid.UUID, int]]:
        accounts = visible_accounts(who, await db.active_accounts(conn, who.organization_id))
        since = {a["id"]: pacing.day_start(parse_zone(a["timezone"]) or pacing.UTC, now) for a in accounts}
        return accounts, await db.sent_since(conn, who.organization_id, since)

    return await services().store.run(run)


@endpoint(
    bp,
    "GET",
    "/group-sources",
    summary="Telegram groups and channels synced by the organization's active accounts",
    response=list[GroupSource],
)
async def list_group_sources() -> list[dict[str, Any]]:
    who = ident.current()
    rows = await services().store.run(db.group_sources, who.organization_id, transaction=False)
    return [_group_source(r) for r in rows]


def _group_source(row: Mapping[str, Any]) -> dict[str, Any]:
    account = {
        "id": row["account_id"],
        **{
            k: row[k]
            for k in ("display_name", "first_name", "last_name", "username", "phone_number", "telegram_id")
        },
    }
    return {
        "id": row["id"],
        "bd_account_id": row["bd_account_id"],
        "telegram_chat_id": row["telegram_chat_id"],
        "title": row["title"],
        "peer_type": row["peer_type"],
        "account_name": account_display_name(account),
    }


@endpoint(
    bp,
    "GET",
    "/group-sources/contacts",
    summary="Contacts who wrote in a group of one of the organization's accounts",
    query=GroupContactsQuery,
    response=GroupContacts,
    errors=(404,),
)
async def group_source_contacts(query: GroupContactsQuery) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> list[uuid.UUID] | None:
        if not await db.account_exists(conn, who.organization_id, query.bdAccountId):
            return None
        return await db.group_contact_ids(conn, who.organization_id, query.bdAccountId, query.telegramChatId)

    ids = await services().store.run(run)
    if ids is None:
        raise not_found("Account not found")
    return {"contactIds": ids}


@endpoint(
    bp,
    "GET",
    "/telegram-source-keywords",
    summary="Search keywords contacts were found by, sorted",
    response={"type": "array", "items": {"type": "string"}},
)
async def list_source_keywords() -> list[str]:
    who = ident.current()
    return await services().store.run(db.source_keywords, who.organization_id, transaction=False)


@endpoint(
    bp,
    "GET",
    "/telegram-source-groups",
    summary="Telegram chats contacts were found in",
    response=list[TelegramSourceGroup],
)
async def list_source_groups() -> list[dict[str, Any]]:
    who = ident.current()
    rows = await services().store.run(db.source_groups, who.organization_id, transaction=False)
    out = []
    for r in rows:
        item: dict[str, Any] = {"bdAccountId": r["bd_account_id"], "telegramChatId": r["telegram_chat_id"]}
        if r["telegram_chat_title"] is not None:
            item["telegramChatTitle"] = r["telegram_chat_title"]
        out.append(item)
    return out


@endpoint(
    bp,
    "GET",
    "/contacts-for-picker",
    summary="Contacts reachable on Telegram, for the audience picker",
    query=PickerQuery,
    response=list[PickerContact],
)
async def contacts_for_picker(query: PickerQuery) -> list[dict[str, Any]]:
    who = ident.current()
    rows = await services().store.run(
        db.picker_contacts,
        who.organization_id,
        limit=query.effective_limit(),
        outreach_status=query.outreachStatus,
        search=query.search,
        source_keyword=query.sourceKeyword,
        source_chat_id=query.sourceTelegramChatId,
        source_account_id=query.sourceBdAccountId,
        transaction=False,
    )
    return [dict(r.items()) for r in rows]


@endpoint(
    bp,
    "POST",
    "/<id>/audience/conflicts",
    summary="Where these contacts already take part in the organization's campaigns",
    body=ConflictsBody,
    response=Conflicts,
    errors=(404,),
    write=False,
)
async def audience_conflicts(id: uuid.UUID, body: ConflictsBody) -> dict[str, Any]:
    who = ident.current()

    async def run(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        await campaign_or_404(conn, who.organization_id, id)
        await require_contacts(conn, who.organization_id, body.contactIds)
        return await db.conflicts(conn, who.organization_id, id, body.contactIds)

    rows = await services().store.run(run)
    return {"conflicts": [dict(r.items()) for r in rows]}
