"""A campaign actor told that a send ended in an unknown state reads the database again at once."""

from __future__ import annotations

import datetime as dt

import trio

from campaignsvc.actors.campaign import CampaignActor
from campaignsvc.actors.clock import SystemClock
from campaignsvc.config import Settings


class Accounts:
    """The directory: a limiter per account that only records what it is offered."""

    def __init__(self) -> None:
        self.offers: list = []
        self.changed = trio.Event()

    def limiter(self, bd_account_id):
        return self

    def offer(self, request) -> None:
        self.offers.append(request)
        self.changed.set()
        self.changed = trio.Event()

    def drop(self, campaign_id) -> None:
        pass


async def test_a_release_without_a_state__rereads_instead_of_waiting_for_the_safety_interval(
    nursery, store, org
):
    cid = await store.fetchval(
        "INSERT INTO campaigns (organization_id, name, status) VALUES ($1, 'c', 'active') RETURNING id",
        org.id,
    )
    template = await store.fetchval(
        "INSERT INTO campaign_templates (organization_id, campaign_id, name, channel, content)"
        " VALUES ($1, $2, 't', 'telegram', 'Hi') RETURNING id",
        org.id,
        cid,
    )
    await store.execute(
        "INSERT INTO campaign_sequences (campaign_id, order_index, template_id, delay_hours) VALUES ($1, 0, $2, 0)",
        cid,
        template,
    )
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    pid = await store.fetchval(
        """
        INSERT INTO campaign_participants (campaign_id, contact_id, bd_account_id, status, next_send_at)
        VALUES ($1, $2, $3, 'pending', now()) RETURNING id
        """,
        cid,
        contact,
        account,
    )
    accounts = Accounts()
    # Ten minutes between the actor's own re-reads: only the release can bring the participant back.
    settings = Settings.from_env({}, send_interval_ms=600_000, log_level="warning")
    actor = CampaignActor(cid, store=store, settings=settings, clock=SystemClock(), directory=accounts)
    nursery.start_soon(actor.run)
    with trio.fail_after(10):
        while not accounts.offers:
            await accounts.changed.wait()
    # The send crashed (a database outage, say) and the limiter freed the slot without a new state; the
    # participant is still due in the database.
    await store.execute(
        "UPDATE campaign_participants SET next_send_at = $2 WHERE id = $1",
        pid,
        dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=200),
    )
    actor.released(pid, account, None)
    with trio.fail_after(30):
        while len(accounts.offers) < 2:
            await accounts.changed.wait()
    assert accounts.offers[1].participant_id == pid
