"""Reporting over the real app and database (original-v1 §2.8, §2.9). Participants and ledger rows are
written with SQL here, as the dispatcher writes them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid

import attrs
import trio

from campaignsvc.storage import migrate
from campaignsvc.storage import reporting as reporting_db
from campaignsvc.storage.store import Store
from tests.factories import Org, make_org

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@attrs.define
class Scenario:
    """A campaign and helpers that write its participants, ledger, messages and conversations."""

    client: object
    org: Org
    store: object
    id: uuid.UUID
    order: int = 0

    @property
    def url(self) -> str:
        return f"/api/campaigns/{self.id}"

    async def get(self, path: str = "", role: str = "owner", **headers: str):
        response = await self.client.get(self.url + path, headers={**self.org.headers(role), **headers})
        return response.status_code, await response.get_json()

    async def sync_reads(self) -> None:
        """What the read-receipts actor does for this campaign in the background."""
        cursor = None
        while True:
            cursor = await self.store.run(reporting_db.sync_read_marks, self.org.id, self.id, cursor, 2000)
            if cursor is None:
                return

    async def participant(self, contact: uuid.UUID | None = None, **columns) -> uuid.UUID:
        contact = contact or (await self.org.contacts(1))[0]
        self.order += 1
        columns = {"contact_id": contact, "campaign_id": self.id, "enqueue_order": self.order, **columns}
        names = list(columns)
        values = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        return await self.store.fetchval(
            f"INSERT INTO campaign_participants ({', '.join(names)}) VALUES ({values}) RETURNING id",
            *columns.values(),
        )

    async def message(self, status: str = "delivered", **columns) -> uuid.UUID:
        columns = {
            "organization_id": self.org.id,
            "channel": "telegram",
            "channel_id": "1",
            "direction": "outbound",
            "content": "Hello",
            "status": status,
            **columns,
        }
        names = list(columns)
        values = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        return await self.store.fetchval(
            f"INSERT INTO messages ({', '.join(names)}) VALUES ({values}) RETURNING id", *columns.values()
        )

    async def send(self, participant: uuid.UUID, step: int, sent_at: dt.datetime, status="sent", **columns):
        columns = {
            "campaign_participant_id": participant,
            "campaign_id": self.id,
            "sequence_step": step,
            "sent_at": sent_at,
            "status": status,
            "idempotency_key": f"campaign:{self.id}:participant:{participant}:step:{step}",
            **columns,
        }
        names = list(columns)
        values = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        return await self.store.fetchval(
            f"INSERT INTO campaign_sends ({', '.join(names)}) VALUES ({values}) RETURNING id",
            *columns.values(),
        )


async def _scenario(client, org, store, name="Report") -> Scenario:
    response = await client.post("/api/campaigns", json={"name": name}, headers=org.headers())
    assert response.status_code == 201
    return Scenario(client, org, store, uuid.UUID((await response.get_json())["id"]))


async def _funnel(client, org, store) -> tuple[Scenario, dict[str, uuid.UUID]]:
    """One participant in each phase; p4 replied and led to a shared chat won for 100.50."""
    s = await _scenario(client, org, store)
    account = await org.bd_account(display_name="Sales 1")
    p: dict[str, uuid.UUID] = {}
    p["waiting"] = await s.participant(status="pending", next_send_at=T0 + dt.timedelta(days=9))
    sent_rows = {"sent": "delivered", "read": "read", "replied": "read"}
    for i, phase in enumerate(("sent", "read", "replied")):
        at = T0 + dt.timedelta(hours=i)
        status = "replied" if phase == "replied" else "sent"
        p[phase] = await s.participant(
            status=status,
            bd_account_id=account,
            channel_id=f"70{i}",
            last_sent_at=at,
            replied_at=at + dt.timedelta(hours=2) if status == "replied" else None,
        )
        msg = await s.message(sent_rows[phase], bd_account_id=account, channel_id=f"70{i}")
        await s.send(p[phase], 0, at, message_id=msg, bd_account_id=account)
    p["completed"] = await s.participant(status="completed", last_sent_at=T0 + dt.timedelta(hours=5))
    await s.send(p["completed"], 0, T0 + dt.timedelta(hours=4))
    await s.send(p["completed"], 1, T0 + dt.timedelta(hours=5))
    p["skipped"] = await s.participant(status="completed")
    p["failed"] = await s.participant(status="failed", last_error="PRIVACY_RESTRICTED", failed_at=T0)
    await s.send(p["failed"], 0, T0 + dt.timedelta(hours=6), status="failed", error_class="recipient")
    await s.send(p["waiting"], 0, T0 + dt.timedelta(hours=7), status="deferred")
    replied_contact = await store.fetchval(
        "SELECT contact_id FROM campaign_participants WHERE id = $1", p["replied"]
    )
    await store.execute(
        "INSERT INTO conversations (organization_id, bd_account_id, channel_id, contact_id, campaign_id, "
        "shared_chat_created_at, won_at, revenue_amount) VALUES ($1, $2, '702', $3, $4, $5, $6, 100.50)",
        org.id,
        account,
        replied_contact,
        s.id,
        T0 + dt.timedelta(hours=12),
        T0 + dt.timedelta(hours=22),
    )
    await s.sync_reads()
    return s, p


# --- stats --------------------------------------------------------------------------------------------


async def test_stats__full_shape_of_a_funnel(client, org, store):
    s, _ = await _funnel(client, org, store)
    status, body = await s.get("/stats")
    assert status == 200
    as_of = dt.datetime.fromisoformat(body.pop("waitingAsOf").replace("Z", "+00:00"))
    assert abs(dt.datetime.now(UTC) - as_of) < dt.timedelta(seconds=10)
    assert body == {
        "total": 7,
        "byStatus": {"pending": 1, "sent": 2, "replied": 1, "completed": 2, "failed": 1},
        "byPhase": {
            "waiting": 1,
            "sent": 1,
            "read": 1,
            "replied": 1,
            "completed": 1,
            "skipped": 1,
            "failed": 1,
        },
        "error_summary": {"count": 1, "sample": "PRIVACY_RESTRICTED"},
        "totalSends": 5,
        "contactsSent": 4,
        "conversionRate": 14,
        "firstSendAt": iso(T0),
        "lastSendAt": iso(T0 + dt.timedelta(hours=5)),
        "total_sent": 4,
        "total_read": 2,
        "total_replied": 1,
        "total_converted_to_shared_chat": 1,
        "read_rate": 50.0,
        "reply_rate": 50.0,
        "conversion_rate": 100.0,
        "avg_time_to_shared_hours": 10.0,
        "total_won": 1,
        "total_lost": 0,
        "total_revenue": 100.5,
        "win_rate": 100.0,
        "revenue_per_sent": 25.13,
        "revenue_per_reply": 100.5,
        "avg_revenue_per_won": 100.5,
        "avg_time_to_won_hours": 20.0,
        # The pending one has no account; the two sent ones have no next send yet.
        "waiting": {"account_inactive": 1, "queued": 2},
        "repliesByIntent": {"unknown": 1},  # written without a reading, as before migration 0011
    }


async def test_stats__empty_campaign(client, org, store):
    s = await _scenario(client, org, store)
    status, body = await s.get("/stats")
    assert status == 200
    assert body["total"] == 0 and body["byStatus"] == {} and "error_summary" not in body
    assert set(body["byPhase"].values()) == {0}
    assert (body["firstSendAt"], body["avg_time_to_shared_hours"], body["read_rate"]) == (None, None, 0)


async def test_stats__error_sample_falls_back_to_the_original_metadata(client, org, store):
    s = await _scenario(client, org, store)
    await s.participant(status="failed", metadata={"lastError": "USER_DEACTIVATED"})
    await s.participant(status="failed")
    _, body = await s.get("/stats")
    assert body["error_summary"] == {"count": 2, "sample": "USER_DEACTIVATED"}


async def test_stats__read_receipts_are_picked_up_in_batches(client, org, store):
    s = await _scenario(client, org, store)
    ids = []
    for i in range(5):
        ids.append(await s.participant(status="sent", last_sent_at=T0))
        await s.send(ids[-1], 0, T0, message_id=await s.message("read" if i % 2 == 0 else "delivered"))

    async def one_pass(after):
        return await store.run(reporting_db.sync_read_marks, org.id, s.id, after, 2)

    cursor = await one_pass(None)
    assert cursor is not None
    marked = await store.fetchval("SELECT count(*) FROM campaign_participants WHERE read_at IS NOT NULL")
    assert marked <= 2
    cursor = await one_pass(cursor)
    assert await one_pass(cursor) is None  # the third pass reaches the end
    assert await store.fetchval("SELECT count(*) FROM campaign_participants WHERE read_at IS NOT NULL") == 3
    _, body = await s.get("/stats")
    assert (body["total_read"], body["byPhase"]["read"], body["byPhase"]["sent"]) == (3, 3, 2)


# --- participant accounts, analytics ------------------------------------------------------------------


async def test_participant_accounts__distinct_and_ordered_by_name(client, org, store):
    s = await _scenario(client, org, store)
    zed = await org.bd_account(display_name="Zed")
    amy = await org.bd_account(display_name=" ", first_name="Amy", last_name="B")
    for account in (zed, amy, zed, None):
        await s.participant(bd_account_id=account)
    status, body = await s.get("/participant-accounts")
    assert (status, body) == (
        200,
        [{"id": str(amy), "displayName": "Amy B"}, {"id": str(zed), "displayName": "Zed"}],
    )


async def test_analytics__by_day_and_account_with_dates_as_midnight_timestamps(client, org, store):
    s = await _scenario(client, org, store)
    account = await org.bd_account(display_name="Sales 1")
    now = dt.datetime.now(UTC)
    today, yesterday = now.replace(hour=0, minute=30, second=0, microsecond=0), now - dt.timedelta(days=1)
    a = await s.participant(bd_account_id=account, status="sent", last_sent_at=today)
    b = await s.participant(status="replied", last_sent_at=yesterday, replied_at=today)
    await s.send(a, 0, today, bd_account_id=account)
    await s.send(a, 1, today + dt.timedelta(minutes=1), bd_account_id=account)
    await s.send(b, 0, yesterday)  # an original ledger row: no account on the row, none on the participant
    await s.send(a, 2, now - dt.timedelta(days=30), bd_account_id=account)
    status, body = await s.get("/analytics")
    day = today.strftime("%Y-%m-%dT00:00:00.000Z")
    before = yesterday.strftime("%Y-%m-%dT00:00:00.000Z")
    assert status == 200
    assert body == {
        "sendsByDay": [{"date": before, "sends": 1}, {"date": day, "sends": 1}],
        "repliedByDay": [{"date": day, "replied": 1}],
        "sendsByAccountByDay": [
            {"date": day, "accountId": str(account), "accountDisplayName": "Sales 1", "sends": 2}
        ],
    }
    _, one_day = await s.get("/analytics?days=1")
    assert one_day["sendsByDay"] == [{"date": day, "sends": 1}]
    _, wide = await s.get("/analytics?days=365")  # lowered to 90, as the original clamped
    assert len(wide["sendsByDay"]) == 3


async def test_analytics__bad_days_are_400(client, org, store):
    s = await _scenario(client, org, store)
    for value in ("abc", "0", "-3", "1.5"):
        status, body = await s.get(f"/analytics?days={value}")
        assert (status, body["code"], body["details"][0]["path"]) == (400, "VALIDATION", "days"), value


# --- participants -------------------------------------------------------------------------------------


async def test_participants__row_shape_and_phases(client, org, store):
    s, p = await _funnel(client, org, store)
    pipeline, stages = await org.pipeline()
    replied_contact = await store.fetchval(
        "SELECT contact_id FROM campaign_participants WHERE id = $1", p["replied"]
    )
    lead = await store.fetchval(
        "INSERT INTO leads (organization_id, contact_id, pipeline_id, stage_id) VALUES ($1, $2, $3, $4) RETURNING id",
        org.id,
        replied_contact,
        pipeline,
        stages[1],
    )
    await store.execute("UPDATE conversations SET lead_id = $1", lead)
    await store.execute(
        "UPDATE contacts SET username = 'rep_ly', display_name = 'Rita R' WHERE id = $1", replied_contact
    )
    template = await store.fetchval(
        "INSERT INTO campaign_templates (organization_id, campaign_id, name, channel, content) "
        "VALUES ($1, $2, 't', 'telegram', 'Hi') RETURNING id",
        org.id,
        s.id,
    )
    await store.execute(
        "INSERT INTO campaign_sequences (campaign_id, order_index, template_id) VALUES ($1, 0, $2), ($1, 1, $2)",
        s.id,
        template,
    )
    status, rows = await s.get("/participants")
    assert status == 200
    by_id = {r["participant_id"]: r for r in rows}
    assert {r["status_phase"] for r in rows} == {
        "waiting",
        "sent",
        "read",
        "replied",
        "completed",
        "skipped",
        "failed",
    }
    replied = by_id[str(p["replied"])]
    conversation = await store.fetchval("SELECT id FROM conversations")
    account = await store.fetchval(
        "SELECT bd_account_id FROM campaign_participants WHERE id = $1", p["replied"]
    )
    assert replied == {
        "participant_id": str(p["replied"]),
        "contact_id": str(replied_contact),
        "contact_name": "Rita R",
        "username": "rep_ly",
        "telegram_id": replied["telegram_id"],
        "conversation_id": str(conversation),
        "bd_account_id": str(account),
        "bd_account_display_name": "Sales 1",
        "channel_id": "702",
        "status_phase": "replied",
        "last_error": None,
        "pipeline_stage_name": "Qualified",
        "sent_at": iso(T0 + dt.timedelta(hours=2)),
        "replied_at": iso(T0 + dt.timedelta(hours=4)),
        "read_at": replied["read_at"],
        "shared_chat_created_at": iso(T0 + dt.timedelta(hours=12)),
        "current_step": 0,
        "next_send_at": None,
        "sequence_total_steps": 2,
        "waiting": None,
        "reply_intent": None,
        "auto_replied_at": None,
    }
    assert by_id[str(p["waiting"])]["waiting"] == {
        "code": "account_inactive",
        "message": "No BD account is assigned to this contact",
        "until": None,
    }
    assert replied["read_at"] is not None and by_id[str(p["read"])]["read_at"] is not None
    assert by_id[str(p["sent"])]["read_at"] is None
    failed = by_id[str(p["failed"])]
    assert (failed["last_error"], failed["next_send_at"]) == ("PRIVACY_RESTRICTED", None)
    # latest first send first, then the never-sent ones in queue order
    assert [r["participant_id"] for r in rows][:4] == [
        str(p[k]) for k in ("completed", "replied", "read", "sent")
    ]
    assert [r["participant_id"] for r in rows][4:] == [str(p[k]) for k in ("waiting", "skipped", "failed")]


async def test_participants__filters(client, org, store):
    s, p = await _funnel(client, org, store)

    async def ids(query: str) -> set[str]:
        status, rows = await s.get(f"/participants?{query}")
        assert status == 200, rows
        return {r["participant_id"] for r in rows}

    def of(*names: str) -> set[str]:
        return {str(p[n]) for n in names}

    assert await ids("filter=replied") == of("replied")
    assert await ids("status=not_replied") == of("waiting", "sent", "read", "completed", "skipped", "failed")
    assert await ids("filter=shared") == of("replied")
    assert await ids("filter=all") == of(*p)
    assert await ids("status=replied&filter=failed") == of("replied")  # status wins
    for phase in ("waiting", "completed", "skipped", "failed"):
        assert await ids(f"status={phase}") == of(phase)
    assert await ids("status=read") == of("read")
    assert await ids("status=sent") == of("sent")
    account = await store.fetchval("SELECT bd_account_id FROM campaign_participants WHERE id = $1", p["sent"])
    assert await ids(f"bdAccountId={account}") == of("sent", "read", "replied")
    assert await ids("sentFrom=2026-03-02&sentTo=2026-03-02") == of("sent", "read", "replied", "completed")
    assert await ids("sentFrom=2026-03-02T10:00:00Z") == of("read", "replied", "completed")
    assert await ids("sentTo=2026-03-02T10:00:00Z") == of("sent", "read")
    assert await ids("sentFrom=2026-03-03") == set()


async def test_participants__pagination(client, org, store):
    s = await _scenario(client, org, store)
    made = [await s.participant() for _ in range(7)]
    _, first = await s.get("/participants?limit=3")
    _, third = await s.get("/participants?limit=3&page=3")
    assert [r["participant_id"] for r in first] == [str(i) for i in made[:3]]
    assert [r["participant_id"] for r in third] == [str(made[6])]
    _, default = await s.get("/participants?limit=500")  # lowered to 100
    assert len(default) == 7


async def test_participants__validation(client, org, store):
    s = await _scenario(client, org, store)
    for query, path in [
        ("status=bogus", "status"),
        ("filter=pending2", "filter"),
        ("bdAccountId=nope", "bdAccountId"),
        ("sentFrom=yesterday", "sentFrom"),
        ("sentTo=2026-13-01", "sentTo"),
        ("page=0", "page"),
        ("limit=abc", "limit"),
    ]:
        status, body = await s.get(f"/participants?{query}")
        assert (status, body["code"]) == (400, "VALIDATION"), query
        assert body["details"][0]["path"] == path, query


async def test_participants__a_contact_of_another_organization_shows_no_data(client, org, store):
    s = await _scenario(client, org, store)
    other = await make_org(store, "Other")
    foreign = await other.contact(first_name="Secret", username="secret_user", telegram_id="555")
    await s.participant(contact=foreign)
    _, rows = await s.get("/participants")
    assert (rows[0]["contact_name"], rows[0]["username"], rows[0]["telegram_id"]) == ("", None, None)


# --- sends --------------------------------------------------------------------------------------------


async def test_sends__ledger_in_time_order_with_pagination(client, org, store):
    s = await _scenario(client, org, store)
    contact = await org.contact(first_name="Ann", last_name="Lee")
    part = await s.participant(contact=contact, status="sent", last_sent_at=T0)
    msg = await s.message("read", content="Hi Ann")
    first = await s.send(part, 0, T0, message_id=msg)
    rows = [first]
    for step, status in enumerate(("sending", "in_doubt", "deferred", "skipped", "failed"), start=1):
        rows.append(
            await s.send(part, step, T0 + dt.timedelta(minutes=step), status=status, content=f"c{step}")
        )
    await store.execute(
        "UPDATE campaign_sends SET error_class = 'recipient', last_error = 'PRIVACY', metadata = '{\"event\": \"x\"}' "
        "WHERE id = $1",
        rows[-1],
    )
    status, body = await s.get("/sends?limit=4")
    assert status == 200
    assert body["pagination"] == {"page": 1, "limit": 4, "total": 6, "sentTotal": 1, "totalPages": 2}
    assert [r["sendId"] for r in body["data"]] == [str(r) for r in rows[:4]]
    assert body["data"][0] == {
        "sendId": str(first),
        "sentAt": iso(T0),
        "sequenceStep": 0,
        "status": "sent",
        "participantStatus": "sent",
        "messageId": str(msg),
        "metadata": {},
        "errorClass": None,
        "lastError": None,
        "participantId": str(part),
        "contactId": str(contact),
        "contactName": "Ann Lee",
        "messageContent": "Hi Ann",
        "messageStatus": "read",
        "messageDirection": "outbound",
    }
    assert [r["status"] for r in body["data"]] == ["sent", "sending", "in_doubt", "deferred"]
    _, page2 = await s.get("/sends?limit=4&page=2")
    last = page2["data"][-1]
    assert (last["status"], last["errorClass"], last["lastError"], last["metadata"]) == (
        "failed",
        "recipient",
        "PRIVACY",
        {"event": "x"},
    )
    assert last["messageContent"] == "c5"


async def test_sends__empty_and_validation(client, org, store):
    s = await _scenario(client, org, store)
    status, body = await s.get("/sends")
    assert (status, body) == (
        200,
        {"data": [], "pagination": {"page": 1, "limit": 50, "total": 0, "sentTotal": 0, "totalPages": 1}},
    )
    assert (await s.get("/sends?page=x"))[0] == 400


# --- export -------------------------------------------------------------------------------------------


async def _export(s: Scenario, query: str = "", accept: str | None = None):
    headers = s.org.headers()
    if accept is not None:
        headers["Accept"] = accept
    response = await s.client.get(f"{s.url}/participants/export{query}", headers=headers)
    return response, await response.get_data(as_text=True)


async def test_export__csv_with_header_quoting_and_safe_cells(client, org, store):
    s, p = await _funnel(client, org, store)
    tricky = await org.contact(first_name='Smith, "J"\nJr', last_name="=HYPERLINK(1)", telegram_id="42")
    await s.participant(contact=tricky)
    response, text = await _export(s, accept="text/csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    assert text.startswith("\ufeffparticipant_id,contact_id,first_name,")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert len(rows) == 8
    mine = next(r for r in rows if r["telegram_id"] == "42")
    assert (mine["first_name"], mine["last_name"], mine["status_phase"]) == (
        'Smith, "J"\nJr',
        "'=HYPERLINK(1)",
        "waiting",
    )
    read = next(r for r in rows if r["participant_id"] == str(p["read"]))
    assert (read["is_read"], read["status_phase"], read["sender_account"]) == ("true", "read", "Sales 1")
    assert read["first_sent_at"] == iso(T0 + dt.timedelta(hours=1))


# What the front end's CampaignParticipantExportRow holds, in its order (frontend/lib/api/campaigns.ts).
FRONT_END_EXPORT_FIELDS = [
    "first_name",
    "last_name",
    "username",
    "phone",
    "email",
    "status",
    "display_status",
    "first_sent_at",
    "sender_account",
    "is_read",
    "replied_at",
    "first_reply_text",
]


async def test_export__json_rows_for_the_front_end(client, org, store):
    s, p = await _funnel(client, org, store)
    replied = await store.fetchrow(
        "SELECT contact_id, bd_account_id FROM campaign_participants WHERE id = $1", p["replied"]
    )
    await store.execute(
        "UPDATE contacts SET first_name = 'Ann', last_name = 'Lee', username = 'ann_lee', phone = '+100', "
        "email = 'ann@x.io' WHERE id = $1",
        replied["contact_id"],
    )
    await s.message(
        "read",
        direction="inbound",
        content="Sounds good",
        bd_account_id=replied["bd_account_id"],
        channel_id="702",
        created_at=T0 + dt.timedelta(hours=4),
    )
    response, text = await _export(s, accept="application/json, text/plain, */*")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    assert "Content-Disposition" not in response.headers
    rows = json.loads(text)
    assert len(rows) == 7 and all(list(r) == FRONT_END_EXPORT_FIELDS for r in rows)
    # The page's order: latest first send first, never sent last.
    by_status = [(r["status"], r["display_status"]) for r in rows]
    assert by_status == [
        ("completed", "completed"),
        ("replied", "replied"),
        ("sent", "read"),
        ("sent", "sent"),
        ("pending", "waiting"),
        ("completed", "skipped"),
        ("failed", "failed"),
    ]
    assert rows[1] == {
        "first_name": "Ann",
        "last_name": "Lee",
        "username": "ann_lee",
        "phone": "+100",
        "email": "ann@x.io",
        "status": "replied",
        "display_status": "replied",
        "first_sent_at": iso(T0 + dt.timedelta(hours=2)),
        "sender_account": "Sales 1",
        "is_read": True,
        "replied_at": iso(T0 + dt.timedelta(hours=4)),
        "first_reply_text": "Sounds good",
    }
    waiting = rows[4]
    assert (waiting["first_sent_at"], waiting["sender_account"], waiting["is_read"]) == (None, None, False)
    assert (waiting["replied_at"], waiting["first_reply_text"]) == (None, None)
    # display_status is the participants page's status_phase of the same participant.
    _, page = await s.get("/participants")
    assert [r["display_status"] for r in rows] == [r["status_phase"] for r in page]


async def test_export__json_by_default_csv_when_asked(client, org, store):
    s, _ = await _funnel(client, org, store)
    as_json = [
        ("", None),
        ("", "*/*"),
        ("", "application/json"),
        ("", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("", "text/csv;q=0.5, application/json"),
        ("?format=json", None),
        ("?format=json", "text/csv"),
    ]
    for query, accept in as_json:
        response, text = await _export(s, query=query, accept=accept)
        assert response.status_code == 200, (query, accept)
        assert response.headers["Content-Type"].startswith("application/json"), (query, accept)
        assert len(json.loads(text)) == 7, (query, accept)
    as_csv = [
        ("", "text/csv"),
        ("", "text/csv; charset=utf-8"),
        ("", "text/csv, application/json;q=0.9"),
        ("", "text/csv, */*;q=0.1"),
        ("?format=csv", None),
        ("?format=csv", "application/json"),
    ]
    for query, accept in as_csv:
        response, text = await _export(s, query=query, accept=accept)
        assert response.status_code == 200, (query, accept)
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8", (query, accept)
        assert "attachment" in response.headers["Content-Disposition"], (query, accept)
        assert text.startswith("\ufeffparticipant_id,contact_id,first_name,"), (query, accept)
        assert text.count("\r\n") == 8, (query, accept)


async def test_export__empty_campaign_and_bad_format(client, org, store):
    s = await _scenario(client, org, store)
    _, text = await _export(s)
    assert text == "[]"
    _, csv_text = await _export(s, accept="text/csv")
    assert csv_text.count("\r\n") == 1
    for bad in ("?format=xml", "?format=CSV", "?format="):
        response, _ = await _export(s, query=bad)
        assert response.status_code == 400, bad
        assert (await response.get_json())["details"][0]["path"] == "format"


async def _participants(store, org: Org, campaign_id: uuid.UUID, count: int) -> None:
    await store.execute(
        """
        WITH c AS (
            INSERT INTO contacts (organization_id, first_name, telegram_id)
            SELECT $1, 'N' || g, (8000000000 + g)::text FROM generate_series(1, $3) g
            RETURNING id, telegram_id
        )
        INSERT INTO campaign_participants (campaign_id, contact_id, enqueue_order)
        SELECT $2, id, telegram_id::bigint - 8000000000 FROM c
        """,
        org.id,
        campaign_id,
        count,
    )


async def _streamed(
    client, path: str, headers: dict[str, str], within: float = 120
) -> tuple[int, list[bytes]]:
    """The body's chunks as they arrive: the test client buffers only ten before the handler must wait. A
    stream that never ends fails the test instead of holding up the suite."""
    with trio.fail_after(within):
        return await _stream(client, path, headers)


async def _stream(client, path: str, headers: dict[str, str]) -> tuple[int, list[bytes]]:
    async with client.request(path, headers=headers) as connection:
        await connection.send_complete()
        chunks = []
        while True:
            try:
                chunks.append(await connection.receive())
            except trio.EndOfChannel:
                break
    return connection.status_code, chunks


async def test_export__json_streams_chunk_by_chunk(client, org, store):
    s = await _scenario(client, org, store)
    await _participants(store, org, s.id, 4500)  # three transactions of EXPORT_CHUNK
    status, chunks = await _streamed(client, f"{s.url}/participants/export", s.org.headers())
    assert status == 200
    assert len([c for c in chunks if c]) >= 4  # "[", then one chunk per transaction (and "]")
    rows = json.loads(b"".join(chunks))
    assert [r["first_name"] for r in rows] == [f"N{i}" for i in range(1, 4501)]
    assert {r["display_status"] for r in rows} == {"waiting"} and {r["status"] for r in rows} == {"pending"}


async def test_export__a_hundred_thousand_participants(client, org, store):
    s = await _scenario(client, org, store)
    await _participants(store, org, s.id, 100_000)
    headers = {**org.headers(), "Accept": "text/csv"}
    status, chunks = await _streamed(client, f"{s.url}/participants/export", headers)
    assert status == 200
    lines = b"".join(chunks).decode().split("\r\n")
    assert len(lines) == 100_002 and lines[-1] == ""
    assert lines[1].split(",")[2] == "N1" and lines[-2].split(",")[2] == "N100000"


async def test_export__outlives_the_response_timeout(client, org, store):
    """An export takes as long as its rows take: the server's response timeout (60 s by default, which a
    large export on a busy machine outgrows) does not cut the body short, which would leave the client
    waiting for a last chunk that never comes."""
    s = await _scenario(client, org, store)
    await _participants(store, org, s.id, 4500)
    client.app.config["RESPONSE_TIMEOUT"] = 0  # every other response would be cut at its first wait
    status, chunks = await _streamed(client, f"{s.url}/participants/export", s.org.headers(), within=30)
    assert status == 200
    assert len(json.loads(b"".join(chunks))) == 4500


# --- every endpoint -----------------------------------------------------------------------------------

READS = ("/stats", "/participant-accounts", "/analytics", "/participants", "/sends", "/participants/export")


async def test_all__missing_other_org_and_deleted_campaigns_are_404(client, org, store):
    s = await _scenario(client, org, store)
    other = await make_org(store, "Other")
    gone = await _scenario(client, org, store, name="gone")
    await store.execute("UPDATE campaigns SET deleted_at = now() WHERE id = $1", gone.id)
    for path in READS:
        for who, campaign in [(org, uuid.uuid4()), (other, s.id), (org, gone.id)]:
            response = await client.get(f"/api/campaigns/{campaign}{path}", headers=who.headers())
            assert response.status_code == 404, (path, campaign)
            assert await response.get_json() == {"error": "Campaign not found", "code": "NOT_FOUND"}


async def test_all__bad_id_400_viewer_reads_anonymous_401(client, org, store):
    s = await _scenario(client, org, store)
    for path in READS:
        response = await client.get(f"/api/campaigns/nope{path}", headers=org.headers())
        assert response.status_code == 400, path
        assert (await response.get_json())["details"] == [{"path": "id", "message": "must be a UUID"}]
        assert (await s.get(path, role="viewer"))[0] == 200, path
        assert (await client.get(s.url + path)).status_code == 401, path


async def test_openapi__reporting_responses_are_documented(client):
    doc = await (await client.get("/openapi.json")).get_json()
    paths = doc["paths"]
    assert paths["/api/campaigns/{id}/stats"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/Stats"}
    export = paths["/api/campaigns/{id}/participants/export"]["get"]["responses"]["200"]["content"]
    assert list(export) == ["application/json", "text/csv"]
    assert export["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/CampaignParticipantExportRow"},
    }
    assert export["text/csv"]["schema"]["type"] == "string"
    row = doc["components"]["schemas"]["CampaignParticipantExportRow"]
    assert list(row["properties"]) == FRONT_END_EXPORT_FIELDS and row["required"] == FRONT_END_EXPORT_FIELDS
    assert "label" in row["properties"]["display_status"]["description"]
    participants = paths["/api/campaigns/{id}/participants"]["get"]
    assert {p["name"] for p in participants["parameters"]} >= {
        "id",
        "page",
        "limit",
        "status",
        "filter",
        "bdAccountId",
        "sentFrom",
        "sentTo",
    }
    assert "SendsPage" in doc["components"]["schemas"] and "Analytics" in doc["components"]["schemas"]


# --- migration 0003 -----------------------------------------------------------------------------------


async def test_first_sent_at_follows_last_sent_at(client, org, store):
    s = await _scenario(client, org, store)
    pid = await s.participant(last_sent_at=T0)

    async def columns():
        return tuple(
            await store.fetchrow(
                "SELECT first_sent_at, read_at FROM campaign_participants WHERE id = $1", pid
            )
        )

    assert await columns() == (T0, None)
    await store.execute(
        "UPDATE campaign_participants SET last_sent_at = $2, read_at = $2 WHERE id = $1",
        pid,
        T0 + dt.timedelta(1),
    )
    assert await columns() == (T0, T0 + dt.timedelta(1))
    await store.execute("UPDATE campaign_participants SET last_sent_at = NULL WHERE id = $1", pid)
    assert await columns() == (None, None)
    fresh = await s.participant()
    assert (
        await store.fetchval("SELECT first_sent_at FROM campaign_participants WHERE id = $1", fresh) is None
    )


async def test_migration__rows_the_original_wrote_are_reported(empty_database_url):
    every = migrate.discover(crm_schema="standalone")
    before = [m for m in every if m.migration_set == "crm" or m.name < "0003"]
    await migrate.apply(empty_database_url, before)
    async with Store.open(empty_database_url, min_size=1, max_size=2) as store:
        org = await make_org(store)
        contact = await org.contact()
        campaign = await store.fetchval(
            "INSERT INTO campaigns (organization_id, name) VALUES ($1, 'old') RETURNING id", org.id
        )
        participant = await store.fetchval(
            "INSERT INTO campaign_participants (campaign_id, contact_id, status) VALUES ($1, $2, 'sent') RETURNING id",
            campaign,
            contact,
        )
        for step, at in enumerate((T0, T0 + dt.timedelta(days=2))):
            await store.execute(
                "INSERT INTO campaign_sends (campaign_participant_id, sequence_step, sent_at) VALUES ($1, $2, $3)",
                participant,
                step,
                at,
            )
        await migrate.apply(empty_database_url, every)
        row = await store.fetchrow("SELECT first_sent_at, last_sent_at FROM campaign_participants")
        assert tuple(row) == (T0, T0 + dt.timedelta(days=2))
        assert {r["campaign_id"] for r in await store.fetch("SELECT campaign_id FROM campaign_sends")} == {
            campaign
        }
