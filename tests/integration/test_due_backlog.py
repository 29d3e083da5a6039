"""A campaign with more participants due at once than its actor reads in one window (``LOAD_LIMIT``) keeps
sending at the pace its accounts allow (issue item 3): an overdue window used to set the next read in the
past, and the actor re-read in a tight loop without ever reading its inbox."""

from __future__ import annotations

from campaignsvc.actors import campaign as campaign_actor
from tests.integration.dispatch_helpers import start_env


async def test_due_backlog_beyond_one_load__every_participant_is_sent(nursery, store, org, monkeypatch):
    # A smaller window keeps the run short; the path is the one 3,000 due rows over 2,000 take.
    monkeypatch.setattr(campaign_actor, "LOAD_LIMIT", 200)
    env = await start_env(nursery, store, org)
    accounts = [await org.bd_account() for _ in range(10)]
    contacts = await org.contacts(600)
    cid = await env.campaign(accounts=accounts, contacts=contacts, steps=[{}])
    assert len(contacts) > campaign_actor.LOAD_LIMIT
    await env.api("POST", f"/api/campaigns/{cid}/start")

    await env.wait_status(cid, "completed", within=120)
    keys = env.sent_keys()
    assert len(keys) == 600
    assert set(keys.values()) == {1}
