"""Claims in batches (storage/claims.py, actors/claimer.py): one transaction for many sends gives each the
result a claim of its own would, a row that fails falls back without failing the others, and batches
that overlap never deadlock."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import trio
import trio.testing

from campaignsvc.actors.claimer import Claimer
from campaignsvc.config import Settings
from campaignsvc.domain import claims as domain
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.runtime import build
from campaignsvc.storage import claims, dispatch
from tests.integration.dispatch_helpers import Env

QUARANTINE = dt.timedelta(minutes=15)


async def _started(nursery, store, org, *, contacts: int, steps: list[dict[str, Any]] | None = None):
    """An active campaign whose participants are all due, with nothing sending them (no supervisor)."""
    settings = Settings.from_env({}, messaging_service_url="http://127.0.0.1:9", log_level="warning")
    runtime = build(settings, store)
    await runtime.start(nursery, supervise=False)
    env = Env(store, settings, None, runtime.supervisor, runtime.services, runtime.app().test_client(), org)
    account = await org.bd_account()
    cid = await env.campaign(accounts=[account], contacts=await org.contacts(contacts), steps=steps or [{}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await store.execute(
        "UPDATE campaign_participants SET next_send_at = now() WHERE campaign_id = $1", uuid.UUID(cid)
    )
    campaign, step_rows = await store.run(dispatch.load_campaign, uuid.UUID(cid))
    plan = CampaignPlan.from_rows(campaign, step_rows, reply_wait_hours=settings.reply_wait_hours)
    rows = await store.fetch(
        "SELECT id, bd_account_id FROM campaign_participants WHERE campaign_id = $1 ORDER BY id", plan.id
    )
    return plan, rows


def _ask(plan: CampaignPlan, row: Any, decide: Any = None) -> claims.Ask:
    now = dt.datetime.now(dt.UTC)
    key = plan.steps[0].key
    assert key is not None
    return claims.Ask(
        participant_id=row["id"],
        step=0,
        step_key=key,
        bd_account_id=row["bd_account_id"],
        decide=decide or (lambda facts: domain.decide(plan, 0, None, random.Random(1), now, "", facts)),
    )


async def test_a_batch__gives_each_ask_what_a_claim_of_its_own_would(nursery, store, org):
    plan, rows = await _started(nursery, store, org, contacts=6)
    sent, doubted, retried, replied, gone, fresh = rows
    # Already sent; claimed a moment ago (in doubt); in doubt long ago (retry with its key and text).
    for row, status, claimed_ago in (
        (sent, "sent", 60),
        (doubted, "sending", 1),
        (retried, "in_doubt", 3600),
    ):
        await store.execute(
            """
            INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, idempotency_key, content,
                                        campaign_id, bd_account_id, attempts, claimed_at, sent_at)
            VALUES ($1, $2, $3, $4, 'earlier text', $5, $6, 1, now() - make_interval(secs => $7), now())
            """,
            row["id"],
            plan.steps[0].key,
            status,
            f"key-{row['id']}",
            plan.id,
            row["bd_account_id"],
            float(claimed_ago),
        )
    await store.execute("UPDATE campaign_participants SET status = 'replied' WHERE id = $1", replied["id"])
    await store.execute(
        "UPDATE contacts SET deleted_at = now() WHERE id = (SELECT contact_id FROM campaign_participants WHERE id = $1)",
        gone["id"],
    )
    asks = [_ask(plan, r) for r in rows]

    results = await store.run(claims.claim_many, asks, quarantine=QUARANTINE)

    assert isinstance(results[0], domain.Recovered)
    assert isinstance(results[1], domain.Quarantined)
    assert isinstance(results[2], domain.Claimed)
    assert (results[2].idempotency_key, results[2].content) == (f"key-{retried['id']}", "earlier text")
    assert isinstance(results[3], domain.NotDue)
    assert isinstance(results[4], domain.ContactGone)
    assert isinstance(results[5], domain.Claimed)
    assert results[5].idempotency_key == claims.idempotency_key(plan.id, fresh["id"], plan.steps[0].key)
    ledger = {
        r["campaign_participant_id"]: (r["status"], r["attempts"])
        for r in await store.fetch("SELECT * FROM campaign_sends WHERE campaign_id = $1", plan.id)
    }
    assert ledger[doubted["id"]] == ("in_doubt", 1)
    assert ledger[retried["id"]] == ("sending", 2)
    assert ledger[fresh["id"]] == ("sending", 1)
    assert results[5].send_id == await store.fetchval(
        "SELECT id FROM campaign_sends WHERE campaign_participant_id = $1", fresh["id"]
    )
    waiting = await store.fetchrow(
        "SELECT next_send_at, waiting_reason FROM campaign_participants WHERE id = $1", doubted["id"]
    )
    assert waiting["waiting_reason"] == "in_doubt" and waiting["next_send_at"] == results[1].until
    assert await store.fetchval(
        "SELECT last_send_at IS NOT NULL FROM campaign_account_state WHERE bd_account_id = $1",
        fresh["bd_account_id"],
    )


async def test_a_second_claim_of_a_step__finds_it_taken(nursery, store, org):
    plan, rows = await _started(nursery, store, org, contacts=3)
    asks = [_ask(plan, r) for r in rows]
    first = await store.run(claims.claim_many, asks, quarantine=QUARANTINE)
    again = await store.run(claims.claim_many, asks, quarantine=QUARANTINE)
    assert all(isinstance(r, domain.Claimed) for r in first)
    assert all(isinstance(r, domain.Quarantined) for r in again)
    assert await store.fetchval("SELECT count(*) FROM campaign_sends WHERE campaign_id = $1", plan.id) == 3


async def test_the_claimer__claims_waiting_asks_together(nursery, store, org):
    plan, rows = await _started(nursery, store, org, contacts=20)
    claimer = Claimer(store, quarantine=QUARANTINE)
    results: list[Any] = []

    async def ask(row: Any) -> None:
        results.append(await claimer.claim(_ask(plan, row)))

    async with trio.open_nursery() as asking:
        for row in rows:
            asking.start_soon(ask, row)
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(claimer.run)
    assert len(results) == 20 and all(isinstance(r, domain.Claimed) for r in results)
    assert (claimer.batches, claimer.claimed) == (1, 20)


async def test_an_ask_that_fails__fails_alone(nursery, store, org):
    plan, rows = await _started(nursery, store, org, contacts=5)
    claimer = Claimer(store, quarantine=QUARANTINE)
    outcomes: dict[uuid.UUID, Any] = {}

    def broken(facts: domain.Facts) -> Any:
        raise RuntimeError("a template that cannot be decided")

    async def ask(row: Any, decide: Any = None) -> None:
        try:
            outcomes[row["id"]] = await claimer.claim(_ask(plan, row, decide))
        except RuntimeError as exc:
            outcomes[row["id"]] = exc

    async with trio.open_nursery() as asking:
        for i, row in enumerate(rows):
            asking.start_soon(ask, row, broken if i == 2 else None)
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(claimer.run)
    assert isinstance(outcomes[rows[2]["id"]], RuntimeError)
    assert all(isinstance(outcomes[r["id"]], domain.Claimed) for i, r in enumerate(rows) if i != 2)
    # The failed batch left nothing behind: four claims of their own, each committed once.
    assert await store.fetchval("SELECT count(*) FROM campaign_sends WHERE campaign_id = $1", plan.id) == 4


async def test_overlapping_batches__never_deadlock(nursery, store, org):
    plan, rows = await _started(nursery, store, org, contacts=40)
    asks = [_ask(plan, r) for r in rows]
    errors: list[BaseException] = []

    async def claim(batch: list[claims.Ask]) -> None:
        try:
            await store.run(claims.claim_many, batch, quarantine=QUARANTINE)
        except Exception as exc:  # a deadlock, which the lock order prevents
            errors.append(exc)

    async with trio.open_nursery() as both:
        for _ in range(3):
            both.start_soon(claim, asks)
            both.start_soon(claim, list(reversed(asks)))
    assert not errors
    assert await store.fetchval("SELECT count(*) FROM campaign_sends WHERE campaign_id = $1", plan.id) == 40
