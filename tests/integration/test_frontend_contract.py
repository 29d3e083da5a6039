"""The original web front end's participant calls (``frontend/lib/api/campaigns.ts`` at ``facf5a5``,
original-v1 §2.9), replayed as it makes them (axios: JSON bodies, its default ``Accept``) against a
campaign that has run through the real dispatcher, a reply and a pause. Every response must carry each
field the front end reads, with a JSON type its TypeScript interface allows.

A shape maps a field to its allowed types: JSON type names, ``iso`` for a timestamp string the front end
hands to ``new Date`` (the API's UTC form), and ``absent`` for a TypeScript optional (``field?:``).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import attrs
import trio

from tests.factories import Org
from tests.integration.api_world import build_campaign, seed_crm
from tests.integration.dispatch_helpers import Env, reply_event, start_env

STRING, NUMBER, BOOLEAN, NULL, OBJECT, ARRAY = "string", "number", "boolean", "null", "object", "array"
ISO, ABSENT = "iso", "absent"
Shape = dict[str, set[str]]

# What axios sends unless told otherwise.
AXIOS_ACCEPT = "application/json, text/plain, */*"
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# interface CampaignParticipantRow (the participants page).
PARTICIPANT_ROW: Shape = {
    "participant_id": {STRING},
    "contact_id": {STRING},
    "contact_name": {STRING},
    "conversation_id": {STRING, NULL},
    "bd_account_id": {STRING, NULL},
    "bd_account_display_name": {STRING, NULL, ABSENT},
    "channel_id": {STRING, NULL},
    "status_phase": {STRING},
    "last_error": {STRING, NULL, ABSENT},
    "pipeline_stage_name": {STRING, NULL},
    "sent_at": {ISO, NULL},
    "replied_at": {ISO, NULL},
    "shared_chat_created_at": {ISO, NULL},
    "current_step": {NUMBER, ABSENT},
    "next_send_at": {ISO, NULL, ABSENT},
    "sequence_total_steps": {NUMBER, ABSENT},
    "read_at": {ISO, NULL, ABSENT},
}
# interface CampaignParticipantAccount.
PARTICIPANT_ACCOUNT: Shape = {"id": {STRING}, "displayName": {STRING}}
# interface CampaignParticipantExportRow: the front end builds its CSV from exactly these.
EXPORT_ROW: Shape = {
    "first_name": {STRING, NULL},
    "last_name": {STRING, NULL},
    "username": {STRING, NULL},
    "phone": {STRING, NULL},
    "email": {STRING, NULL},
    "status": {STRING},
    "display_status": {STRING},
    "first_sent_at": {ISO, NULL},
    "sender_account": {STRING, NULL},
    "is_read": {BOOLEAN},
    "replied_at": {ISO, NULL},
    "first_reply_text": {STRING, NULL},
}
# interface AddCampaignParticipantsResult.
ADD_RESULT: Shape = {
    "inserted": {NUMBER},
    "requested": {NUMBER},
    "eligibleWithTelegram": {NUMBER},
    "campaignStatus": {STRING},
}
# removeCampaignParticipant and the bulk removal read { deleted: number }.
DELETED: Shape = {"deleted": {NUMBER}}


def json_type(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return ARRAY if isinstance(value, list) else OBJECT


def _is_iso(value: Any) -> bool:
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return False
    dt.datetime.fromisoformat(value)
    return True


def mismatches(shape: Shape, body: Any, *, exact: bool = False, where: str = "") -> list[str]:
    """Where ``body`` breaks ``shape``: missing fields, wrong types and, with ``exact``, extra fields."""
    if not isinstance(body, dict):
        return [f"{where or '(root)'}: {json_type(body)} where the front end reads an object"]
    out = []
    for field, allowed in shape.items():
        if field not in body:
            if ABSENT not in allowed:
                out.append(f"{where}{field}: missing")
            continue
        value = body[field]
        kind = json_type(value)
        if kind in allowed or (ISO in allowed and _is_iso(value)):
            continue
        out.append(f"{where}{field}: {kind} {value!r}, the front end reads {sorted(allowed - {ABSENT})}")
    if exact:
        out += [f"{where}{field}: not read by the front end" for field in body if field not in shape]
    return out


def mismatches_of_rows(shape: Shape, body: Any, *, exact: bool = False) -> list[str]:
    if not isinstance(body, list):
        return [f"(root): {json_type(body)} where the front end reads an array"]
    return [m for i, row in enumerate(body) for m in mismatches(shape, row, exact=exact, where=f"{i}.")]


@attrs.define
class FrontEnd:
    """The front end's calls, named as in campaigns.ts, made as axios makes them."""

    client: Any
    org: Org

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        headers = {**self.org.headers(), "Accept": AXIOS_ACCEPT}
        response = await self.client.open(
            path, method=method, json=json, headers=headers, query_string=params
        )
        data = await response.get_data()
        # axios parses a JSON body whatever the status; anything else reaches the caller as text.
        if response.mimetype == "application/json":
            return response.status_code, await response.get_json()
        return response.status_code, data.decode("utf-8")

    async def fetchCampaignParticipantRows(self, campaign_id: str, **params: Any) -> tuple[int, Any]:
        return await self.request(
            "GET", f"/api/campaigns/{campaign_id}/participants", params={**params, "limit": 50}
        )

    async def fetchCampaignParticipantAccounts(self, campaign_id: str) -> tuple[int, Any]:
        return await self.request("GET", f"/api/campaigns/{campaign_id}/participant-accounts")

    async def fetchCampaignParticipantsExport(self, campaign_id: str) -> tuple[int, Any]:
        return await self.request("GET", f"/api/campaigns/{campaign_id}/participants/export")

    async def addCampaignParticipants(self, campaign_id: str, contact_ids: list[str]) -> tuple[int, Any]:
        return await self.request(
            "POST", f"/api/campaigns/{campaign_id}/participants/add", json={"contactIds": contact_ids}
        )

    async def removeCampaignParticipant(self, campaign_id: str, contact_id: str) -> tuple[int, Any]:
        return await self.request("DELETE", f"/api/campaigns/{campaign_id}/participants/{contact_id}")

    async def remove_all_participants(self, campaign_id: str) -> tuple[int, Any]:
        """The front end's ``DELETE /:id/participants`` (original-v1 §2.9: it reads ``{deleted}``)."""
        return await self.request("DELETE", f"/api/campaigns/{campaign_id}/participants")


@attrs.define
class Ran:
    env: Env
    front: FrontEnd
    campaign: str
    contacts: list[uuid.UUID]  # in the campaign: the replier first, the failing one last
    added: tuple[int, Any]  # what addCampaignParticipants answered


async def _count(store: Any, campaign: str, status: str) -> int:
    return await store.fetchval(
        "SELECT count(*) FROM campaign_participants WHERE campaign_id = $1 AND status = $2",
        uuid.UUID(campaign),
        status,
    )


async def _until(store: Any, campaign: str, status: str, count: int, within: float = 20) -> None:
    with trio.fail_after(within):
        while await _count(store, campaign, status) != count:
            await trio.sleep(0.05)


async def _ran(nursery: trio.Nursery, store: Any, org: Org) -> Ran:
    """A campaign of five contacts that ran: four sent to, one refused by Messaging, one replied (the CRM
    stored the reply), then paused."""
    env = await start_env(nursery, store, org)
    front = FrontEnd(env.client, org)
    crm = await seed_crm(org)
    env.sandbox.state.update_config({"recipient_errors": {crm.telegram_ids[3]: "privacy"}})

    async def call(method: str, path: str, json_body: Any = None, *, expect: int | None = None, **_: Any):
        status, body = await front.request(method, path, json=json_body)
        assert expect is None or status == expect, (method, path, status, body)
        return status, body

    ids = await build_campaign(call, crm)
    extra = await org.contact(first_name="Mia", username="mia_k", telegram_id="555000222", email="mia@x.io")
    added = await front.addCampaignParticipants(ids.id, [str(extra)])
    await call("POST", f"{ids.url}/start", expect=200)
    await env.wait_sent(4)
    await _until(store, ids.id, "failed", 1)
    replier = await store.fetchrow(
        "SELECT * FROM campaign_participants WHERE campaign_id = $1 AND contact_id = $2",
        uuid.UUID(ids.id),
        crm.contacts[0],
    )
    await store.execute(
        "INSERT INTO messages (organization_id, contact_id, bd_account_id, channel, channel_id, direction, "
        "content, status) VALUES ($1, $2, $3, 'telegram', $4, 'inbound', 'Tell me more', 'delivered')",
        org.id,
        replier["contact_id"],
        replier["bd_account_id"],
        replier["channel_id"],
    )
    event = reply_event(
        org,
        contact_id=replier["contact_id"],
        account_id=replier["bd_account_id"],
        channel_id=replier["channel_id"],
    )
    await env.api("POST", "/api/campaigns/events", event)
    await _until(store, ids.id, "replied", 1)
    await call("POST", f"{ids.url}/pause", expect=200)
    with trio.fail_after(20):
        while await store.fetchval(
            "SELECT count(*) FROM campaign_sends WHERE campaign_id = $1 AND status IN ('sending', 'in_doubt')",
            uuid.UUID(ids.id),
        ):
            await trio.sleep(0.05)
    return Ran(env, front, ids.id, [*crm.contacts[:3], extra, crm.contacts[3]], added)


async def test_frontend__participant_rows_accounts_and_export_have_the_types_it_reads(nursery, store, org):
    ran = await _ran(nursery, store, org)
    front, cid = ran.front, ran.campaign

    status, rows = await front.fetchCampaignParticipantRows(cid)
    assert status == 200 and len(rows) == 5
    assert mismatches_of_rows(PARTICIPANT_ROW, rows) == []
    status, rows = await front.fetchCampaignParticipantRows(cid, filter="replied")
    assert status == 200 and len(rows) == 1
    assert mismatches_of_rows(PARTICIPANT_ROW, rows) == []

    status, accounts = await front.fetchCampaignParticipantAccounts(cid)
    assert status == 200 and len(accounts) == 2
    assert mismatches_of_rows(PARTICIPANT_ACCOUNT, accounts) == []

    status, export = await front.fetchCampaignParticipantsExport(cid)
    assert status == 200
    assert mismatches_of_rows(EXPORT_ROW, export, exact=True) == []
    assert len(export) == 5
    # Each type seen at least once with a value, not only as null.
    seen = {(field, json_type(row[field])) for row in export for field in EXPORT_ROW}
    for field in ("first_sent_at", "replied_at", "sender_account", "first_reply_text", "email", "username"):
        assert (field, STRING) in seen, field
    assert ("is_read", BOOLEAN) in seen
    by_status = sorted((r["status"], r["display_status"]) for r in export)
    assert by_status == [
        ("failed", "failed"),
        ("replied", "replied"),
        ("sent", "sent"),
        ("sent", "sent"),
        ("sent", "sent"),
    ]
    replied = next(r for r in export if r["status"] == "replied")
    assert (replied["first_reply_text"], replied["is_read"]) == ("Tell me more", True)


async def test_frontend__removing_participants_answers_what_it_reads(nursery, store, org):
    ran = await _ran(nursery, store, org)
    front, cid = ran.front, ran.campaign
    status, added = ran.added
    assert (status, mismatches(ADD_RESULT, added)) == (200, [])
    assert added == {"inserted": 1, "requested": 1, "eligibleWithTelegram": 1, "campaignStatus": "draft"}

    status, removed = await front.removeCampaignParticipant(cid, str(ran.contacts[1]))
    assert (status, mismatches(DELETED, removed)) == (200, [])
    assert removed == {"deleted": 1}
    status, removed = await front.removeCampaignParticipant(cid, str(ran.contacts[1]))
    assert (status, removed) == (200, {"deleted": 0})

    status, removed = await front.remove_all_participants(cid)
    assert (status, mismatches(DELETED, removed)) == (200, [])
    assert removed == {"deleted": 4}
    status, rows = await front.fetchCampaignParticipantRows(cid)
    assert (status, rows) == (200, [])
