"""Editing the steps of a paused campaign: participants follow their step, nobody gets a step twice.

Each test sends the first step to everybody, pauses, edits the sequence through the API, resumes and
checks at the sandbox what every contact received (docs/semantics.md, "Editing a sequence").
"""

from __future__ import annotations

import collections
import uuid

import trio

from campaignsvc.sandbox import SandboxConfig
from tests.integration.dispatch_helpers import Env, start_env


async def _started_and_paused_after_first_step(env: Env, org, steps: list[dict]) -> tuple[str, list[dict]]:
    account = await org.bd_account()
    contacts = await org.contacts(5)
    cid = await env.campaign(accounts=[account], contacts=contacts, steps=steps)
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(len(contacts))
    await env.api("POST", f"/api/campaigns/{cid}/pause")
    rows = await env.api("GET", f"/api/campaigns/{cid}/sequences")
    return cid, rows


async def _resume_and_finish(env: Env, cid: str) -> None:
    await env.api("POST", f"/api/campaigns/{cid}/resume")
    # The later steps wait a minute after the first one; bring them forward instead of waiting.
    await env.store.execute(
        "UPDATE campaign_participants SET next_send_at = now() WHERE campaign_id = $1 AND next_send_at IS NOT NULL",
        uuid.UUID(cid),
    )
    env.supervisor.campaigns[uuid.UUID(cid)].actor.wake()
    await env.wait_status(cid, "completed", within=60)


def _texts_per_contact(env: Env) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = collections.defaultdict(list)
    for m in env.sandbox.state.messages:
        texts[m["contact_id"]].append(m["content"].split(" for ")[0])
    return texts


async def test_swapping_two_steps_after_the_first_was_sent__sends_the_other_once_and_never_the_first_again(
    nursery, store, org
):
    env = await start_env(nursery, store, org)
    cid, (a, b) = await _started_and_paused_after_first_step(
        env, org, [{"content": "A for you"}, {"content": "B for you", "delayMinutes": 1}]
    )
    await env.api("PATCH", f"/api/campaigns/{cid}/sequences/{a['id']}", {"orderIndex": 1})
    await env.api("PATCH", f"/api/campaigns/{cid}/sequences/{b['id']}", {"orderIndex": 0})
    await _resume_and_finish(env, cid)

    texts = _texts_per_contact(env)
    assert len(texts) == 5
    assert all(sorted(t) == ["A", "B"] for t in texts.values()), texts
    assert set(env.sent_keys().values()) == {1}
    assert {r["status"] for r in await env.participants(cid)} == {"completed"}


async def test_deleting_the_step_participants_wait_for__moves_them_to_the_next_one(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid, (_, b, _) = await _started_and_paused_after_first_step(
        env,
        org,
        [{"content": "A for you"}, {"content": "B for you", "delayMinutes": 1}, {"content": "C for you"}],
    )
    await env.api("DELETE", f"/api/campaigns/{cid}/sequences/{b['id']}", expect=204)
    rows = await env.participants(cid)
    assert {(r["current_step"], r["status"]) for r in rows} == {(1, "sent")}
    await _resume_and_finish(env, cid)

    texts = _texts_per_contact(env)
    assert all(t == ["A", "C"] for t in texts.values()), texts
    assert set(env.sent_keys().values()) == {1}


async def test_deleting_the_last_step_participants_wait_for__completes_them(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid, (_, b) = await _started_and_paused_after_first_step(
        env, org, [{"content": "A for you"}, {"content": "B for you", "delayMinutes": 1}]
    )
    await env.api("DELETE", f"/api/campaigns/{cid}/sequences/{b['id']}", expect=204)
    assert {r["status"] for r in await env.participants(cid)} == {"completed"}
    await env.api("POST", f"/api/campaigns/{cid}/resume")
    await env.wait_status(cid, "completed", within=30)
    assert all(t == ["A"] for t in _texts_per_contact(env).values())


async def test_a_step_inserted_before_the_one_participants_wait_for__is_not_sent_to_them(nursery, store, org):
    env = await start_env(nursery, store, org)
    cid, _ = await _started_and_paused_after_first_step(
        env, org, [{"content": "A for you"}, {"content": "B for you", "delayMinutes": 1, "orderIndex": 2}]
    )
    template = await env.api(
        "POST",
        f"/api/campaigns/{cid}/templates",
        {"name": "n", "channel": "telegram", "content": "N for you"},
        201,
    )
    body = {"orderIndex": 1, "templateId": template["id"], "delayHours": 0, "delayMinutes": 0}
    await env.api("POST", f"/api/campaigns/{cid}/sequences", body, 201)
    assert {r["current_step"] for r in await env.participants(cid)} == {2}
    await _resume_and_finish(env, cid)

    assert all(t == ["A", "B"] for t in _texts_per_contact(env).values())
    keys = env.sent_keys()
    assert set(keys.values()) == {1}
    # Keys name the step, not its position: B kept the key it had before the insert.
    assert {k.rsplit(":", 1)[1] for k in keys} == {"0", "1"}


async def test_a_new_step_never_takes_the_key_of_a_deleted_step_that_was_sent(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    cid = await env.campaign(accounts=[account], contacts=await org.contacts(2), steps=[{}, {}])
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_status(cid, "completed")
    _, b = await env.api("GET", f"/api/campaigns/{cid}/sequences")
    await env.api("DELETE", f"/api/campaigns/{cid}/sequences/{b['id']}", expect=204)
    template = await env.api(
        "POST", f"/api/campaigns/{cid}/templates", {"name": "c", "channel": "telegram", "content": "C"}, 201
    )
    body = {"orderIndex": 5, "templateId": template["id"], "delayHours": 0, "delayMinutes": 0}
    c = await env.api("POST", f"/api/campaigns/{cid}/sequences", body, 201)
    keys = await store.fetch(
        "SELECT id, step_key FROM campaign_sequences WHERE campaign_id = $1", uuid.UUID(cid)
    )
    # B (key 1) is gone but its sends keep key 1 in the ledger: C must not be sent under it.
    assert {str(r["id"]): r["step_key"] for r in keys}[c["id"]] == 2


async def test_deleting_a_step_while_a_send_is_under_way__waits_for_its_outcome(nursery, store, org):
    """A send claimed before the pause is still at Messaging when the next step is deleted: its outcome,
    recorded from the sequence it was claimed with, must not leave the participant waiting at a position
    that no longer exists. The edit waits for the outcome, then moves the participant on."""
    config = SandboxConfig(seed=1, latency_ms=1500, jitter_ms=0, account_min_gap_s=0)
    env = await start_env(nursery, store, org, sandbox=config)
    account = await org.bd_account()
    contacts = await org.contacts(1)
    cid = await env.campaign(
        accounts=[account],
        contacts=contacts,
        steps=[{"content": "A for you"}, {"content": "B for you", "delayMinutes": 1}],
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    with trio.fail_after(10):
        while not await store.fetchval("SELECT count(*) FROM campaign_sends WHERE status = 'sending'"):
            await trio.sleep(0.02)
    await env.api("POST", f"/api/campaigns/{cid}/pause")
    _, b = await env.api("GET", f"/api/campaigns/{cid}/sequences")
    await env.api("DELETE", f"/api/campaigns/{cid}/sequences/{b['id']}", expect=204)
    assert await store.fetchval("SELECT count(*) FROM campaign_sends WHERE status = 'sending'") == 0
    assert [(r["status"], r["current_step"]) for r in await env.participants(cid)] == [("completed", 1)]
    await env.api("POST", f"/api/campaigns/{cid}/resume")
    await env.wait_status(cid, "completed", within=30)
    assert all(t == ["A"] for t in _texts_per_contact(env).values())
