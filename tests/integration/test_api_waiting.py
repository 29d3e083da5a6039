"""Why each participant waits, over the real app and database: every code from the state that causes it —
in the participants' rows, counted in the stats, and as the ``waiting`` filter — and, with the dispatcher
running, ``until`` is when the send then goes out."""

from __future__ import annotations

import collections
import datetime as dt
import uuid

import trio

from tests.integration.dispatch_helpers import start_env
from tests.integration.test_api_reporting import Scenario, _scenario

UTC = dt.UTC
GAP_S = 60
MARGIN = dt.timedelta(milliseconds=20)  # CAMPAIGN_GAP_SAFETY_MARGIN_MS's default


def ms(value: dt.datetime) -> dt.datetime:
    """As the API writes times: to the millisecond."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def parse(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _with_template(s: Scenario, content: str) -> None:
    template = await s.store.fetchval(
        "INSERT INTO campaign_templates (organization_id, campaign_id, name, channel, content) "
        "VALUES ($1, $2, 't', 'telegram', $3) RETURNING id",
        s.org.id,
        s.id,
        content,
    )
    await s.store.execute(
        "INSERT INTO campaign_sequences (campaign_id, order_index, template_id, delay_hours) "
        "VALUES ($1, 0, $2, 0), ($1, 1, $2, 24)",
        s.id,
        template,
    )


async def _every_code(
    client, org, store
) -> tuple[Scenario, dict[uuid.UUID, str], dict[str, dict[str, object]]]:
    """An active campaign with participants waiting for every reason but a paused campaign; the code
    each should show."""
    now = dt.datetime.now(UTC)
    s = await _scenario(client, org, store)
    await store.execute(
        "UPDATE campaigns SET status = 'active', target_audience = $2 WHERE id = $1",
        s.id,
        {"sendDelaySeconds": GAP_S},
    )
    await _with_template(s, "Hi {{contact.first_name}}")
    good = await org.bd_account(display_name="Anna")
    busy = await org.bd_account(display_name="Busy")
    flooded = await org.bd_account(display_name="Flooded", flood_wait_until=now + dt.timedelta(hours=1))
    inactive = await org.bd_account(display_name="Off", is_active=False)
    restricted = await org.bd_account(display_name="Spam", spam_restricted_at=now)
    later = now + dt.timedelta(hours=2)
    expected: dict[uuid.UUID, str] = {}
    extra: dict[str, dict[str, object]] = {}

    async def add(code: str, **columns) -> uuid.UUID:
        columns.setdefault("bd_account_id", good)
        columns.setdefault("status", "pending")
        columns.setdefault("current_step", 0)
        pid = await s.participant(**columns)
        expected[pid] = code
        return pid

    await add("step_delay", status="sent", current_step=1, next_send_at=later, last_sent_at=now)
    await add("queued", next_send_at=later)  # a first send spread behind the account's others
    await add("daily_cap", next_send_at=later, waiting_reason="cap")
    await add("outside_window", next_send_at=later, waiting_reason="window")
    await add("in_doubt", status="sent", current_step=1, next_send_at=later, waiting_reason="in_doubt")
    await add("retry_backoff", next_send_at=later, waiting_reason="retry", last_error="HTTP 500")
    await add("account_paused", next_send_at=later, waiting_reason="account_paused")
    replied_wait = now - dt.timedelta(hours=1)
    reply = await add(
        "awaiting_reply", status="sent", current_step=1, waiting_reason="reply", last_sent_at=replied_wait
    )
    extra["awaiting_reply"] = {"id": reply, "until": replied_wait + dt.timedelta(hours=168)}
    nameless = await org.contact(first_name="", telegram_id="7999")
    await add("missing_data", contact=nameless, next_send_at=later)
    await add("flood_blocked", bd_account_id=flooded, next_send_at=now - dt.timedelta(seconds=5))
    await add("account_inactive", bd_account_id=inactive, next_send_at=later)
    await add("account_restricted", bd_account_id=restricted, next_send_at=later)
    # Busy sent 10 s ago: its first due participant waits for the gap, the next one behind it.
    sent = await s.participant(bd_account_id=busy, status="completed", last_sent_at=now)
    busy_at = now - dt.timedelta(seconds=10)
    await s.send(sent, 0, busy_at, bd_account_id=busy)
    head = await add("gap", bd_account_id=busy, next_send_at=now - dt.timedelta(seconds=2))
    behind = await add("queued", bd_account_id=busy, next_send_at=now - dt.timedelta(seconds=1))
    extra["gap"] = {"id": head, "until": busy_at + dt.timedelta(seconds=GAP_S) + MARGIN}
    extra["queued_behind"] = {"id": behind, "until": busy_at + dt.timedelta(seconds=2 * GAP_S) + 2 * MARGIN}
    # Capped used today's one send: a first send spread past its next midnight waits for the cap (the
    # stats once counted these as queued: a group's time was taken as "any later time").
    capped = await org.bd_account(display_name="Capped", max_dm_per_day=1)
    done = await s.participant(bd_account_id=capped, status="completed", last_sent_at=now)
    await s.send(done, 0, now, bd_account_id=capped, claimed_at=now)
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(1), UTC)
    await add("daily_cap", bd_account_id=capped, next_send_at=tomorrow)
    await add("queued", bd_account_id=capped, next_send_at=now + dt.timedelta(seconds=30))
    await s.participant(status="completed", bd_account_id=good)  # finished: no waiting
    return s, expected, extra


async def test_waiting__every_code_in_rows_stats_and_filter(client, org, store):
    s, expected, extra = await _every_code(client, org, store)
    status, rows = await s.get("/participants?limit=100")
    assert status == 200
    shown = {uuid.UUID(r["participant_id"]): r["waiting"] for r in rows}
    assert {pid: (w["code"] if w else None) for pid, w in shown.items() if pid in expected} == expected
    assert sum(1 for w in shown.values() if w is None) == 3  # the completed ones
    for code, want in extra.items():
        if "until" in want:
            assert parse(shown[want["id"]]["until"]) == ms(want["until"]), code
    assert all(w["message"] for w in shown.values() if w)
    assert "Anna" in shown[next(p for p, c in expected.items() if c == "account_paused")]["message"]

    status, stats = await s.get("/stats")
    assert status == 200
    assert stats["waiting"] == dict(collections.Counter(expected.values()))

    for code in set(expected.values()):
        status, page = await s.get(f"/participants?waiting={code}&limit=100")
        assert status == 200, page
        assert {uuid.UUID(r["participant_id"]) for r in page} == {
            p for p, c in expected.items() if c == code
        }, code
    status, page = await s.get("/participants?waiting=campaign_paused")
    assert (status, page) == (200, [])


async def test_waiting__paused_campaign_and_bad_code(client, org, store):
    s = await _scenario(client, org, store)
    account = await org.bd_account()
    await store.execute("UPDATE campaigns SET status = 'paused' WHERE id = $1", s.id)
    pid = await s.participant(status="pending", bd_account_id=account, next_send_at=dt.datetime.now(UTC))
    status, rows = await s.get("/participants")
    assert rows[0]["waiting"]["code"] == "campaign_paused" and rows[0]["participant_id"] == str(pid)
    status, stats = await s.get("/stats")
    assert stats["waiting"] == {"campaign_paused": 1}
    status, body = await s.get("/participants?waiting=sleeping")
    assert status == 400 and "waiting" in str(body)


async def test_waiting__csv_export_has_the_code_until_and_message(client, org, store):
    s, expected, _ = await _every_code(client, org, store)
    response = await client.get(f"{s.url}/participants/export?format=csv", headers=org.headers())
    text = (await response.get_data()).decode("utf-8-sig")
    header, *lines = text.strip().split("\r\n")
    columns = header.split(",")
    assert columns[-4:] == ["waiting", "waiting_until", "waiting_message", "reply_intent"]
    codes = collections.Counter(line.split(",")[columns.index("waiting")] for line in lines)
    # Messages hold commas: only the code column is read by position here (it comes before them).
    assert {c: n for c, n in codes.items() if c} == dict(collections.Counter(expected.values()))


async def test_waiting__live_until_is_when_the_send_goes_out(nursery, store, org):
    """With the dispatcher running: the rows say queued with the times enrolment spread, the gap for one
    made due early, and the sends go out then."""
    env = await start_env(nursery, store, org)
    account = await org.bd_account(display_name="Live")
    contacts = await org.contacts(3)
    cid = await env.campaign(
        accounts=[account], contacts=contacts, steps=[{}], audience={"sendDelaySeconds": 4}
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    with trio.fail_after(10):  # the first send's outcome is recorded: its participant is finished
        while not await store.fetchval(
            "SELECT count(*) FROM campaign_participants WHERE status = 'completed'"
        ):
            await trio.sleep(0.02)
    rows = await env.api("GET", f"/api/campaigns/{cid}/participants")
    waiting = [r["waiting"] for r in rows if r["waiting"] is not None]
    assert [w["code"] for w in waiting] == ["queued", "queued"]
    promised = sorted(parse(w["until"]) for w in waiting)
    stats = await env.api("GET", f"/api/campaigns/{cid}/stats")
    assert stats["waiting"] == {"queued": 2}
    await env.wait_sent(3, within=20)
    arrived = sorted(r.received_at for r in env.sandbox.state.received if r.outcome == "sent")[1:]
    for at, want in zip(arrived, promised, strict=True):
        assert abs((at - want).total_seconds()) < 0.5, (at, want)
