"""Starting a campaign with a large audience (actors/enrolment.py, migrations/0009): the participants due
first are written with the activation, the rest in a second transaction while the campaign already
sends; the start answers once every participant is scheduled. A second transaction that never commits is
made good by the campaign's next enrolment; changes to the campaign wait for the writer; the campaign is
not completed while its audience is being written. Sizes are scaled down (WRITE_AT_ONCE and friends)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
import uuid

import pytest
import trio

from campaignsvc.actors import enrolment
from campaignsvc.actors.messages import CampaignActivated, ParticipantsChanged
from campaignsvc.storage import enrolment as enrolment_db
from campaignsvc.storage import lifecycle as lifecycle_db
from campaignsvc.usecases import lifecycle as uc
from campaignsvc.usecases.common import Caller, Context
from tests.integration.dispatch_helpers import start_env

AUDIENCE = 25
GAP_S = 60


@pytest.fixture(autouse=True)
def small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enrolment, "WRITE_AT_ONCE", 10)
    monkeypatch.setattr(enrolment, "FIRST_ROWS", 4)
    monkeypatch.setattr(enrolment, "COPY_ROWS", 7)


async def _large_campaign(
    env, org, accounts: int = 3, first_delay_h: int = 1
) -> tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID]]:
    """A draft whose audience lists AUDIENCE contacts; its first step is due in an hour unless said
    otherwise (nothing is sent while a test looks at the due times)."""
    ids = [await org.bd_account() for _ in range(accounts)]
    contacts = await org.contacts(AUDIENCE)
    audience = {"contactIds": [str(c) for c in contacts], "sendDelaySeconds": GAP_S}
    steps = [{"delayHours": first_delay_h}, {}]
    cid = await env.campaign(accounts=ids, contacts=[], steps=steps, audience=audience)
    return uuid.UUID(cid), ids, contacts


async def _rows(store, cid):
    return await store.fetch(
        "SELECT contact_id, bd_account_id, next_send_at, enqueue_order FROM campaign_participants"
        " WHERE campaign_id = $1 ORDER BY enqueue_order",
        cid,
    )


async def _enrolling(store, cid) -> bool:
    return bool(await store.fetchval("SELECT count(*) FROM campaign_enrolments WHERE campaign_id = $1", cid))


def _paced(rows) -> None:
    """Every account's first sends are at least the gap apart, and the audience keeps its order."""
    per_account: dict[uuid.UUID, list[dt.datetime]] = {}
    for r in rows:
        per_account.setdefault(r["bd_account_id"], []).append(r["next_send_at"])
    for times in per_account.values():
        times.sort()
        assert all(b - a >= dt.timedelta(seconds=GAP_S) for a, b in itertools.pairwise(times))


async def test_large_start__earliest_participants_with_the_activation_the_rest_after(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid, accounts, contacts = await _large_campaign(env, org)
    caller, ctx = Caller(org.id, org.owner_id), Context.current(env.settings)

    started = await store.run(uc.start, caller, cid, ctx)
    assert started.value.row["status"] == "active"
    assert started.messages == (CampaignActivated(cid),)
    pending = started.value.pending
    assert pending is not None and len(pending) == AUDIENCE - 4
    first = await _rows(store, cid)
    assert len(first) == 4 and await _enrolling(store, cid)
    # The first transaction holds the participants due first: every account's first slot, then the next.
    assert {r["bd_account_id"] for r in first} == set(accounts)
    assert max(r["next_send_at"] for r in first) <= min(pending.due)

    finished = await store.run(uc.finish_start, caller, pending, ctx)
    assert (finished.value, finished.messages) == (AUDIENCE - 4, (ParticipantsChanged(cid),))
    rows = await _rows(store, cid)
    assert [r["contact_id"] for r in rows] == contacts
    assert [r["enqueue_order"] for r in rows] == list(range(AUDIENCE))
    assert sorted(sum(r["bd_account_id"] == a for r in rows) for a in accounts) == [8, 8, 9]
    _paced(rows)
    assert not await _enrolling(store, cid)
    # Written once: the second transaction finds nothing to do when called again.
    assert (await store.run(uc.finish_start, caller, pending, ctx)).value == 0


async def test_large_start__answers_when_all_are_scheduled_and_sends_before_the_rest_is_written(
    nursery, store, org, monkeypatch
):
    env = await start_env(nursery, store, org)
    small = await env.campaign(accounts=[await org.bd_account()], contacts=await org.contacts(2), steps=[{}])
    small_row = await env.api("POST", f"/api/campaigns/{small}/start")
    cid, _, _ = await _large_campaign(env, org, first_delay_h=0)
    sent_first: list[bool] = []
    write = enrolment.write_pending

    async def write_after_a_send(conn, pending):
        # The rest is written only once a first message went out: with the campaign's actor told after
        # the whole audience was written, this would wait out its deadline and find nothing sent.
        deadline = time.monotonic() + 20
        while not env.sandbox.state.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        sent_first.append(bool(env.sandbox.state.messages))
        return await write(conn, pending)

    monkeypatch.setattr(enrolment, "write_pending", write_after_a_send)
    row = await env.api("POST", f"/api/campaigns/{cid}/start")
    assert sent_first == [True]
    assert set(row) == set(small_row) and row["status"] == "active"
    rows = await _rows(store, cid)
    assert len(rows) == AUDIENCE and all(r["next_send_at"] is not None for r in rows)
    assert not await _enrolling(store, cid)


async def test_unfinished_start__the_campaign_actor_enrols_the_missing_contacts(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid, accounts, contacts = await _large_campaign(env, org)
    caller, ctx = Caller(org.id, org.owner_id), Context.current(env.settings)
    started = await store.run(uc.start, caller, cid, ctx)
    assert started.value.pending is not None
    # The second transaction never runs (the process died after the first): the actor, when it starts,
    # finds the enrolment nobody holds and enrols the audience's missing contacts.
    env.supervisor.bus.publish(CampaignActivated(cid))
    with trio.fail_after(20):
        while await _enrolling(store, cid):
            await trio.sleep(0.05)
    rows = await _rows(store, cid)
    assert [r["contact_id"] for r in rows] == contacts
    assert [r["enqueue_order"] for r in rows] == list(range(AUDIENCE))
    assert {r["bd_account_id"] for r in rows} == set(accounts)
    _paced(rows)  # placed after what each account had queued, at the gap


async def test_change_between_the_two_transactions__the_rest_is_placed_again(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid, accounts, _ = await _large_campaign(env, org)
    caller, ctx = Caller(org.id, org.owner_id), Context.current(env.settings)
    pending = (await store.run(uc.start, caller, cid, ctx)).value.pending
    assert pending is not None
    first = await _rows(store, cid)
    # The audience loses an account before the rest is written (as an edit would leave it).
    gone = accounts[0]
    await store.execute(
        """
        UPDATE campaigns SET updated_at = updated_at + interval '1 second',
               target_audience = jsonb_set(target_audience, '{bdAccountIds}', to_jsonb($2::text[]))
        WHERE id = $1
        """,
        cid,
        [str(a) for a in accounts[1:]],
    )
    finished = await store.run(uc.finish_start, caller, pending, ctx)
    rows = await _rows(store, cid)
    assert len(rows) == AUDIENCE and finished.value == AUDIENCE - len(first)
    on_gone = {r["contact_id"] for r in rows if r["bd_account_id"] == gone}
    assert on_gone and on_gone == {r["contact_id"] for r in first if r["bd_account_id"] == gone}
    _paced(rows)
    assert not await _enrolling(store, cid)


async def test_enrolling__the_campaign_is_not_completed_for_lack_of_participants(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid, _, _ = await _large_campaign(env, org)
    caller, ctx = Caller(org.id, org.owner_id), Context.current(env.settings)
    assert (await store.run(uc.start, caller, cid, ctx)).value.pending is not None
    await store.execute("UPDATE campaign_participants SET status = 'completed' WHERE campaign_id = $1", cid)
    wait = dt.timedelta(hours=1)
    assert await store.run(lifecycle_db.complete_if_done, cid, wait) == (False, None)
    assert await env.status(str(cid)) == "active"
    await store.run(enrolment_db.end_enrolment, cid)
    assert await store.run(lifecycle_db.complete_if_done, cid, wait) == (True, None)


async def test_enrolling__changes_to_the_campaign_wait_for_the_writer(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid, _, _ = await _large_campaign(env, org)
    caller, ctx = Caller(org.id, org.owner_id), Context.current(env.settings)
    assert (await store.run(uc.start, caller, cid, ctx)).value.pending is not None
    done: dict[str, float] = {}

    async def writer(conn) -> None:
        assert await enrolment_db.hold_enrolment(conn, cid, wait=True)
        await asyncio.sleep(1.0)
        await enrolment_db.end_enrolment(conn, cid)
        done["writer"] = time.monotonic()  # it commits after this

    nursery.start_soon(store.run, writer)
    await trio.sleep(0.3)
    stopped = await store.run(uc.stop, caller, cid)
    done["stop"] = time.monotonic()
    assert stopped.value["status"] == "completed"
    assert done["stop"] >= done["writer"]
