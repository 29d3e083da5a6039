"""Reporting: stats, participant accounts, analytics, participants, sends, export (original-v1 §2.8,
§2.9). All 404 "Campaign not found" for a campaign that is missing, of another organization or deleted.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import asyncpg
from quart import Blueprint, Response, request
from werkzeug.datastructures import MIMEAccept

from campaignsvc.domain.audience_import import format_record, spreadsheet_safe
from campaignsvc.domain.reporting import phase_of
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import Services, services
from campaignsvc.http.jsonenc import dumps, iso
from campaignsvc.http.models.common import Page
from campaignsvc.http.models.reporting import (
    CSV_SCHEMA,
    EXPORT_COLUMNS,
    PARTICIPANTS_DEFAULT_LIMIT,
    PARTICIPANTS_MAX_LIMIT,
    SENDS_DEFAULT_LIMIT,
    SENDS_MAX_LIMIT,
    Analytics,
    AnalyticsQuery,
    CampaignParticipantExportRow,
    ExportQuery,
    ParticipantAccount,
    ParticipantRow,
    ParticipantsQuery,
    SendsPage,
    Stats,
    contact_name,
    export_body,
    export_json_row,
    send_body,
    stats_body,
    waiting_body,
)
from campaignsvc.http.presenters import account_display_name
from campaignsvc.http.scope import in_campaign
from campaignsvc.storage import campaigns as campaigns_db
from campaignsvc.storage import reporting as db
from campaignsvc.storage.store import Store
from campaignsvc.usecases import waiting
from campaignsvc.usecases.common import Context

bp = Blueprint("reporting", __name__, url_prefix="/api/campaigns")

EXPORT_CHUNK = 2000


async def _read(campaign_id: uuid.UUID, fn: Any) -> Any:
    """``fn(conn, org)`` after checking the campaign, with the reporting session settings."""
    return await in_campaign(campaign_id, fn, prepare=db.tune)


def _waiting_inputs(svc: Services | None = None) -> waiting.Inputs:
    """The waiting use cases' inputs as of now, each account as its running limiter paces it."""
    svc = svc or services()
    return waiting.Inputs(Context.current(svc.settings), svc.supervisor.pacing_view, account_display_name)


# --- stats --------------------------------------------------------------------------------------------


@endpoint(bp, "GET", "/<id>/stats", summary="Campaign statistics", response=Stats, errors=(404,))
async def stats(id: uuid.UUID) -> dict[str, Any]:
    svc = services()
    org = ident.current().organization_id

    async def run(conn: asyncpg.Connection, org: uuid.UUID) -> dict[str, Any]:
        body = stats_body(await db.participant_counts(conn, org, id), await db.outcome_summary(conn, org, id))
        return body | {"repliesByIntent": await db.replies_by_intent(conn, org, id)}

    async def count_waiting() -> tuple[dict[str, int], dt.datetime]:
        inputs = _waiting_inputs(svc)  # taken when the count runs, in the background too
        return await svc.store.run(waiting.counts, org, id, inputs), inputs.ctx.now

    body = await _read(id, run)
    counts, as_of = await svc.snapshots.get(("waiting", id), count_waiting)
    return body | {"waiting": counts, "waitingAsOf": as_of}


# --- accounts, analytics ------------------------------------------------------------------------------


def _account_names(accounts: Mapping[uuid.UUID, Any], ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Display names; an account not of this organization shows only its id."""
    return {i: account_display_name(accounts[i]) if i in accounts else str(i) for i in ids}


@endpoint(
    bp,
    "GET",
    "/<id>/participant-accounts",
    summary="BD accounts the participants are assigned to",
    response=list[ParticipantAccount],
    errors=(404,),
)
async def participant_accounts(id: uuid.UUID) -> list[dict[str, Any]]:
    async def run(conn: asyncpg.Connection, org: uuid.UUID) -> dict[uuid.UUID, str]:
        ids = await db.participant_account_ids(conn, org, id)
        return _account_names(await campaigns_db.bd_accounts_by_id(conn, org, ids), ids)

    names = await _read(id, run)
    ordered = sorted(names.items(), key=lambda item: (item[1].casefold(), str(item[0])))
    return [{"id": i, "displayName": name} for i, name in ordered]


@endpoint(
    bp,
    "GET",
    "/<id>/analytics",
    summary="Sends, replies and sends per account by day",
    query=AnalyticsQuery,
    response=Analytics,
    errors=(404,),
)
async def analytics(id: uuid.UUID, query: AnalyticsQuery) -> dict[str, Any]:
    async def run(conn: asyncpg.Connection, org: uuid.UUID) -> dict[str, Any]:
        sends, replies, by_account = await db.analytics(conn, org, id, query.span)
        ids = list(dict.fromkeys(r["account_id"] for r in by_account))
        names = _account_names(await campaigns_db.bd_accounts_by_id(conn, org, ids), ids)
        return {
            "sendsByDay": [{"date": r["day"], "sends": r["n"]} for r in sends],
            "repliedByDay": [{"date": r["day"], "replied": r["n"]} for r in replies],
            "sendsByAccountByDay": [
                {
                    "date": r["day"],
                    "accountId": r["account_id"],
                    "accountDisplayName": names[r["account_id"]],
                    "sends": r["n"],
                }
                for r in by_account
            ],
        }

    return await _read(id, run)


# --- participants -------------------------------------------------------------------------------------


def _participant(
    row: Mapping[str, Any], names: Mapping[uuid.UUID, str], steps: int, wait: waiting.Wait | None
) -> dict[str, Any]:
    sent = row["first_sent_at"] is not None
    account = row["bd_account_id"]
    return {
        "participant_id": row["participant_id"],
        "contact_id": row["contact_id"],
        "contact_name": contact_name(row),
        "username": row["username"],
        "telegram_id": row["telegram_id"],
        "conversation_id": row["conversation_id"],
        "bd_account_id": account,
        "bd_account_display_name": names.get(account) if account else None,
        "channel_id": row["channel_id"],
        "status_phase": phase_of(row["status"], sent, bool(row["read_mark"] or row["latest_read_at"])),
        "last_error": row["last_error"],
        "pipeline_stage_name": row["pipeline_stage_name"],
        "sent_at": row["first_sent_at"],
        "replied_at": row["replied_at"],
        "read_at": row["latest_read_at"],
        "shared_chat_created_at": row["shared_chat_created_at"],
        "current_step": row["current_step"],
        "next_send_at": None if row["status"] == "failed" else row["next_send_at"],
        "sequence_total_steps": steps,
        "waiting": waiting_body(wait),
        "reply_intent": row["reply_intent"],
        "auto_replied_at": row["auto_replied_at"],
    }


async def _rows(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, ids: Sequence[uuid.UUID], **kw: Any
) -> tuple[list[asyncpg.Record], dict[uuid.UUID, str]]:
    rows = await db.participant_rows(conn, org, campaign_id, ids, **kw)
    accounts = list({r["bd_account_id"] for r in rows if r["bd_account_id"]})
    return rows, _account_names(await campaigns_db.bd_accounts_by_id(conn, org, accounts), accounts)


@endpoint(
    bp,
    "GET",
    "/<id>/participants",
    summary="Participants page (plain array; latest first send first)",
    query=ParticipantsQuery,
    response=list[ParticipantRow],
    errors=(404,),
)
async def participants(id: uuid.UUID, query: ParticipantsQuery) -> list[dict[str, Any]]:
    limit, offset = query.window(PARTICIPANTS_DEFAULT_LIMIT, PARTICIPANTS_MAX_LIMIT)
    sent_from, sent_before = query.sent_window()

    inputs = _waiting_inputs()

    async def run(conn: asyncpg.Connection, org: uuid.UUID) -> list[dict[str, Any]]:
        only = (
            await waiting.matching(conn, org, id, query.waiting, inputs)
            if query.waiting is not None
            else None
        )
        ids = await db.participant_ids(
            conn,
            org,
            id,
            filter=query.chosen(),
            bd_account_id=query.bdAccountId,
            sent_from=sent_from,
            sent_before=sent_before,
            limit=limit,
            offset=offset,
            reply_intent=query.replyIntent,
            where=only.sql if only is not None else None,
            where_args=only.args if only is not None else (),
        )
        rows, names = await _rows(conn, org, id, ids)
        steps = await db.step_count(conn, org, id)
        waits = await waiting.explain_rows(conn, org, id, ids, inputs)
        return [_participant(r, names, steps, waits.get(r["participant_id"])) for r in rows]

    return await _read(id, run)


# --- sends --------------------------------------------------------------------------------------------


@endpoint(
    bp,
    "GET",
    "/<id>/sends",
    summary="The send ledger, oldest first",
    query=Page,
    response=SendsPage,
    errors=(404,),
)
async def sends(id: uuid.UUID, query: Page) -> dict[str, Any]:
    limit, offset = query.window(SENDS_DEFAULT_LIMIT, SENDS_MAX_LIMIT)

    async def run(conn: asyncpg.Connection, org: uuid.UUID) -> tuple[dict[str, int], list[asyncpg.Record]]:
        return await db.send_counts(conn, org, id), await db.sends_page(conn, org, id, limit, offset)

    counts, rows = await _read(id, run)
    total = sum(counts.values())
    return {
        "data": [send_body(r) for r in rows],
        "pagination": {
            "page": query.page,
            "limit": limit,
            "total": total,
            "sentTotal": counts.get("sent", 0),
            "totalPages": max(1, math.ceil(total / limit)),
        },
    }


# --- export -------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return str(value)


async def _export_rows(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    campaign_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    inputs: waiting.Inputs,
) -> tuple[list[asyncpg.Record], dict[uuid.UUID, str], dict[uuid.UUID, waiting.Wait | None]]:
    rows, names = await _rows(conn, org, campaign_id, ids, reply_text=True)
    return rows, names, await waiting.explain_rows(conn, org, campaign_id, ids, inputs)


async def _export_stream(
    store: Store, org: uuid.UUID, campaign_id: uuid.UUID, ids: bytes, as_json: bool, inputs: waiting.Inputs
) -> AsyncIterator[bytes]:
    """The export, a chunk of participants per transaction; ``ids`` (16 bytes each) were fixed first. Why
    each waits is told as of the export's start."""
    yield b"[" if as_json else ("\ufeff" + format_record(EXPORT_COLUMNS)).encode()
    step, emitted = EXPORT_CHUNK * 16, False
    for start in range(0, len(ids), step):
        chunk = [uuid.UUID(bytes=ids[i : i + 16]) for i in range(start, min(start + step, len(ids)), 16)]
        rows, names, waits = await store.run(_export_rows, org, campaign_id, chunk, inputs)
        records = [export_body(r, names, waits.get(r["participant_id"])) for r in rows]
        if as_json and records:
            yield (("," if emitted else "") + ",".join(dumps(export_json_row(r)) for r in records)).encode()
            emitted = True
        elif not as_json:
            yield "".join(format_record(_cell(r[c]) for c in EXPORT_COLUMNS) for r in records).encode()
    if as_json:
        yield b"]"


def _prefers_csv() -> bool:
    """The client ranks text/csv above application/json. Media-type parameters do not count here
    (``text/csv; charset=utf-8`` asks for the CSV); no Accept, ``*/*`` or a tie is JSON."""
    accept = MIMEAccept([(value.split(";")[0].strip(), q) for value, q in request.accept_mimetypes])
    return accept.quality("text/csv") > accept.quality("application/json")


@endpoint(
    bp,
    "GET",
    "/<id>/participants/export",
    summary="Every participant: JSON rows for the front end, or a CSV with Accept: text/csv or ?format=csv",
    query=ExportQuery,
    response=list[CampaignParticipantExportRow],
    alternatives={"text/csv": CSV_SCHEMA},
    errors=(404,),
)
async def export_participants(id: uuid.UUID, query: ExportQuery) -> Response:
    as_csv = query.format == "csv" if query.format else _prefers_csv()
    store = services().store

    async def run(conn: asyncpg.Connection, org: uuid.UUID) -> bytes:
        return await db.all_participant_ids(conn, org, id)

    ids = await _read(id, run)
    body = _export_stream(
        store, ident.current().organization_id, id, ids, as_json=not as_csv, inputs=_waiting_inputs()
    )
    if not as_csv:
        response = Response(body, content_type="application/json")
    else:
        response = Response(
            body,
            content_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="campaign-{str(id)[:8]}-participants.csv"'
            },
        )
    # A large export outgrows the server's response timeout, which would cut the body mid-stream; it ends
    # when its rows do, or when the client goes away.
    response.timeout = None
    return response
