"""GET /:id/forecast over the real app and database (docs/visibility.md "When it will finish").

Exact figures come from the use case at a fixed ``now`` (weeks ahead of the wall clock, so the running
dispatcher never finds anything of these campaigns due); the endpoint's answers are checked for what
holds at any time: shapes, validation, tenancy, the what-if order. Participants of running campaigns and
their ledger rows are written with SQL, as the dispatcher writes them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from campaignsvc.usecases.forecast import campaign_forecast
from tests.factories import make_org

UTC = dt.UTC
DAY = dt.timedelta(days=1)
# A Monday 08:00 UTC well after the wall clock.
_soon = dt.datetime.now(UTC) + dt.timedelta(days=30)
NOW = (_soon - dt.timedelta(days=_soon.weekday())).replace(hour=8, minute=0, second=0, microsecond=0)
MARGIN = dt.timedelta(milliseconds=20)  # CAMPAIGN_GAP_SAFETY_MARGIN_MS
GAP = dt.timedelta(seconds=600) + MARGIN  # sendDelaySeconds 600; the test settings have no floor


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


async def _campaign(
    client: Any,
    org: Any,
    accounts: list[uuid.UUID],
    contacts: list[uuid.UUID],
    delays: list[int],
    **audience: Any,
) -> uuid.UUID:
    """A draft through the API: its audience (those contacts, those accounts, 600 s between two sends of
    an account), one template and step per entry of ``delays`` (hours after the previous step)."""
    target = {
        "bdAccountIds": [str(a) for a in accounts],
        "contactIds": [str(c) for c in contacts],
        "sendDelaySeconds": 600,
        **audience,
    }
    response = await client.post(
        "/api/campaigns", json={"name": "Forecast", "targetAudience": target}, headers=org.headers()
    )
    assert response.status_code == 201, await response.get_json()
    cid = (await response.get_json())["id"]
    for i, hours in enumerate(delays):
        response = await client.post(
            f"/api/campaigns/{cid}/templates",
            json={"name": f"t{i}", "channel": "telegram", "content": f"Step {i}"},
            headers=org.headers(),
        )
        template = (await response.get_json())["id"]
        response = await client.post(
            f"/api/campaigns/{cid}/sequences",
            json={"orderIndex": i, "templateId": template, "delayHours": hours},
            headers=org.headers(),
        )
        assert response.status_code == 201
    return uuid.UUID(cid)


async def _participant(store: Any, campaign: uuid.UUID, contact: uuid.UUID, **columns: Any) -> uuid.UUID:
    columns = {"campaign_id": campaign, "contact_id": contact, **columns}
    names = list(columns)
    values = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    return await store.fetchval(
        f"INSERT INTO campaign_participants ({', '.join(names)}) VALUES ({values}) RETURNING id",
        *columns.values(),
    )


async def _sent(
    store: Any, campaign: uuid.UUID, participant: uuid.UUID, account: uuid.UUID, step: int, at: dt.datetime
):
    await store.execute(
        "INSERT INTO campaign_sends (campaign_participant_id, campaign_id, bd_account_id, sequence_step, status, "
        "claimed_at, sent_at, idempotency_key) VALUES ($1, $2, $3, $4, 'sent', $5, $5, $6)",
        participant,
        campaign,
        account,
        step,
        at,
        f"campaign:{campaign}:participant:{participant}:step:{step}",
    )


async def _forecast(client: Any, org: Any, campaign: uuid.UUID, role: str = "owner", **query: Any):
    response = await client.get(
        f"/api/campaigns/{campaign}/forecast", headers=org.headers(role), query_string=query or None
    )
    return response.status_code, await response.get_json()


def _check_shape(body: dict[str, Any]) -> None:
    assert set(body) == {
        "remainingSends",
        "finishesAt",
        "bottleneck",
        "reason",
        "perAccount",
        "daily",
        "whatIf",
        "assumptions",
    }
    assert body["bottleneck"] in {"daily_cap", "gap", "window", "step_delays", "blocked", "none"}
    assert [w["extraAccounts"] for w in body["whatIf"]] == [1, 2, 3]
    assert sum(a["remainingSends"] for a in body["perAccount"]) == body["remainingSends"]
    assert body["assumptions"] and all(isinstance(s, str) and s for s in body["assumptions"])


# --- a draft -----------------------------------------------------------------------------------------


async def test_draft__its_audience_enrolled_as_start_would_without_writing_anything(
    client, store, org, settings
):
    first = await org.bd_account(display_name="Anna", timezone="UTC", max_dm_per_day=3)
    second = await org.bd_account(display_name="Boris", timezone="UTC", max_dm_per_day=3)
    contacts = await org.contacts(5)
    # In the audience, but with nothing to write to: start fails it instead of placing it.
    nameless = await org.contact(first_name="At sign only", username="@")
    cid = await _campaign(client, org, [first, second], [*contacts[:2], nameless, *contacts[2:]], [0, 24])

    f = await store.run(campaign_forecast, org.id, cid, now=NOW, settings=settings)

    # Round-robin: 3 contacts on Anna, 2 on Boris; two steps each.
    assert f.remaining_sends == 10
    by_account = {a.bd_account_id: a for a in f.per_account}
    assert (by_account[first].remaining_sends, by_account[second].remaining_sends) == (6, 4)
    # Anna: 3 first sends a gap apart from now (her cap of 3 is exactly today's), the follow-ups a day
    # after each; Boris likewise with 2.
    assert by_account[first].finishes_at == NOW + DAY + 2 * GAP
    assert by_account[second].finishes_at == NOW + DAY + GAP
    assert f.finishes_at == NOW + DAY + 2 * GAP
    assert [(d.date, d.sends) for d in f.daily] == [(NOW.date(), 5), ((NOW + DAY).date(), 5)]
    assert f.bottleneck == "step_delays" and f.reason is None
    assert any("draft" in s for s in f.assumptions) and any("No contact replies" in s for s in f.assumptions)
    assert await store.fetchval("SELECT count(*) FROM campaign_participants WHERE campaign_id = $1", cid) == 0

    status, body = await _forecast(client, org, cid, role="viewer")
    assert status == 200, body
    _check_shape(body)
    assert body["remainingSends"] == 10 and body["finishesAt"] and body["reason"] is None
    assert {a["bdAccountId"] for a in body["perAccount"]} == {str(first), str(second)}
    assert all(len(d["date"]) == 10 for d in body["daily"])


async def test_draft_without_an_active_account__never_finishes_and_says_why(client, store, org, settings):
    account = await org.bd_account(display_name="Off", is_active=False)
    cid = await _campaign(client, org, [account], await org.contacts(2), [0])
    f = await store.run(campaign_forecast, org.id, cid, now=NOW, settings=settings)
    assert (f.remaining_sends, f.finishes_at, f.bottleneck) == (2, None, "blocked")
    assert f.reason == "No active BD account available for sending"


# --- a running campaign ------------------------------------------------------------------------------


async def test_active_campaign_part_way__from_where_each_participant_stands(client, store, org, settings):
    anna = await org.bd_account(display_name="Anna", timezone="UTC", max_dm_per_day=3)
    boris = await org.bd_account(display_name="Boris", timezone="UTC", max_dm_per_day=10)
    contacts = await org.contacts(5)
    cid = await _campaign(client, org, [anna, boris], contacts, [0, 24])
    await store.execute("UPDATE campaigns SET status = 'active' WHERE id = $1", cid)
    # Anna: one participant sent step 0 yesterday (its step 1 due in an hour), one never sent (overdue),
    # and three sends today already (her cap): nothing more before midnight.
    await _participant(
        store, cid, contacts[0], bd_account_id=anna, status="sent", current_step=1,
        next_send_at=NOW + dt.timedelta(hours=1), last_sent_at=NOW - dt.timedelta(hours=23),
        first_sent_at=NOW - dt.timedelta(hours=23), channel_id="1",
    )  # fmt: skip
    await _participant(
        store, cid, contacts[1], bd_account_id=anna, status="pending", current_step=0,
        next_send_at=NOW - dt.timedelta(hours=1), channel_id="2",
    )  # fmt: skip
    replied = await _participant(
        store, cid, contacts[2], bd_account_id=anna, status="replied", current_step=1
    )
    done = await _participant(store, cid, contacts[3], bd_account_id=anna, status="completed", current_step=2)
    await _sent(store, cid, replied, anna, 0, NOW - dt.timedelta(hours=3))
    await _sent(store, cid, done, anna, 0, NOW - dt.timedelta(hours=2))
    await _sent(store, cid, done, anna, 1, NOW - dt.timedelta(hours=1))
    # Boris: one participant due now; his last send started 5 minutes ago.
    await _participant(
        store, cid, contacts[4], bd_account_id=boris, status="pending", current_step=0, next_send_at=NOW,
        channel_id="5",
    )  # fmt: skip
    await store.execute(
        "INSERT INTO campaign_account_state (bd_account_id, last_send_at) VALUES ($1, $2)",
        boris,
        NOW - dt.timedelta(minutes=5),
    )

    f = await store.run(campaign_forecast, org.id, cid, now=NOW, settings=settings)

    assert f.remaining_sends == 1 + 2 + 2
    by_account = {a.bd_account_id: a for a in f.per_account}
    midnight = NOW.replace(hour=0) + DAY
    # Anna from midnight (no window: the limiter hands the send back until then): the overdue first send,
    # then the follow-up due since 09:00; the overdue one's follow-up a day later.
    assert by_account[anna].remaining_sends == 3
    assert by_account[anna].finishes_at == midnight + DAY
    # Boris: a gap after his last start, its follow-up a day later.
    assert by_account[boris].finishes_at == NOW - dt.timedelta(minutes=5) + GAP + DAY
    assert f.finishes_at == midnight + DAY
    assert [(d.date, d.sends) for d in f.daily] == [
        (NOW.date(), 1),
        ((NOW + DAY).date(), 3),
        ((NOW + 2 * DAY).date(), 1),
    ]

    status, body = await _forecast(client, org, cid)
    assert status == 200, body
    _check_shape(body)
    assert body["remainingSends"] == 5 and body["finishesAt"] is not None


async def test_participants_not_yet_scheduled__counted_as_enrolment_would_place_them(
    client, store, org, settings
):
    # Added to a running campaign and not placed yet: enrolment leaves out a contact with nothing to write
    # to, or on the do-not-contact list, and so does the forecast.
    anna = await org.bd_account(display_name="Anna", timezone="UTC", max_dm_per_day=10)
    contacts = await org.contacts(3)
    at_sign = await org.contact(first_name="At sign only", username="@")
    cid = await _campaign(client, org, [anna], contacts, [0])
    await store.execute("UPDATE campaigns SET status = 'active' WHERE id = $1", cid)
    for contact in [*contacts, at_sign]:
        await _participant(store, cid, contact, status="pending", current_step=0)
    listed = await store.fetchval("SELECT telegram_id FROM contacts WHERE id = $1", contacts[1])
    response = await client.post(
        "/api/campaigns/do-not-contact", json={"telegramIds": [listed]}, headers=org.headers()
    )
    assert response.status_code in (200, 201), await response.get_json()

    f = await store.run(campaign_forecast, org.id, cid, now=NOW, settings=settings)
    assert f.remaining_sends == 2


async def test_an_inactive_account_holding_participants__never_finishes_with_the_reason(
    client, store, org, settings
):
    anna = await org.bd_account(display_name="Anna", timezone="UTC")
    gone = await org.bd_account(display_name="Gone", is_active=False)
    contacts = await org.contacts(3)
    cid = await _campaign(client, org, [anna, gone], contacts, [0])
    await store.execute("UPDATE campaigns SET status = 'active' WHERE id = $1", cid)
    await _participant(store, cid, contacts[0], bd_account_id=anna, status="pending", next_send_at=NOW + DAY)
    for contact in contacts[1:]:
        await _participant(store, cid, contact, bd_account_id=gone, status="pending", next_send_at=NOW + DAY)

    f = await store.run(campaign_forecast, org.id, cid, now=NOW, settings=settings)
    assert (f.remaining_sends, f.finishes_at, f.bottleneck) == (3, None, "blocked")
    assert f.reason == "BD account Gone is inactive and holds 2 remaining sends of this campaign"
    by_account = {a.bd_account_id: a for a in f.per_account}
    assert by_account[anna].finishes_at == NOW + DAY and by_account[gone].finishes_at is None
    assert [w.finishes_at for w in f.what_if] == [None, None, None]  # its participants stay on it

    status, body = await _forecast(client, org, cid)
    assert status == 200
    assert body["finishesAt"] is None and "Gone is inactive" in body["reason"]


# --- the query and the what-ifs ----------------------------------------------------------------------


async def test_extra_accounts__validated_and_more_accounts_never_finish_later(client, store, org, settings):
    account = await org.bd_account(display_name="Solo", timezone="UTC", max_dm_per_day=3)
    cid = await _campaign(client, org, [account], await org.contacts(12), [0, 48])

    for bad in ("11", "-1", "abc", "2.5", ""):
        status, body = await _forecast(client, org, cid, extraAccounts=bad)
        assert status == 400, (bad, body)
        assert body["code"] == "VALIDATION"
        assert [d["path"] for d in body["details"]] == ["extraAccounts"]

    status, base = await _forecast(client, org, cid)
    assert status == 200
    ends = [dt.datetime.fromisoformat(base["finishesAt"])] + [
        dt.datetime.fromisoformat(w["finishesAt"]) for w in base["whatIf"]
    ]
    assert ends == sorted(ends, reverse=True) and ends[0] > ends[1]  # 12 contacts at 3 a day: one more helps
    status, more = await _forecast(client, org, cid, extraAccounts="10")
    assert status == 200
    assert len(more["perAccount"]) == 11 and [a["bdAccountId"] for a in more["perAccount"][1:]] == [None] * 10
    assert more["remainingSends"] == base["remainingSends"] == 24
    assert dt.datetime.fromisoformat(more["finishesAt"]) <= ends[-1]
    assert any("median" in s for s in more["assumptions"])

    f1 = await store.run(campaign_forecast, org.id, cid, now=NOW, settings=settings, extra_accounts=1)
    f0 = await store.run(campaign_forecast, org.id, cid, now=NOW, settings=settings)
    assert f0.what_if[0].finishes_at == f1.finishes_at  # the what-if is the forecast with one more account


# --- tenancy -----------------------------------------------------------------------------------------


async def test_another_organizations_campaign__404_as_the_other_reports(client, store, org):
    account = await org.bd_account()
    cid = await _campaign(client, org, [account], await org.contacts(1), [0])
    other = await make_org(store, "Other")
    not_found = {"error": "Campaign not found", "code": "NOT_FOUND"}
    assert await _forecast(client, other, cid) == (404, not_found)
    assert await _forecast(client, org, uuid.uuid4()) == (404, not_found)
    assert (await client.delete(f"/api/campaigns/{cid}", headers=org.headers())).status_code == 204
    assert await _forecast(client, org, cid) == (404, not_found)
    status, body = await _forecast(client, org, "nope")
    assert (status, body["details"]) == (400, [{"path": "id", "message": "must be a UUID"}])
