"""One outcome PostgreSQL would reject never stops the recorder (issue item 7): text from Messaging is made
storable, a row rejected anyway is recorded in a minimal form, and every slot is released."""

from __future__ import annotations

import uuid

import trio

from campaignsvc.actors.bus import Bus
from campaignsvc.actors.recorder import Outcome, Recorder
from campaignsvc.domain.campaign import ParticipantUpdate
from tests.integration.dispatch_helpers import start_env


async def _participants(env, org, n: int) -> tuple[uuid.UUID, list]:
    account = await org.bd_account()
    cid = await env.campaign(accounts=[account], contacts=await org.contacts(n), steps=[{}, {}])
    return uuid.UUID(cid), await env.participants(cid)


def _outcome(cid: uuid.UUID, org, row, **fields) -> Outcome:
    update = fields.pop("update", ParticipantUpdate(1, "sent", None, None, last_error=fields.get("error")))
    return Outcome(
        campaign_id=cid,
        organization_id=org.id,
        participant_id=row["id"],
        bd_account_id=row["bd_account_id"],
        step=0,
        update=update,
        **fields,
    )


async def _run(nursery, recorder: Recorder, released: list, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        recorder.record(o)
    with trio.fail_after(30):
        while len(released) < len(outcomes):
            await trio.sleep(0.02)


async def test_recorder__nul_bytes_and_an_overlong_channel_id_from_messaging_are_recorded(
    nursery, store, org
):
    env = await start_env(nursery, store, org)
    cid, rows = await _participants(env, org, 2)
    released: list = []
    recorder = Recorder(store, release=lambda *a: released.append(a), bus=Bus())
    await nursery.start(recorder.run)
    bad = _outcome(
        cid,
        org,
        rows[0],
        error="peer said \x00 no",
        error_class="recipient\x00",
        channel_id="9" * 300,
        event=("campaign.message.failed", {"campaignId": str(cid), "error": "x\x00y"}),
    )
    good = _outcome(cid, org, rows[1], channel_id="@fine")
    await _run(nursery, recorder, released, [bad, good])

    after = {r["id"]: r for r in await env.participants(str(cid))}
    assert after[rows[0]["id"]]["current_step"] == 1
    assert after[rows[0]["id"]]["last_error"] == "peer said  no"
    assert after[rows[0]["id"]]["channel_id"] == rows[0]["channel_id"]
    assert after[rows[1]["id"]]["channel_id"] == "@fine"
    data = await store.fetchval(
        "SELECT envelope FROM campaign_outbox WHERE event_type = 'campaign.message.failed'"
    )
    assert "x\x00y" not in str(data)
    assert recorder.rejected == 0


async def test_recorder__a_row_postgres_rejects_is_isolated_and_the_rest_recorded(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid, rows = await _participants(env, org, 3)
    released: list = []
    recorder = Recorder(store, release=lambda *a: released.append(a), bus=Bus())
    await nursery.start(recorder.run)
    rejected = _outcome(cid, org, rows[1], update=ParticipantUpdate(1, "s" * 80, None, None))
    first = [_outcome(cid, org, rows[0]), rejected, _outcome(cid, org, rows[2])]
    await _run(nursery, recorder, released, first)

    assert {r[1] for r in released} == {r["id"] for r in rows}
    assert recorder.rejected == 1
    after = {r["id"]: r for r in await env.participants(str(cid))}
    assert after[rows[0]["id"]]["current_step"] == 1
    assert after[rows[2]["id"]]["current_step"] == 1
    assert after[rows[1]["id"]]["current_step"] == 0  # nothing of it could be written; it stays due
    released.clear()
    await _run(nursery, recorder, released, [_outcome(cid, org, rows[1])])  # and the recorder goes on
    assert (await env.participants(str(cid)))[1]["current_step"] == 1
    assert recorder.pending == set()
