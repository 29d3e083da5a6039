"""Enrolment's insert of new, scheduled participants (storage/enrolment.insert_scheduled) goes through
COPY; a contact already in the campaign (added meanwhile by another writer) is skipped, as with the
``INSERT … ON CONFLICT DO NOTHING`` it falls back to."""

from __future__ import annotations

import datetime as dt
import uuid

from campaignsvc.storage import enrolment as enrolment_db
from tests.integration.dispatch_helpers import start_env


async def _rows(store, cid):
    return await store.fetch(
        "SELECT contact_id, bd_account_id, channel_id, next_send_at, status, current_step, enqueue_order"
        " FROM campaign_participants WHERE campaign_id = $1 ORDER BY enqueue_order",
        cid,
    )


async def test_insert_scheduled__rows_as_given(nursery, store, org):
    env = await start_env(nursery, store, org)
    accounts = [await org.bd_account(), await org.bd_account()]
    contacts = await org.contacts(3)
    cid = uuid.UUID(await env.campaign(accounts=accounts, contacts=[], steps=[{}, {}]))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    due = [now + dt.timedelta(seconds=i) for i in range(3)]
    written = await store.run(
        enrolment_db.insert_scheduled, cid, contacts, [0, 1, 2], [accounts[0], accounts[1], accounts[0]],
        ["11", "22", "33"], due, 1,
    )  # fmt: skip
    assert written == 3
    rows = [dict(r) for r in await _rows(store, cid)]
    assert rows == [
        {"contact_id": c, "bd_account_id": a, "channel_id": ch, "next_send_at": at, "status": "pending",
         "current_step": 1, "enqueue_order": i}
        for i, (c, a, ch, at) in enumerate(zip(contacts, [accounts[0], accounts[1], accounts[0]],
                                               ["11", "22", "33"], due, strict=True))
    ]  # fmt: skip


async def test_insert_scheduled__a_contact_already_in_the_campaign_is_skipped(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    taken, new = await org.contacts(2)
    cid = uuid.UUID(await env.campaign(accounts=[account], contacts=[taken], steps=[{}]))
    now = dt.datetime.now(dt.UTC)
    written = await store.run(
        enrolment_db.insert_scheduled, cid, [taken, new], [5, 6], [account] * 2, ["1", "2"], [now] * 2, 0
    )
    assert written == 1
    rows = await _rows(store, cid)
    assert sorted(r["contact_id"] for r in rows) == sorted([taken, new])
    assert next(r for r in rows if r["contact_id"] == new)["enqueue_order"] == 6
