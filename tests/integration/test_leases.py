"""Account leases over the real database (storage/leases.py, docs/architecture.md "Several instances"): fair
shares, takeover of a dead instance's accounts with what it left resolved, and the fence — a claim or an
outcome made under a lease that moved on is refused by the database."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs
import pytest

from campaignsvc.domain import claims as domain
from campaignsvc.domain.campaign import ParticipantUpdate
from campaignsvc.storage import claims, dispatch, leases
from tests.integration.test_claims import QUARANTINE, _ask, _started

LEASE = dt.timedelta(seconds=3)


@attrs.frozen
class Instance:
    id: str
    boot: uuid.UUID = attrs.Factory(uuid.uuid4)


async def _join(store, who: Instance) -> dict[uuid.UUID, int]:
    return await store.run(leases.join, who.id, who.boot, QUARANTINE)


async def _beat(store, who: Instance, **kw) -> leases.Round:
    return await store.run(leases.heartbeat, who.id, who.boot, LEASE, QUARANTINE, **kw)


async def _die(store, who: Instance) -> None:
    """The instance stops beating: its heartbeat is older than the lease."""
    await store.execute(
        "UPDATE campaign_instances SET heartbeat_at = now() - interval '1 minute' WHERE id = $1", who.id
    )


async def test_fair_shares__the_first_takes_all__a_second_gets_half_once_the_first_lets_go(store, org):
    accounts = {await org.bd_account() for _ in range(4)}
    a, b = Instance("a"), Instance("b")
    await _join(store, a)
    first = await _beat(store, a)
    assert set(first.held) == accounts and first.share == 4
    await _join(store, b)
    assert (await _beat(store, b)).held == {}  # nothing free yet
    again = await _beat(store, a)
    assert again.instances == 2 and again.share == 2
    released = sorted(again.held)[:2]
    after = await _beat(store, a, release=[(x, again.held[x]) for x in released])
    assert set(after.held) == accounts - set(released)
    taken = await _beat(store, b)
    assert set(taken.held) == set(released) and taken.taken_over == 0
    assert all(epoch == again.held[x] + 1 for x, epoch in taken.held.items())
    # The gap counts from the release at the earliest on the new owner.
    starts = await store.fetch(
        "SELECT bd_account_id, last_send_at FROM campaign_account_state WHERE bd_account_id = ANY($1::uuid[])",
        released,
    )
    assert {r["bd_account_id"] for r in starts} == set(released)


async def test_a_dead_instances_accounts__taken_over__its_sends_in_doubt__the_gap_from_its_lease_end(
    nursery, store, org
):
    plan, rows = await _started(nursery, store, org, contacts=2)
    account = rows[0]["bd_account_id"]
    a, b = Instance("a"), Instance("b")
    await _join(store, a)
    epoch = (await _beat(store, a)).held[account]
    await _join(store, b)
    results = await store.run(
        claims.claim_many, [attrs.evolve(_ask(plan, rows[0]), epoch=epoch)], quarantine=QUARANTINE, owner="a"
    )
    assert isinstance(results[0], domain.Claimed)
    send = await store.fetchrow(
        "SELECT status, sent_by FROM campaign_sends WHERE campaign_participant_id = $1", rows[0]["id"]
    )
    assert (send["status"], send["sent_by"]) == ("sending", "a")
    await _die(store, a)
    heartbeat = await store.fetchval("SELECT heartbeat_at FROM campaign_instances WHERE id = 'a'")

    taken = await _beat(store, b)

    assert taken.held[account] == epoch + 1 and taken.taken_over == 1
    status = await store.fetchval(
        "SELECT status FROM campaign_sends WHERE campaign_participant_id = $1", rows[0]["id"]
    )
    assert status == "in_doubt"
    waiting = await store.fetchrow(
        "SELECT waiting_reason FROM campaign_participants WHERE id = $1", rows[0]["id"]
    )
    assert waiting["waiting_reason"] == "in_doubt"
    last = await store.fetchval(
        "SELECT last_send_at FROM campaign_account_state WHERE bd_account_id = $1", account
    )
    assert last >= heartbeat + LEASE

    # The old owner, back from a pause: its claim and its outcome under the old epoch are refused.
    late = await store.run(
        claims.claim_many, [attrs.evolve(_ask(plan, rows[1]), epoch=epoch)], quarantine=QUARANTINE, owner="a"
    )
    assert late == [domain.NotDue(claims.LEASE_LOST)]
    send_id = await store.fetchval(
        "SELECT id FROM campaign_sends WHERE campaign_participant_id = $1", rows[0]["id"]
    )
    update = ParticipantUpdate(1, "completed", None, None)
    moved = await store.run(
        dispatch.record,
        [dispatch.Advance(rows[0]["id"], 0, update, dt.datetime.now(dt.UTC), None, epoch=epoch)],
        [dispatch.Finished(send_id, "sent", None, None, None, dt.datetime.now(dt.UTC), epoch=epoch)],
        owner="a",
    )
    assert moved == set()
    assert await store.fetchval("SELECT status FROM campaign_sends WHERE id = $1", send_id) == "in_doubt"
    # The new owner's outcome under its epoch is written.
    moved = await store.run(
        dispatch.record,
        [dispatch.Advance(rows[0]["id"], 0, update, dt.datetime.now(dt.UTC), None, epoch=epoch + 1)],
        [dispatch.Finished(send_id, "sent", None, None, None, dt.datetime.now(dt.UTC), epoch=epoch + 1)],
        owner="b",
    )
    assert moved == {rows[0]["id"]}


async def test_a_restart_under_the_same_id__takes_its_leases_back_at_once_under_new_epochs(store, org):
    account = await org.bd_account()
    first = Instance("same")
    await _join(store, first)
    epoch = (await _beat(store, first)).held[account]
    second = Instance("same")  # a new boot: the first process died (or is a stray twin)
    held = await _join(store, second)
    assert held == {account: epoch + 1}
    # The earlier boot finds itself superseded at its next heartbeat.
    assert (await _beat(store, first)).alive is False
    assert (await _beat(store, second)).held == {account: epoch + 1}


@pytest.mark.parametrize("leave", [True, False])
async def test_leave__a_clean_shutdown_frees_every_lease_for_the_next_heartbeat(store, org, leave):
    account = await org.bd_account()
    a, b = Instance("a"), Instance("b")
    await _join(store, a)
    await _beat(store, a)
    await _join(store, b)
    if leave:
        await store.run(leases.leave, a.id, a.boot)
    assert bool((await _beat(store, b)).held) is leave
    assert (await store.run(leases.owners, [account]))[account] == ("b" if leave else "a")
