"""The broker cut off from the service (a relay in front of RabbitMQ, cut and restored twice) while the
sandbox's recipients reply over RabbitMQ: every reply is handled once the link is back, and after a reply
is recorded no further step reaches that contact (beyond the one send docs/semantics.md allows: claimed
up to CLAIM_LEAD before its call)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import trio

from tests.factories import make_org
from tests.faults.harness import CLAIM_LEAD_S, REPLY_NOISE_S, check, invariants, open_stand
from tests.integration import amqp_helpers as mq

pytestmark = pytest.mark.rabbitmq

GAP_S = 0.4


def _when(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


async def test_broker_outage_while_replies_arrive__every_reply_handled_no_step_after_it(
    store, database_url, tmp_path, amqp, nursery
):
    proxy = mq.BrokerProxy()
    await nursery.start(proxy.run)
    org = await make_org(store)
    stand = await open_stand(
        tmp_path,
        store,
        org,
        {
            "DATABASE_URL": database_url,
            "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": str(int(GAP_S * 1000)),
            "RABBITMQ_URL": proxy.url(),
            "RABBITMQ_EXCHANGE": amqp.exchange,
            "RABBITMQ_QUEUE": amqp.queue,
        },
    )
    try:
        await stand.start_service()
        with trio.fail_after(20):  # the service declares its queue once connected: replies need it bound
            while (await stand.env.api("GET", "/health", expect=None))["checks"]["rabbitmq"] != "ok":
                await trio.sleep(0.1)
        # The sandbox publishes straight to the broker: only the service's side of the link is cut.
        await stand.start_sandbox(
            "--latency-ms",
            "20",
            "--seed",
            "19",
            "--reply-rate",
            "0.5",
            "--reply-delay-s",
            "0.3",
            "2.5",
            "--rabbitmq-url",
            amqp.url,
            "--rabbitmq-exchange",
            amqp.exchange,
        )
        accounts = [await org.bd_account() for _ in range(3)]
        cid = await stand.env.campaign(
            accounts=accounts,
            contacts=await org.contacts(30),
            steps=[{}, {}, {}],
            audience={"sendDelaySeconds": GAP_S},
        )
        await stand.env.api("POST", f"/api/campaigns/{cid}/start")
        with trio.fail_after(30):
            while len(await stand.sandbox_get("messages")) < 10:
                await trio.sleep(0.1)
        outages = []
        for down_s in (2.5, 3.0):
            proxy.cut()
            await trio.sleep(down_s)
            proxy.restore()
            outages.append(down_s)
            await trio.sleep(2.0)
        fault_over = dt.datetime.now(dt.UTC)
        completion_s = await stand.wait_completed([cid], within=90)
        with trio.move_on_after(30):  # replies still scheduled at the sandbox, and their handling
            while not await _replies_settled(stand, cid):
                await trio.sleep(0.2)
        figures, problems = await invariants(
            stand,
            [cid],
            gaps={str(a): GAP_S for a in accounts},
            steps={cid: 3},
            replied_ok=True,
            fault_over=fault_over,
        )
        events = [e for e in await stand.sandbox_get("events") if e["kind"] == "reply"]
        unhandled, late = await _reply_findings(stand, cid, events)
        figures["outages_s"] = outages
        figures["replies_published"] = sum(1 for e in events if e["status"] == "delivered")
        figures["replies_not_published"] = sum(1 for e in events if e["status"] != "delivered")
        figures["replies_unhandled"] = len(unhandled)
        figures["sends_after_reply"] = len(late)
        figures["completion_after_outage_s"] = completion_s
        if figures["replies_not_published"]:
            problems.append(f"the sandbox could not publish {figures['replies_not_published']} replies")
        if unhandled:
            problems.append(f"replies not handled: {unhandled[:5]}")
        if late:
            problems.append(f"steps delivered after the reply was recorded: {late[:5]}")
        check("broker_outage", figures, problems)
    finally:
        await stand.close()
        await mq.delete_all(amqp.url, exchanges=[amqp.exchange], queues=[amqp.queue, f"{amqp.queue}.dlq"])


async def _replies_settled(stand, cid: str) -> bool:
    events = [e for e in await stand.sandbox_get("events") if e["kind"] == "reply"]
    if any(e["status"] == "scheduled" for e in events):
        return False
    unhandled, _ = await _reply_findings(stand, cid, events)
    return not unhandled


async def _reply_findings(stand, cid: str, events: list[dict]) -> tuple[list[str], list[str]]:
    """Replies the sandbox published that the service did not record; and sends that reached a contact
    later than CLAIM_LEAD (+ noise) after the service recorded the contact's reply. Recorded means the
    event's processing committed (``campaign_processed_events``), not ``replied_at``, which is the
    message's own time: during an outage the service cannot know of a reply it has not received."""
    rows = await stand.store.fetch(
        "SELECT contact_id::text AS contact_id, status FROM campaign_participants WHERE campaign_id = $1",
        uuid.UUID(cid),
    )
    by_contact = {r["contact_id"]: r for r in rows}
    processed = {
        str(r["event_id"]): r["processed_at"]
        for r in await stand.store.fetch("SELECT event_id, processed_at FROM campaign_processed_events")
    }
    unhandled = []
    recorded: dict[str, dt.datetime] = {}
    for event in events:
        if event["status"] != "delivered":
            continue
        contact = event["envelope"]["data"]["contactId"]
        row = by_contact.get(contact)
        at = processed.get(event["envelope"]["id"])
        if row is None or row["status"] != "replied" or at is None:
            unhandled.append(f"{contact}: {None if row is None else row['status']}, processed {at}")
        elif contact not in recorded or at < recorded[contact]:
            recorded[contact] = at
    allowed = dt.timedelta(seconds=CLAIM_LEAD_S + REPLY_NOISE_S)
    late = []
    for record in await stand.sandbox_get("received"):
        at = recorded.get(record.get("contactId"))
        if at is None or record.get("replay"):
            continue
        if _when(record["received_at"]) > at + allowed:
            late.append(f"{record['contactId']}: arrived {record['received_at']}, reply recorded {at}")
    return unhandled, late
