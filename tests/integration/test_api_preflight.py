"""GET /api/campaigns/:id/preflight over the real app and database: each check fires on what it is about
and passes otherwise, ``ok`` follows the errors, a draft's audience is the one a start materialises, a
paused campaign's the participants still open; 404 across organizations."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from campaignsvc.config import Settings
from campaignsvc.domain import preflight as pf
from campaignsvc.domain import schedule as sched
from tests.factories import Org, make_org


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def settings() -> Settings:
    """The production floor (360 s between two sends of an account) and cap (20 a day)."""
    return Settings.from_env({}, log_level="warning")


class Draft:
    def __init__(self, client: Any, org: Org, id: str) -> None:
        self.client, self.org, self.id = client, org, id
        self.url = f"/api/campaigns/{id}"

    async def step(self, content: str, **step: Any) -> dict[str, Any]:
        headers = self.org.headers()
        body = {"name": "t", "channel": "telegram", "content": content}
        template = await (
            await self.client.post(f"{self.url}/templates", json=body, headers=headers)
        ).get_json()
        response = await self.client.post(
            f"{self.url}/sequences", json={"templateId": template["id"], **step}, headers=headers
        )
        assert response.status_code == 201, await response.get_data()
        return await response.get_json()

    async def audience(self, **audience: Any) -> None:
        response = await self.client.patch(
            self.url, json={"targetAudience": audience}, headers=self.org.headers()
        )
        assert response.status_code == 200, await response.get_data()

    async def preflight(self, role: str = "owner") -> dict[str, Any]:
        response = await self.client.get(f"{self.url}/preflight", headers=self.org.headers(role))
        assert response.status_code == 200, await response.get_data()
        return await response.get_json()

    async def check(self, code: str) -> dict[str, Any]:
        return check(await self.preflight(), code)


def check(body: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [c for c in body["checks"] if c["code"] == code]
    return found


def failing(body: dict[str, Any]) -> set[str]:
    return {c["code"] for c in body["checks"] if c["count"]}


async def draft(
    client: Any,
    org: Org,
    *,
    accounts: list[uuid.UUID],
    contacts: list[uuid.UUID],
    step: str | None = "Hi",
    **audience: Any,
) -> Draft:
    """A draft with these accounts and contacts, a 10-minute gap and one step (``step``'s text)."""
    target = {
        "bdAccountIds": [str(a) for a in accounts],
        "contactIds": [str(c) for c in contacts],
        "sendDelaySeconds": 600,
        **audience,
    }
    response = await client.post(
        "/api/campaigns", json={"name": "Launch", "targetAudience": target}, headers=org.headers()
    )
    assert response.status_code == 201, await response.get_data()
    made = Draft(client, org, (await response.get_json())["id"])
    if step is not None:
        await made.step(step, delayHours=0)
    return made


async def ready(client: Any, org: Org, **kw: Any) -> Draft:
    if "accounts" not in kw:
        kw["accounts"] = [await org.bd_account(display_name="Anna")]
    if "contacts" not in kw:
        kw["contacts"] = await org.contacts(3)
    return await draft(client, org, **kw)


async def test_a_ready_draft__every_check_listed_and_passing__ok__and_it_starts(client, org):
    campaign = await ready(client, org, step="Hi {{contact.first_name|there}}, {quick|short} question")
    body = await campaign.preflight("viewer")
    assert body["ok"] is True
    assert [c["code"] for c in body["checks"]] == [code.value for code in pf.PreflightCode]
    for c in body["checks"]:
        assert set(c) == {"code", "severity", "count", "message", "sample"}
        assert (c["count"], c["sample"]) == (0, []), c
        assert c["severity"] == pf.SEVERITY[pf.PreflightCode(c["code"])].value
        assert c["message"]
    assert check(body, "no_audience")["message"] == "3 contacts of the audience to send to"
    assert "finishes" in check(body, "long_campaign")["message"]
    response = await client.post(f"{campaign.url}/start", headers=org.headers())
    assert response.status_code == 200


async def test_no_steps__error_and_the_start_refuses(client, org):
    campaign = await ready(client, org, step=None)
    body = await campaign.preflight()
    assert body["ok"] is False and failing(body) == {"no_steps"}
    assert check(body, "no_steps")["severity"] == "error"
    response = await client.post(f"{campaign.url}/start", headers=org.headers())
    assert response.status_code == 400
    await campaign.step("Hello", isHidden=True)
    assert (await campaign.check("no_steps"))["count"] == 1
    await campaign.step("Hello", orderIndex=1)
    body = await campaign.preflight()
    assert body["ok"] is True and check(body, "no_steps")["count"] == 0


async def test_first_step_waits_and_invalid_template__errors_naming_the_steps(client, org, store):
    campaign = await ready(client, org, step=None)
    waits = await campaign.step("Hello", triggerType="after_reply")
    body = await campaign.preflight()
    assert failing(body) == {"first_step_waits"} and not body["ok"]
    assert check(body, "first_step_waits")["sample"] == [waits["id"]]
    await store.execute(
        "UPDATE campaign_sequences SET trigger_type = 'delay' WHERE id = $1", uuid.UUID(waits["id"])
    )
    await store.execute(
        "UPDATE campaign_templates SET content = '{Hi' WHERE id = $1", uuid.UUID(waits["template_id"])
    )  # saved before templates were validated
    body = await campaign.preflight()
    assert failing(body) == {"invalid_template"} and not body["ok"]
    found = check(body, "invalid_template")
    assert found["sample"] == [waits["id"]] and found["message"].startswith(
        "A template cannot be sent as written: step 1: unclosed spintax"
    )
    response = await client.post(f"{campaign.url}/start", headers=org.headers())
    assert response.status_code == 400


async def test_no_accounts__none_active__error_as_the_start(client, org):
    off = await org.bd_account(display_name="Off", is_active=False)
    campaign = await ready(client, org, accounts=[off])
    body = await campaign.preflight()
    assert not body["ok"]
    assert failing(body) >= {"no_accounts", "account_inactive"}
    assert check(body, "no_accounts")["message"] == "None of the campaign's BD accounts is active"
    assert check(body, "account_inactive")["sample"] == [str(off)]
    response = await client.post(f"{campaign.url}/start", headers=org.headers())
    assert response.status_code == 400
    # No account named: the organization's first active one is used, as the start does.
    await campaign.audience(contactIds=[str(c) for c in await org.contacts(1)], sendDelaySeconds=600)
    assert (await campaign.check("no_accounts"))["message"] == (
        "The campaign names no BD account and the organization has no active one"
    )
    await org.bd_account(display_name="Fallback")
    body = await campaign.preflight()
    assert body["ok"] and check(body, "no_accounts") == {**check(body, "no_accounts"), "count": 0}


async def test_account_inactive__a_warning_when_another_account_sends(client, org):
    on, off = (
        await org.bd_account(display_name="On"),
        await org.bd_account(display_name="Off", is_active=False),
    )
    campaign = await ready(client, org, accounts=[on, off])
    body = await campaign.preflight()
    assert body["ok"] and failing(body) == {"account_inactive"}
    found = check(body, "account_inactive")
    assert (found["count"], found["sample"], found["severity"]) == (1, [str(off)], "warning")
    assert "Off" in found["message"]
    assert (await (await ready(client, org, accounts=[on])).check("account_inactive"))["count"] == 0


async def test_account_blocked__restricted_or_flood_blocked_now_until_when(client, org):
    until = (now() + dt.timedelta(hours=3)).replace(microsecond=0)
    spam = await org.bd_account(display_name="Spammy", spam_restricted_at=now())
    flood = await org.bd_account(display_name="Floody", flood_wait_until=until, flood_reason="flood_wait")
    was = await org.bd_account(display_name="Was", flood_wait_until=now() - dt.timedelta(minutes=1))
    body = await (await ready(client, org, accounts=[spam, flood, was])).preflight()
    found = check(body, "account_blocked")
    assert (found["count"], found["sample"]) == (2, [str(spam), str(flood)])
    assert "Spammy is spam-restricted" in found["message"]
    assert f"Floody is flood-blocked (flood_wait) until {until:%Y-%m-%d %H:%M} UTC" in found["message"]
    assert body["ok"]
    assert (await (await ready(client, org, accounts=[was])).check("account_blocked"))["count"] == 0


async def _sent_today(store: Any, org: Org, account: uuid.UUID, count: int) -> None:
    """``count`` sends of another campaign on ``account``, made just now."""
    other = await store.fetchval(
        "INSERT INTO campaigns (organization_id, name, status) VALUES ($1, 'Earlier', 'completed') RETURNING id",
        org.id,
    )
    for contact in await org.contacts(count):
        participant = await store.fetchval(
            "INSERT INTO campaign_participants (campaign_id, contact_id, status) VALUES ($1, $2, 'sent') RETURNING id",
            other,
            contact,
        )
        await store.execute(
            "INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, sent_at, claimed_at, "
            "campaign_id, bd_account_id) VALUES ($1, 0, 'sent', $2, $2, $3, $4)",
            participant,
            now() - dt.timedelta(seconds=1),
            other,
            account,
        )


async def test_account_at_cap__todays_sends_at_the_cap_in_its_zone(client, org, store):
    zone = "Pacific/Kiritimati"  # a zone whose day is not UTC's
    full = await org.bd_account(display_name="Full", max_dm_per_day=2, timezone=zone)
    left = await org.bd_account(display_name="Left", max_dm_per_day=3)
    for account in (full, left):
        await _sent_today(store, org, account, 2)
    body = await (await ready(client, org, accounts=[full, left])).preflight()
    found = check(body, "account_at_cap")
    assert (found["count"], found["sample"], found["severity"]) == (1, [str(full)], "warning")
    assert "Full: 2/2 sends today, next after " in found["message"] and found["message"].endswith(
        f"00:00 {zone}"
    )
    agents = await (await client.get("/api/campaigns/agents", headers=org.headers())).get_json()
    assert {a["id"]: a["sentToday"] for a in agents}[str(full)] == 2  # the same count
    # The campaign's daily target lowers the cap it may use.
    assert (await (await ready(client, org, accounts=[left], dailySendTarget=2)).check("account_at_cap"))[
        "count"
    ] == 1


async def test_window_never_open__an_error_and_no_forecast(client, org, monkeypatch):
    hours = await org.bd_account(
        display_name="Hours",
        timezone="UTC",
        working_hours_start="09:00",
        working_hours_end="17:00",
        working_days=[1, 2, 3, 4, 5],
    )
    campaign = await ready(client, org, accounts=[hours])
    assert (await campaign.check("window_never_open"))["count"] == 0
    # No window within the schedule functions' search: what a schedule whose every window DST erased gives.
    monkeypatch.setattr(sched, "_SEARCH_DAYS", 0)
    body = await campaign.preflight()
    found = check(body, "window_never_open")
    assert (found["count"], found["sample"], found["severity"]) == (1, [str(hours)], "error")
    assert found["message"] == "The working hours never open for: Hours"
    assert not body["ok"]
    assert (
        check(body, "long_campaign")["message"] == "The forecast never finishes: a sending window never opens"
    )


async def test_gap_below_floor__a_warning_that_the_floor_is_used(client, org):
    below = await ready(client, org, sendDelaySeconds=60)
    body = await below.preflight()
    found = check(body, "gap_below_floor")
    assert (found["count"], found["severity"], body["ok"]) == (1, "warning", True)
    assert (
        found["message"] == "The campaign's gap (60 s) is below the floor of 360 s: every gap will be 360 s"
    )
    part = await ready(client, org, sendDelayMinSeconds=60, sendDelayMaxSeconds=900)
    assert "gaps drawn below it will be 360 s" in (await part.check("gap_below_floor"))["message"]
    assert (await (await ready(client, org, sendDelaySeconds=360)).check("gap_below_floor"))["count"] == 0


async def test_no_audience_and_no_channel__contacts_without_telegram_id_or_username(client, org):
    reachable = await org.contacts(2)
    bare = [await org.contact(first_name=f"Bare{i}", telegram_id=None, username=" ") for i in range(2)]
    campaign = await ready(client, org, contacts=[bare[0], *reachable, bare[1]])
    body = await campaign.preflight()
    found = check(body, "no_channel")
    assert (found["count"], found["sample"], found["severity"]) == (2, [str(b) for b in bare], "warning")
    assert found["message"].endswith("the start leaves them out")
    assert body["ok"] and check(body, "no_audience")["count"] == 0
    only_bare = await ready(client, org, contacts=bare)
    body = await only_bare.preflight()
    assert not body["ok"] and failing(body) == {"no_audience", "no_channel"}
    assert check(body, "no_audience")["severity"] == "error"
    response = await client.post(f"{only_bare.url}/start", headers=org.headers())
    assert response.status_code == 400


async def test_already_in_campaign__open_participants_of_other_active_campaigns(client, org, store):
    contacts = await org.contacts(3)
    campaign = await ready(client, org, contacts=contacts)
    for name, status, participant in (
        ("Spring", "active", "pending"),
        ("Done", "completed", "pending"),
        ("Old", "active", "replied"),
    ):
        other = await store.fetchval(
            "INSERT INTO campaigns (organization_id, name, status) VALUES ($1, $2, $3) RETURNING id",
            org.id,
            name,
            status,
        )
        who = contacts[1] if name == "Spring" else contacts[2]
        await store.execute(
            "INSERT INTO campaign_participants (campaign_id, contact_id, status) VALUES ($1, $2, $3)",
            other,
            who,
            participant,
        )
    found = await campaign.check("already_in_campaign")
    assert (found["count"], found["sample"], found["severity"]) == (1, [str(contacts[1])], "warning")
    assert found["message"] == "1 contact already in other active campaigns (Spring)"
    other_org = await make_org(store, "Elsewhere")
    theirs = await store.fetchval(
        "INSERT INTO campaigns (organization_id, name, status) VALUES ($1, 'Theirs', 'active') RETURNING id",
        other_org.id,
    )
    await store.execute(
        "INSERT INTO campaign_participants (campaign_id, contact_id) VALUES ($1, $2)", theirs, contacts[0]
    )
    assert (await campaign.check("already_in_campaign"))["count"] == 1


async def test_missing_data__contacts_that_cannot_fill_a_placeholder_without_fallback(client, org, store):
    company = await org.company("Acme")
    full = await org.contact(first_name="Ann", last_name="Lee", telegram_id="101", company_id=company)
    no_last = await org.contact(first_name="Bob", last_name=None, telegram_id="102", company_id=company)
    spaces = await org.contact(first_name="Eve", last_name="\u2003 ", telegram_id="103")  # blank once trimmed
    campaign = await ready(client, org, contacts=[full, no_last, spaces], step="Dear {{contact.last_name}}")
    await campaign.step("About {{company.name}}", orderIndex=1, delayHours=24)
    body = await campaign.preflight()
    found = check(body, "missing_data")
    assert (found["count"], found["sample"], found["severity"]) == (2, [str(no_last), str(spaces)], "warning")
    assert found["message"] == (
        "2 contacts would skip a step for missing data: {{contact.last_name}} in step 1 has no fallback and "
        "2 contacts no value for it; {{company.name}} in step 2 has no fallback and 1 contact no value for it"
    )
    assert body["ok"]
    fine = await ready(client, org, contacts=[full, no_last], step="Dear {{contact.last_name|friend}}")
    assert (await fine.check("missing_data"))["count"] == 0


async def test_missing_data__only_where_the_steps_conditions_let_it_through(client, org):
    no_email = await org.contact(first_name="Ann", last_name=None, telegram_id="201")
    with_email = await org.contact(first_name="Bob", last_name=None, telegram_id="202", email="b@x.test")
    campaign = await ready(client, org, contacts=[no_email, with_email], step="Hi")
    await campaign.step(
        "Re {{contact.last_name}}",
        orderIndex=1,
        delayHours=24,
        conditions={"contact": [{"field": "email", "op": "not_empty"}]},
    )
    found = await campaign.check("missing_data")
    assert (found["count"], found["sample"]) == (1, [str(with_email)])


async def test_empty_render__a_step_that_renders_to_nothing(client, org):
    named = await org.contact(first_name="Ann", telegram_id="301")
    blank = await org.contact(first_name=" ", telegram_id="302")
    campaign = await ready(client, org, contacts=[named, blank], step="{{contact.first_name|}}")
    body = await campaign.preflight()
    found = check(body, "empty_render")
    assert (found["count"], found["sample"], found["severity"]) == (1, [str(blank)], "warning")
    assert found["message"] == "A step can come out as an empty message (skipped): step 1 for 1 contact"
    assert check(body, "missing_data")["count"] == 0 and body["ok"]
    fine = await ready(client, org, contacts=[named, blank], step="Hi {{contact.first_name|}}")
    assert (await fine.check("empty_render"))["count"] == 0


async def test_long_campaign__the_forecast_beyond_thirty_days(client, org):
    slow = await org.bd_account(display_name="Slow", max_dm_per_day=1)
    campaign = await ready(client, org, accounts=[slow], contacts=await org.contacts(40))
    body = await campaign.preflight()
    found = check(body, "long_campaign")
    assert (found["count"], found["severity"], body["ok"]) == (1, "warning", True)
    assert found["message"].startswith("40 sends left; the forecast finishes ")
    assert found["message"].endswith("(more than 30)")
    short = await ready(client, org, accounts=[slow], contacts=await org.contacts(3))
    assert (await short.check("long_campaign"))["count"] == 0


async def test_a_paused_campaign__the_participants_still_open(client, org, store):
    contacts = [
        await org.contact(first_name=name, last_name=None, telegram_id=f"40{i}")
        for i, name in enumerate("ABCD")
    ]
    campaign = await ready(client, org, contacts=contacts, step="Dear {{contact.last_name}}")
    await campaign.step("Again {{contact.first_name}} {{contact.last_name}}", orderIndex=1, delayHours=24)
    cid = uuid.UUID(campaign.id)
    rows = [
        (contacts[0], "pending", 0),
        (contacts[1], "sent", 1),
        (contacts[2], "completed", 2),
        (contacts[3], "replied", 1),
    ]
    for contact, status, step in rows:
        await store.execute(
            "INSERT INTO campaign_participants (campaign_id, contact_id, status, current_step, channel_id) "
            "VALUES ($1, $2, $3, $4, 'x')",
            cid,
            contact,
            status,
            step,
        )
    await store.execute("UPDATE campaigns SET status = 'paused' WHERE id = $1", cid)
    body = await campaign.preflight()
    assert check(body, "no_audience")["message"] == "2 open participants to send to"
    found = check(body, "missing_data")
    assert (found["count"], found["sample"]) == (2, [str(contacts[0]), str(contacts[1])])
    assert "{{contact.last_name}} in step 1 has no fallback and 1 contact no value" in found["message"]
    assert "{{contact.last_name}} in step 2 has no fallback and 2 contacts no value" in found["message"]
    # A participant whose contact lost its channel before it was scheduled.
    bare = await org.contact(first_name="Z", telegram_id=None)
    await store.execute(
        "INSERT INTO campaign_participants (campaign_id, contact_id) VALUES ($1, $2)", cid, bare
    )
    found = await campaign.check("no_channel")
    assert (found["count"], found["sample"]) == (1, [str(bare)])
    assert found["message"].endswith("they fail without a send")


async def test_another_organizations_or_a_deleted_campaign__404(client, org, store):
    campaign = await ready(client, org)
    other = await make_org(store, "Other")
    for url, who in (
        (campaign.url, other),
        (f"/api/campaigns/{uuid.uuid4()}", org),
    ):
        response = await client.get(f"{url}/preflight", headers=who.headers())
        assert response.status_code == 404
        assert (await response.get_json())["error"] == "Campaign not found"
    await client.delete(campaign.url, headers=org.headers())
    response = await client.get(f"{campaign.url}/preflight", headers=org.headers())
    assert response.status_code == 404
