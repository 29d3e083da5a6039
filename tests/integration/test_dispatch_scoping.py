"""The dispatcher reads only the campaign's own organization, and a deferral lands where it was placed."""

from __future__ import annotations

import datetime as dt
import uuid

from campaignsvc.storage import dispatch
from tests.factories import make_org
from tests.integration.dispatch_helpers import start_env


async def test_a_step_pointing_at_another_organizations_template__is_skipped_not_sent(nursery, store, org):
    env = await start_env(nursery, store, org)
    other = await make_org(store, "Other Org")
    foreign = await store.fetchval(
        """
        INSERT INTO campaign_templates (organization_id, name, channel, content)
        VALUES ($1, 'theirs', 'telegram', 'Their private text') RETURNING id
        """,
        other.id,
    )
    account = await org.bd_account()
    cid = await env.campaign(accounts=[account], contacts=await org.contacts(3), steps=[{}])
    # What the original service let a PATCH store: a step on another organization's template.
    await store.execute(
        "UPDATE campaign_sequences SET template_id = $2 WHERE campaign_id = $1", uuid.UUID(cid), foreign
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    assert env.sandbox.state.messages == []
    skipped = await store.fetch(
        "SELECT status, metadata FROM campaign_sends WHERE campaign_id = $1", uuid.UUID(cid)
    )
    assert [r["status"] for r in skipped] == ["skipped"] * 3


async def test_a_contacts_company_of_another_organization__is_not_rendered(nursery, store, org):
    env = await start_env(nursery, store, org)
    other = await make_org(store, "Other Org")
    their_company = await other.company("Their Secret Co")
    account = await org.bd_account()
    (contact,) = await org.contacts(1, first_name="Ann", company_id=their_company)
    cid = await env.campaign(
        accounts=[account], contacts=[contact], steps=[{"content": "Hi from {{company.name|us}}"}]
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    assert [m["content"] for m in env.sandbox.state.messages] == ["Hi from us"]


async def test_deferring_an_account__moves_its_participants_exactly_to_the_placed_time(store, org):
    account = await org.bd_account()
    contacts = await org.contacts(20)
    cid = await store.fetchval(
        "INSERT INTO campaigns (organization_id, name, status) VALUES ($1, 'c', 'active') RETURNING id",
        org.id,
    )
    now = dt.datetime.now(dt.UTC)
    for c in contacts:
        await store.execute(
            """
            INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, status, next_send_at)
            VALUES ($1, $2, $3, 'pending', $4)
            """,
            cid,
            c,
            account,
            now,
        )
    # The limiter placed `until` inside a short window already (with its jitter): no second jitter that
    # could carry a send past the window's end.
    until = now + dt.timedelta(hours=3)
    moved = await store.run(dispatch.defer_account_in_campaign, cid, account, until, "window")
    assert moved == 20
    due = await store.fetch(
        "SELECT DISTINCT next_send_at FROM campaign_participants WHERE campaign_id = $1", cid
    )
    assert [r["next_send_at"] for r in due] == [until]
