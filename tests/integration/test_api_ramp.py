"""Ramp-up of a BD account over the real app and database (docs/semantics.md, "Ramp-up"): the endpoints
(validation, roles, tenancy), the throttle view, and with the dispatcher sending to the sandbox: a ramped
account sends only today's budget and the rest wait as ``ramp_up``; a PEER_FLOOD steps the ramp down."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

import trio

from campaignsvc.domain import schedule as sched
from campaignsvc.sandbox import SandboxConfig
from tests.factories import make_org
from tests.integration.dispatch_helpers import start_env

RAMP = {"startPerDay": 3, "increasePerDay": 2, "maxPerDay": 20}


def _zone_away_from_midnight() -> zoneinfo.ZoneInfo:
    """A zone where the local day does not end within the next two hours nor began within the last one,
    so that "today" stays today for the test."""
    for key in ("UTC", "Asia/Tokyo", "America/New_York", "Asia/Kolkata"):
        zone = zoneinfo.ZoneInfo(key)
        if 1 <= dt.datetime.now(zone).hour <= 21:
            return zone
    raise AssertionError("four zones hours apart cannot all be near midnight")


def _today(zone: zoneinfo.ZoneInfo, days: int = 0) -> str:
    return (dt.datetime.now(zone).date() + dt.timedelta(days=days)).isoformat()


def _next_midnight(zone: zoneinfo.ZoneInfo) -> dt.datetime:
    return sched.next_local_midnight(zone, dt.datetime.now(dt.UTC))


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _call(client, method: str, path: str, headers, json=None):
    response = await client.open(path, method=method, json=json, headers=headers)
    return response.status_code, await response.get_json()


async def test_ramp__put_get_delete(client, org, store):
    zone = _zone_away_from_midnight()
    account = await org.bd_account(display_name="Fresh", timezone=zone.key)
    url = f"/api/campaigns/agents/{account}/ramp"
    status, body = await _call(client, "GET", url, org.headers())
    assert (status, body["code"], body["error"]) == (404, "NOT_FOUND", "No ramp is set for this BD account")

    # Started two local days ago: 3 + 2 × 2 today, one more step tomorrow at local midnight.
    status, put = await _call(client, "PUT", url, org.headers(), {**RAMP, "startedOn": _today(zone, -2)})
    assert status == 200, put
    assert put["bdAccountId"] == str(account)
    assert (put["startPerDay"], put["increasePerDay"], put["maxPerDay"]) == (3, 2, 20)
    assert put["startedOn"] == _today(zone, -2)
    assert put["budgetToday"] == 7
    assert _parse(put["nextStepAt"]) == _next_midnight(zone)
    assert put["stepDown"] is None
    status, got = await _call(client, "GET", url, org.headers())
    assert status == 200 and got == put
    row = await store.fetchrow("SELECT * FROM campaign_account_ramps WHERE bd_account_id = $1", account)
    assert (row["start_per_day"], row["increase_per_day"], row["max_per_day"]) == (3, 2, 20)

    # A second PUT replaces it; at its maximum it no longer steps.
    status, put = await _call(
        client, "PUT", url, org.headers(), {**RAMP, "maxPerDay": 5, "startedOn": _today(zone, -2)}
    )
    assert status == 200 and put["budgetToday"] == 5 and put["nextStepAt"] is None

    status, _ = await _call(client, "DELETE", url, org.headers())
    assert status == 204
    assert await store.fetchval("SELECT count(*) FROM campaign_account_ramps") == 0
    status, body = await _call(client, "GET", url, org.headers())
    assert status == 404
    status, body = await _call(client, "DELETE", url, org.headers())
    assert status == 404 and body["error"] == "No ramp is set for this BD account"


async def test_ramp__validation_is_a_400_naming_the_field(client, org, store):
    account = await org.bd_account()
    url = f"/api/campaigns/agents/{account}/ramp"
    good = {**RAMP, "startedOn": "2026-01-05"}
    cases = [
        ({**good, "maxPerDay": 2}, "maxPerDay"),  # below startPerDay
        ({**good, "startPerDay": 0}, "startPerDay"),
        ({**good, "increasePerDay": -1}, "increasePerDay"),
        ({**good, "startPerDay": 1.5}, "startPerDay"),
        ({**good, "startPerDay": "3"}, "startPerDay"),
        ({**good, "maxPerDay": True}, "maxPerDay"),
        ({**good, "startedOn": "yesterday"}, "startedOn"),
        ({**good, "startedOn": "2026-02-30"}, "startedOn"),
        ({k: v for k, v in good.items() if k != "increasePerDay"}, "increasePerDay"),
    ]
    for body, path in cases:
        status, error = await _call(client, "PUT", url, org.headers(), body)
        assert status == 400, (body, error)
        assert error["code"] == "VALIDATION"
        assert [d["path"] for d in error["details"]] == [path], (body, error)
    status, error = await _call(client, "PUT", "/api/campaigns/agents/not-a-uuid/ramp", org.headers(), good)
    assert status == 400 and error["details"][0]["path"] == "accountId"
    assert await store.fetchval("SELECT count(*) FROM campaign_account_ramps") == 0


async def test_ramp__viewers_cannot_write_agents_see_their_own_accounts_other_orgs_nothing(
    client, org, store
):
    agent = await org.user("bidi")
    mine = await org.bd_account(display_name="Agent's", created_by_user_id=agent)
    someone_elses = await org.bd_account(display_name="Owner's")
    body = {**RAMP, "startedOn": "2026-01-05"}
    url = f"/api/campaigns/agents/{someone_elses}/ramp"
    assert (await _call(client, "PUT", url, org.headers(), body))[0] == 200

    # Viewers: no writes.
    for method in ("PUT", "DELETE"):
        status, error = await _call(client, method, url, org.headers("viewer"), body)
        assert (status, error["code"]) == (403, "FORBIDDEN"), method
    # An agent: its own accounts only.
    as_agent = org.headers("bidi", agent)
    assert (await _call(client, "GET", url, as_agent))[0] == 404
    assert (await _call(client, "PUT", url, as_agent, {**body, "startPerDay": 1}))[0] == 404
    status, own = await _call(client, "PUT", f"/api/campaigns/agents/{mine}/ramp", as_agent, body)
    assert status == 200 and own["bdAccountId"] == str(mine)
    # Another organization: 404 for every method, nothing changed.
    other = await make_org(store, "Other Org")
    for method in ("GET", "PUT", "DELETE"):
        status, error = await _call(client, method, url, other.headers(), {**body, "maxPerDay": 3})
        assert (status, error["error"]) == (404, "BD account not found"), method
    row = await store.fetchrow("SELECT * FROM campaign_account_ramps WHERE bd_account_id = $1", someone_elses)
    assert (row["start_per_day"], row["max_per_day"]) == (3, 20)
    assert await store.fetchval("SELECT count(*) FROM campaign_account_ramps") == 2


async def test_throttle__rows_show_the_ramp_cap_and_its_next_step(client, org, store):
    zone = _zone_away_from_midnight()
    ramped = await org.bd_account(display_name="Ramped", timezone=zone.key)
    plain = await org.bd_account(display_name="Plain", timezone=zone.key)
    body = {**RAMP, "startedOn": _today(zone, -1)}
    assert (await _call(client, "PUT", f"/api/campaigns/agents/{ramped}/ramp", org.headers(), body))[0] == 200
    status, rows = await _call(client, "GET", "/api/campaigns/agents/throttle", org.headers())
    assert status == 200
    by_id = {r["bdAccountId"]: r for r in rows}
    assert by_id[str(ramped)]["rampCap"] == 5
    assert _parse(by_id[str(ramped)]["rampNextStepAt"]) == _next_midnight(zone)
    assert by_id[str(plain)]["rampCap"] is None and by_id[str(plain)]["rampNextStepAt"] is None
    # Its own cap stays what it was; the ramp is shown beside it.
    assert by_id[str(ramped)]["dailyCap"] == by_id[str(plain)]["dailyCap"] == 20


async def _waiting_codes(env, campaign_id: str) -> list[str | None]:
    rows = await env.api("GET", f"/api/campaigns/{campaign_id}/participants?limit=100")
    return sorted((r["waiting"] or {}).get("code") or "none" for r in rows)


async def test_dispatch__a_ramped_account_sends_its_budget_and_the_rest_wait_as_ramp_up(nursery, store, org):
    env = await start_env(nursery, store, org)
    zone = _zone_away_from_midnight()
    account = await org.bd_account(display_name="Fresh", timezone=zone.key)
    await env.api(
        "PUT", f"/api/campaigns/agents/{account}/ramp", {**RAMP, "startPerDay": 2, "startedOn": _today(zone)}
    )
    contacts = await org.contacts(5)
    cid = await env.campaign(accounts=[account], contacts=contacts, steps=[{}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(2)
    with trio.fail_after(15):
        while await _waiting_codes(env, cid) != ["none", "none", "ramp_up", "ramp_up", "ramp_up"]:
            await trio.sleep(0.1)
    await trio.sleep(1.0)
    assert len(env.sandbox.state.messages) == 2  # the account cap is 0 (none): the ramp alone holds them
    # Enrolment spread them at the ramp's budget: placed after midnight, not handed back by the limiter.
    pending = [r for r in await env.participants(cid) if r["status"] == "pending"]
    assert [r["waiting_reason"] for r in pending] == [None, None, None]
    rows = await env.api("GET", f"/api/campaigns/{cid}/participants?limit=100")
    held = [r["waiting"] for r in rows if r["waiting"]]
    assert all(w["message"].startswith("Ramp-up of Fresh: 2/day today (4 tomorrow) reached") for w in held)
    assert all(_parse(w["until"]) >= _next_midnight(zone) for w in held)
    stats = await env.api("GET", f"/api/campaigns/{cid}/stats")
    assert stats["waiting"] == {"ramp_up": 3}
    page = await env.api("GET", f"/api/campaigns/{cid}/participants?waiting=ramp_up&limit=100")
    assert len(page) == 3
    # The live limiter's row in the throttle view.
    throttle = {r["bdAccountId"]: r for r in await env.api("GET", "/api/campaigns/agents/throttle")}
    live = throttle[str(account)]
    assert (live["rampCap"], live["sentToday"], live["state"]) == (2, 2, "daily_cap")
    assert _parse(live["rampNextStepAt"]) == _next_midnight(zone)

    # A new ramp reaches the live limiter at once (AccountChanged after the commit).
    await env.api(
        "PUT", f"/api/campaigns/agents/{account}/ramp", {**RAMP, "startPerDay": 4, "startedOn": _today(zone)}
    )
    with trio.fail_after(5):
        while True:
            throttle = {r["bdAccountId"]: r for r in await env.api("GET", "/api/campaigns/agents/throttle")}
            if throttle[str(account)]["rampCap"] == 4:
                break
            await trio.sleep(0.05)


async def test_dispatch__a_peer_flood_steps_the_ramp_down(nursery, store, org):
    zone = _zone_away_from_midnight()
    account = await org.bd_account(display_name="Fresh", timezone=zone.key)
    config = SandboxConfig(
        seed=1, latency_ms=0, jitter_ms=0, account_min_gap_s=0, peer_flood_accounts=[str(account)]
    )
    env = await start_env(nursery, store, org, sandbox=config, ramp_cool_off_hours=48.0)
    # Started four local days ago: 3 + 4 × 2 = 11 today.
    body = {**RAMP, "startedOn": _today(zone, -4)}
    before = await env.api("PUT", f"/api/campaigns/agents/{account}/ramp", body)
    assert before["budgetToday"] == 11 and before["stepDown"] is None
    contacts = await org.contacts(2)
    cid = await env.campaign(accounts=[account], contacts=contacts, steps=[{}])
    started = dt.datetime.now(dt.UTC)
    await env.api("POST", f"/api/campaigns/{cid}/start")
    with trio.fail_after(15):
        while (await env.api("GET", f"/api/campaigns/agents/{account}/ramp"))["stepDown"] is None:
            await trio.sleep(0.1)
    after = await env.api("GET", f"/api/campaigns/agents/{account}/ramp")
    assert after["budgetToday"] == 5  # half of 11
    step_down = after["stepDown"]
    assert step_down["budget"] == 5 and step_down["reason"] == "peer_flood"
    at = _parse(step_down["at"])
    assert started <= at <= dt.datetime.now(dt.UTC)
    assert _parse(step_down["until"]) == at + dt.timedelta(hours=48)
    # It grows again from the local day after the cool-off ends.
    assert _parse(after["nextStepAt"]) == sched.next_local_midnight(zone, at + dt.timedelta(hours=48))
    outcomes = [r.outcome for r in env.sandbox.state.received]
    assert "peer_flood" in outcomes and not env.sandbox.state.messages
    # Recorded with the block itself.
    blocked = await store.fetchrow(
        "SELECT flood_reason, flood_wait_until FROM bd_accounts WHERE id = $1", account
    )
    assert blocked["flood_reason"] == "peer_flood" and blocked["flood_wait_until"] is not None
    # The live limiter has the lowered budget.
    with trio.fail_after(10):
        while True:
            throttle = {r["bdAccountId"]: r for r in await env.api("GET", "/api/campaigns/agents/throttle")}
            if throttle[str(account)]["rampCap"] == 5:
                break
            await trio.sleep(0.1)


async def test_dispatch__a_short_flood_wait_leaves_the_ramp_as_it_is(nursery, store, org):
    config = SandboxConfig(seed=1, latency_ms=0, jitter_ms=0, account_min_gap_s=5, flood_wait_s=1)
    env = await start_env(nursery, store, org, sandbox=config)
    account = await org.bd_account(display_name="Fresh", timezone="UTC")
    body = {**RAMP, "startPerDay": 10, "startedOn": dt.datetime.now(dt.UTC).date().isoformat()}
    await env.api("PUT", f"/api/campaigns/agents/{account}/ramp", body)
    cid = await env.campaign(accounts=[account], contacts=await org.contacts(2), steps=[{}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed", within=30)
    assert [r.outcome for r in env.sandbox.state.received].count("flood_wait") >= 1
    ramp = await env.api("GET", f"/api/campaigns/agents/{account}/ramp")
    assert ramp["stepDown"] is None and ramp["budgetToday"] == 10
    assert uuid.UUID(ramp["bdAccountId"]) == account


async def test_dispatch__a_ramp_changed_by_another_process_reaches_the_live_limiter(nursery, store, org):
    # No AccountChanged on this process's bus: the reconciler sees the account's rules version change.
    env = await start_env(nursery, store, org, account_refresh_s=0.2)
    zone = _zone_away_from_midnight()
    account = await org.bd_account(display_name="Fresh", timezone=zone.key)
    cid = await env.campaign(accounts=[account], contacts=await org.contacts(1), steps=[{}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")

    async def live_ramp_cap() -> int | None:
        throttle = {r["bdAccountId"]: r for r in await env.api("GET", "/api/campaigns/agents/throttle")}
        return throttle[str(account)]["rampCap"]

    assert str(account) in {s["bdAccountId"] for s in env.supervisor.throttle()}  # a live limiter
    assert await live_ramp_cap() is None
    await store.execute(
        "INSERT INTO campaign_account_ramps (bd_account_id, start_per_day, increase_per_day, max_per_day, "
        "started_on) VALUES ($1, 6, 1, 9, $2)",
        account,
        dt.date.fromisoformat(_today(zone)),
    )
    with trio.fail_after(5):
        while await live_ramp_cap() != 6:
            await trio.sleep(0.05)
    await store.execute(
        "UPDATE campaign_account_ramps SET step_down_budget = 3, "
        "stepped_down_at = now(), step_down_until = now() + interval '1 hour'"
    )
    with trio.fail_after(5):
        while await live_ramp_cap() != 3:
            await trio.sleep(0.05)
    await store.execute("DELETE FROM campaign_account_ramps")
    with trio.fail_after(5):
        while await live_ramp_cap() is not None:
            await trio.sleep(0.05)
