"""The lifecycle use cases without HTTP: each is one transaction that returns the new row and the control
messages to publish after the commit, and refuses with a use-case error (no HTTP in it)."""

from __future__ import annotations

import uuid

import pytest

from campaignsvc.actors.messages import CampaignActivated, CampaignDeactivated
from campaignsvc.usecases import lifecycle as uc
from campaignsvc.usecases.common import Caller, Context
from campaignsvc.usecases.errors import Conflict, Invalid, NotFound, WrongState
from tests.integration.dispatch_helpers import start_env


async def test_start_pause_resume_stop__rows_and_messages(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid = uuid.UUID(
        await env.campaign(accounts=[await org.bd_account()], contacts=await org.contacts(2), steps=[{}, {}])
    )
    caller, ctx = Caller(org.id, org.owner_id), Context.current(env.settings)

    started = await store.run(uc.start, caller, cid, ctx)
    assert started.value.row["status"] == "active"
    assert started.value.pending is None  # its participants were added before: all scheduled here
    assert started.messages == (CampaignActivated(cid),)
    with pytest.raises(WrongState):
        await store.run(uc.start, caller, cid, ctx)
    with pytest.raises(Conflict):
        await store.run(uc.resume, caller, cid, ctx)

    paused = await store.run(uc.pause, caller, cid)
    assert (paused.value["status"], paused.messages) == ("paused", (CampaignDeactivated(cid),))
    resumed = await store.run(uc.resume, caller, cid, ctx)
    assert (resumed.value["status"], resumed.messages) == ("active", (CampaignActivated(cid),))

    stopped = await store.run(uc.stop, caller, cid)
    assert (stopped.value["status"], stopped.messages) == ("completed", (CampaignDeactivated(cid),))
    events = await store.fetch(
        "SELECT event_type FROM campaign_outbox WHERE envelope->'data'->>'campaignId' = $1 ORDER BY seq",
        str(cid),
    )
    assert [e["event_type"] for e in events] == [
        "campaign.created",
        "campaign.started",
        "campaign.paused",
        "campaign.resumed",
        "campaign.completed",
    ]


async def test_refusals__name_what_is_wrong_and_change_nothing(nursery, store, org):
    env = await start_env(nursery, store, org)
    caller, ctx = Caller(org.id, org.owner_id), Context.current(env.settings)
    with pytest.raises(NotFound):
        await store.run(uc.start, caller, uuid.uuid4(), ctx)
    stepless = uuid.UUID(await env.campaign(accounts=[await org.bd_account()], contacts=[], steps=[]))
    with pytest.raises(Invalid, match="at least one sequence step"):
        await store.run(uc.start, caller, stepless, ctx)
    other = Caller(uuid.uuid4(), None)  # another organization never sees the campaign
    with pytest.raises(NotFound):
        await store.run(uc.pause, other, stepless)
    assert await store.fetchval("SELECT status FROM campaigns WHERE id = $1", stepless) == "draft"
    assert (
        await store.fetchval(
            "SELECT count(*) FROM campaign_outbox WHERE envelope->'data'->>'campaignId' = $1"
            " AND event_type <> 'campaign.created'",
            str(stepless),
        )
        == 0
    )
