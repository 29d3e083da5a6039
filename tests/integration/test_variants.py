"""A/B variants per step over the real app, dispatcher and database: each participant is sent its own
deterministic arm and the ledger records it; the analytics count sends, replies, positive replies and
unsubscribes per arm, with the winner rule and its sample guard; autoWinner sends only the winner; the
endpoints' validation, roles and conflicts."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import trio

from campaignsvc.domain import variants as v
from tests.factories import make_org
from tests.integration.dispatch_helpers import Env, start_env

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


async def _template(env: Env, cid: str, content: str, name: str = "variant") -> str:
    row = await env.api(
        "POST",
        f"/api/campaigns/{cid}/templates",
        {"name": name, "channel": "telegram", "content": content},
        201,
    )
    return row["id"]


async def _as(env: Env, headers: dict[str, str], method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = await env.client.open(path, method=method, json=body, headers=headers)
    return response.status_code, await response.get_json()


async def _steps(env: Env, cid: str) -> list[dict[str, Any]]:
    return await env.api("GET", f"/api/campaigns/{cid}/sequences")


async def _step_key(env: Env, step_id: str) -> int:
    return await env.store.fetchval(
        "SELECT step_key FROM campaign_sequences WHERE id = $1", uuid.UUID(step_id)
    )


async def _ledger(env: Env, cid: str) -> list[Any]:
    with trio.fail_after(30):
        while True:
            rows = await env.store.fetch(
                """
                SELECT s.*, cp.contact_id FROM campaign_sends s
                JOIN campaign_participants cp ON cp.id = s.campaign_participant_id
                WHERE s.campaign_id = $1 AND s.status = 'sent'
                """,
                uuid.UUID(cid),
            )
            if len(rows) >= len(await env.participants(cid)):
                return rows
            await trio.sleep(0.05)


async def test_two_arm_step__each_participant_gets_its_arm_and_the_ledger_records_it(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    people = await org.contacts(24)
    cid = await env.campaign(accounts=[account], contacts=people, steps=[{"content": "Control text"}])
    (step,) = await _steps(env, cid)
    b_template = await _template(env, cid, "Variant B text")
    variant = await env.api(
        "POST", f"/api/campaigns/{cid}/sequences/{step['id']}/variants", {"templateId": b_template}, 201
    )
    key = await _step_key(env, step["id"])
    arms = (
        v.Arm(None, uuid.UUID(step["template_id"]), v.CONTROL_WEIGHT),
        v.Arm(uuid.UUID(variant["id"]), uuid.UUID(b_template), 1),
    )
    expected = {c: v.assign(arms, uuid.UUID(cid), c, key).variant_id for c in people}
    assert set(expected.values()) == {None, uuid.UUID(variant["id"])}  # both arms have participants

    # The preview shows each contact the arm the dispatcher will send.
    for contact in people[:6]:
        preview = await env.api(
            "GET", f"/api/campaigns/{cid}/preview", query_string={"contactId": str(contact)}
        )
        (shown,) = preview["steps"]
        want = expected[contact]
        assert shown["variantId"] == (None if want is None else str(want))
        assert shown["text"] == ("Control text" if want is None else "Variant B text")

    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(len(people))
    rows = await _ledger(env, cid)
    assert len(rows) == len(people)
    for row in rows:
        assert row["variant_id"] == expected[row["contact_id"]]
        assert row["content"] == ("Control text" if row["variant_id"] is None else "Variant B text")
    delivered = {m["content"] for m in env.sandbox.state.messages}
    assert delivered == {"Control text", "Variant B text"}


async def test_a_retried_send_keeps_its_stored_text_and_arm(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    people = await org.contacts(1)
    cid = await env.campaign(accounts=[account], contacts=people, steps=[{"content": "Control text"}])
    (step,) = await _steps(env, cid)
    b_template = await _template(env, cid, "Variant B text")
    await env.api(
        "POST", f"/api/campaigns/{cid}/sequences/{step['id']}/variants", {"templateId": b_template}, 201
    )
    (participant,) = await env.participants(cid)
    key = await _step_key(env, step["id"])
    # An earlier attempt of this step was claimed with the control and failed transiently: it is sent again
    # with its own text and arm, whatever the assignment says now.
    b = await store.fetchval("SELECT id FROM campaign_step_variants")
    arms = (v.Arm(None, uuid.UUID(step["template_id"]), v.CONTROL_WEIGHT), v.Arm(b, uuid.UUID(b_template), 1))
    other = None if v.assign(arms, uuid.UUID(cid), people[0], key).variant_id == b else b  # not its arm now
    await store.execute(
        """
        INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, idempotency_key, content,
                                    campaign_id, bd_account_id, attempts, claimed_at, variant_id)
        VALUES ($1, $2, 'failed', $3, 'Stored earlier', $4, $5, 1, now() - interval '1 hour', $6)
        """,
        participant["id"],
        key,
        f"campaign:{cid}:participant:{participant['id']}:step:{key}",
        uuid.UUID(cid),
        account,
        other,
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(1)
    (row,) = await _ledger(env, cid)
    assert (row["content"], row["variant_id"], row["attempts"]) == ("Stored earlier", other, 2)
    assert env.sandbox.state.messages[0]["content"] == "Stored earlier"


# --- analytics -----------------------------------------------------------------------------------------


async def _history(
    env: Env,
    cid: str,
    sends: list[tuple[int, uuid.UUID | None, dt.datetime]],
    reply: tuple[dt.datetime, str] | None,
    *,
    status: str = "completed",
) -> uuid.UUID:
    """A participant (a new contact) with sent ledger rows (step key, arm, when) and maybe a reply."""
    contact = await env.org.contact(first_name="Past", telegram_id=str(uuid.uuid4().int % 10**9))
    replied_at, intent = reply if reply else (None, None)
    pid = await env.store.fetchval(
        """
        INSERT INTO campaign_participants (campaign_id, contact_id, status, replied_at, reply_intent, channel_id)
        VALUES ($1, $2, $3, $4, $5, 'x') RETURNING id
        """,
        uuid.UUID(cid),
        contact,
        "replied" if reply else status,
        replied_at,
        intent,
    )
    for key, variant, at in sends:
        await env.store.execute(
            """
            INSERT INTO campaign_sends (campaign_participant_id, sequence_step, status, campaign_id, sent_at,
                                        variant_id)
            VALUES ($1, $2, 'sent', $3, $4, $5)
            """,
            pid,
            key,
            uuid.UUID(cid),
            at,
            variant,
        )
    return pid


async def _arm_history(
    env: Env,
    cid: str,
    key: int,
    variant: uuid.UUID | None,
    *,
    sent: int,
    replies: dict[str, int],
) -> None:
    n = 0
    for intent, count in replies.items():
        for _ in range(count):
            await _history(env, cid, [(key, variant, T0)], (T0 + dt.timedelta(hours=1), intent))
            n += 1
    for _ in range(sent - n):
        await _history(env, cid, [(key, variant, T0)], None)


def _arms_by_variant(step: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {a["variantId"]: a for a in step["arms"]}


async def test_analytics__counts_per_arm_and_the_winner_rule_with_its_sample_guard(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    cid = await env.campaign(accounts=[account], contacts=[], steps=[{"content": "A"}, {"content": "Next"}])
    first, second = await _steps(env, cid)
    url = f"/api/campaigns/{cid}/sequences/{first['id']}/variants"
    b = (await env.api("POST", url, {"templateId": await _template(env, cid, "B")}, 201))["id"]
    c = (await env.api("POST", url, {"templateId": await _template(env, cid, "C")}, 201))["id"]
    key1, key2 = await _step_key(env, first["id"]), await _step_key(env, second["id"])
    bid, cid_ = uuid.UUID(b), uuid.UUID(c)
    # Control: 40 sends, 4 positive, 2 not interested. B: 40 sends, 16 positive, 1 unsubscribe.
    # C provokes the most replies — 20, every one "remove me" — and must not win.
    await _arm_history(
        env, cid, key1, None, sent=40, replies={"interested": 2, "question": 2, "not_interested": 2}
    )
    await _arm_history(
        env, cid, key1, bid, sent=40, replies={"interested": 10, "question": 6, "unsubscribe": 1}
    )
    await _arm_history(env, cid, key1, cid_, sent=40, replies={"unsubscribe": 20})
    # Attribution to the latest send before the reply: a reply after step 2's send counts for step 2 (not
    # the B send of step 1); a reply between the two sends counts for step 1's B.
    await _history(
        env,
        cid,
        [(key1, bid, T0), (key2, None, T0 + dt.timedelta(days=1))],
        (T0 + dt.timedelta(days=2), "interested"),
    )
    await _history(
        env,
        cid,
        [(key1, bid, T0), (key2, None, T0 + dt.timedelta(days=3))],
        (T0 + dt.timedelta(days=2), "question"),
    )

    body = await env.api("GET", f"/api/campaigns/{cid}/analytics/variants")
    assert body["minSample"] == v.DEFAULT_MIN_SAMPLE
    step1, step2 = body["steps"]
    arms = _arms_by_variant(step1)
    assert [a["variantId"] for a in step1["arms"]] == [None, b, c]
    assert (
        arms[None]["sent"],
        arms[None]["replied"],
        arms[None]["positive"],
        arms[None]["unsubscribed"],
    ) == (
        40,
        6,
        4,
        0,
    )
    assert (arms[b]["sent"], arms[b]["replied"], arms[b]["positive"], arms[b]["unsubscribed"]) == (
        42,
        18,
        17,
        1,
    )
    assert (arms[c]["sent"], arms[c]["replied"], arms[c]["positive"], arms[c]["unsubscribed"]) == (
        40,
        20,
        0,
        20,
    )
    assert arms[b]["positiveRate"] == round(17 / 42, 4) and arms[c]["replyRate"] == 0.5
    assert arms[c]["unsubscribeRate"] == 0.5
    assert step1["winner"] == {"variantId": b, "templateId": arms[b]["templateId"]}
    (control2,) = step2["arms"]
    assert (control2["sent"], control2["replied"], control2["positive"]) == (2, 1, 1)
    assert step2["winner"] is None  # one arm: nothing to compare

    # The sample guard: the control has 40 sends, so 41 per arm are not there yet.
    guarded = await env.api("GET", f"/api/campaigns/{cid}/analytics/variants", query_string={"minSample": 41})
    assert guarded["steps"][0]["winner"] is None
    # Not significant: B's lead over C is wiped out when C's replies turn positive.
    await store.execute(
        """
        UPDATE campaign_participants SET reply_intent = 'interested'
        WHERE campaign_id = $1 AND id IN (SELECT campaign_participant_id FROM campaign_sends WHERE variant_id = $2)
        """,
        uuid.UUID(cid),
        cid_,
    )
    flipped = await env.api("GET", f"/api/campaigns/{cid}/analytics/variants")
    # C now 20/40 positive vs B 17/42: p ≈ 0.39 — no winner.
    assert flipped["steps"][0]["winner"] is None

    # A viewer may read; another organization gets 404.
    viewer = await env.client.get(f"/api/campaigns/{cid}/analytics/variants", headers=org.headers("viewer"))
    assert viewer.status_code == 200
    other = await make_org(store, "Elsewhere")
    foreign = await env.client.get(f"/api/campaigns/{cid}/analytics/variants", headers=other.headers())
    assert foreign.status_code == 404
    bad = await env.client.get(f"/api/campaigns/{cid}/analytics/variants?minSample=0", headers=org.headers())
    assert bad.status_code == 400


async def test_auto_winner__participants_not_yet_sent_get_the_winner(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    people = await org.contacts(12)
    cid = await env.campaign(accounts=[account], contacts=people, steps=[{"content": "Control text"}])
    (step,) = await _steps(env, cid)
    b_template = await _template(env, cid, "Variant B text")
    b = (
        await env.api(
            "POST", f"/api/campaigns/{cid}/sequences/{step['id']}/variants", {"templateId": b_template}, 201
        )
    )["id"]
    patched = await env.api("PATCH", f"/api/campaigns/{cid}/sequences/{step['id']}", {"autoWinner": True})
    assert patched["autoWinner"] is True
    key = await _step_key(env, step["id"])
    # Earlier sends of this step (participants done with it): B has clearly won on positive replies.
    await _arm_history(env, cid, key, None, sent=30, replies={"interested": 1})
    await _arm_history(env, cid, key, uuid.UUID(b), sent=30, replies={"interested": 12})
    assert (await env.api("GET", f"/api/campaigns/{cid}/analytics/variants"))["steps"][0]["winner"][
        "variantId"
    ] == b
    arms = (
        v.Arm(None, uuid.UUID(step["template_id"]), v.CONTROL_WEIGHT),
        v.Arm(uuid.UUID(b), uuid.UUID(b_template), 1),
    )
    assert {v.assign(arms, uuid.UUID(cid), c, key).variant_id for c in people} == {None, uuid.UUID(b)}
    preview = await env.api(
        "GET", f"/api/campaigns/{cid}/preview", query_string={"contactId": str(people[0])}
    )
    assert preview["steps"][0]["variantId"] == b

    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(len(people))
    with trio.fail_after(30):
        while True:
            rows = await store.fetch(
                """
                SELECT s.variant_id, s.content FROM campaign_sends s
                JOIN campaign_participants cp ON cp.id = s.campaign_participant_id
                WHERE s.campaign_id = $1 AND cp.contact_id = ANY($2::uuid[]) AND s.status = 'sent'
                """,
                uuid.UUID(cid),
                people,
            )
            if len(rows) == len(people):
                break
            await trio.sleep(0.05)
    assert {(r["variant_id"], r["content"]) for r in rows} == {(uuid.UUID(b), "Variant B text")}


# --- the API -------------------------------------------------------------------------------------------


async def test_variants_api__validation_roles_limits_and_conflicts(nursery, store, org):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    cid = await env.campaign(accounts=[account], contacts=await org.contacts(1), steps=[{}, {}])
    first, second = await _steps(env, cid)
    url = f"/api/campaigns/{cid}/sequences/{first['id']}/variants"
    templates = [await _template(env, cid, f"V{i}", name=f"v{i}") for i in range(5)]

    row = await env.api("POST", url, {"templateId": templates[0]}, 201)
    assert set(row) == {"id", "templateId", "weight", "templateName"}
    assert (row["templateId"], row["weight"], row["templateName"]) == (templates[0], 1, "v0")
    for bad in (
        {"templateId": templates[1], "weight": 0},
        {"templateId": templates[1], "weight": 101},
        {"templateId": templates[1], "weight": "5"},
        {"templateId": "nope"},
        {"weight": 2},
    ):
        await env.api("POST", url, bad, 400)
    # A template of another campaign, even of this organization, is refused as for a step.
    elsewhere = await env.campaign(accounts=[account], contacts=[], steps=[{}])
    foreign = (await env.api("GET", f"/api/campaigns/{elsewhere}/templates"))[0]["id"]
    refused = await env.api("POST", url, {"templateId": foreign}, 400)
    assert refused["details"][0]["path"] == "templateId"
    # Viewers read, never write.
    assert (await _as(env, org.headers("viewer"), "POST", url, {"templateId": templates[1]}))[0] == 403
    # Up to four besides the control.
    for t in templates[1:4]:
        await env.api("POST", url, {"templateId": t, "weight": 100}, 201)
    await env.api("POST", url, {"templateId": templates[4]}, 409)
    listed = await _steps(env, cid)
    assert [x["templateName"] for x in listed[0]["variants"]] == ["v0", "v1", "v2", "v3"]
    assert [x["weight"] for x in listed[0]["variants"]] == [1, 100, 100, 100]
    assert listed[1]["variants"] == [] and listed[1]["autoWinner"] is False
    # A variant is removed through its own step only.
    await env.api("DELETE", f"/api/campaigns/{cid}/sequences/{second['id']}/variants/{row['id']}", expect=404)
    await env.api(
        "DELETE", f"/api/campaigns/{cid}/sequences/{first['id']}/variants/{uuid.uuid4()}", expect=404
    )
    await env.api("DELETE", f"/api/campaigns/{cid}/sequences/{uuid.uuid4()}/variants/{row['id']}", expect=404)
    await env.api("DELETE", f"{url}/{row['id']}", expect=204)
    assert len((await _steps(env, cid))[0]["variants"]) == 3
    await env.api("PATCH", f"/api/campaigns/{cid}/sequences/{first['id']}", {"autoWinner": "yes"}, 400)
    await env.api("PATCH", f"/api/campaigns/{cid}/sequences/{first['id']}", {"autoWinner": None}, 400)
    # Another organization: 404, nothing written.
    other = await make_org(store, "Elsewhere")
    assert (await _as(env, other.headers(), "POST", url, {"templateId": templates[4]}))[0] == 404
    assert (await _as(env, other.headers(), "DELETE", f"{url}/{uuid.uuid4()}"))[0] == 404
    # While the campaign is active: the same 409 as step edits.
    await env.api("POST", f"/api/campaigns/{cid}/start")
    step_edit = await env.api("POST", f"/api/campaigns/{cid}/sequences", {"templateId": templates[4]}, 409)
    add = await env.api("POST", url, {"templateId": templates[4]}, 409)
    remaining = (await _steps(env, cid))[0]["variants"][0]["id"]
    delete = await env.api("DELETE", f"{url}/{remaining}", expect=409)
    assert add == delete == step_edit
    # Deleting the step deletes its variants.
    await env.api("POST", f"/api/campaigns/{cid}/pause")
    await env.api("DELETE", f"/api/campaigns/{cid}/sequences/{first['id']}", expect=204)
    assert await store.fetchval("SELECT count(*) FROM campaign_step_variants") == 0


async def test_duplicate__copies_each_steps_variants_and_auto_winner_onto_the_copied_templates(
    nursery, store, org
):
    env = await start_env(nursery, store, org)
    account = await org.bd_account()
    cid = await env.campaign(accounts=[account], contacts=await org.contacts(1), steps=[{}, {}])
    first, _ = await _steps(env, cid)
    b = await _template(env, cid, "Variant B text", name="b")
    await env.api(
        "POST", f"/api/campaigns/{cid}/sequences/{first['id']}/variants", {"templateId": b, "weight": 3}, 201
    )
    await env.api("PATCH", f"/api/campaigns/{cid}/sequences/{first['id']}", {"autoWinner": True})

    copy = await env.api("POST", f"/api/campaigns/{cid}/duplicate", {"name": "Copy"}, 201)

    copied = await _steps(env, copy["id"])
    assert [s["autoWinner"] for s in copied] == [True, False]
    (variant,) = copied[0]["variants"]
    assert (variant["templateName"], variant["weight"]) == ("b", 3)
    own = {t["id"] for t in await env.api("GET", f"/api/campaigns/{copy['id']}/templates")}
    assert variant["templateId"] in own and variant["templateId"] != b
    assert copied[1]["variants"] == []
    # The source is untouched.
    assert len((await _steps(env, cid))[0]["variants"]) == 1
