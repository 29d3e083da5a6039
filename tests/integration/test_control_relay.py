"""Control messages between instances over LISTEN/NOTIFY (integrations/control.py): what one instance's bus
carries reaches the other instances' buses once, never comes back to its own, and what cannot cross (a
message only one process cares about) stays home."""

from __future__ import annotations

import uuid

import trio

from campaignsvc.actors.bus import Bus
from campaignsvc.actors.messages import AccountChanged, CampaignDeactivated, LeadsOwed, ParticipantsChanged
from campaignsvc.integrations.control import ControlRelay, decode, encode


async def _collect(inbox, into: list) -> None:
    async for message in inbox:
        into.append(message)


async def test_a_message_published_on_one_instance__reaches_the_other_once_and_is_not_echoed(
    nursery, store, database_url
):
    buses = [Bus(), Bus()]
    seen: list[list] = [[], []]
    for bus, into in zip(buses, seen, strict=True):
        nursery.start_soon(_collect, bus.subscribe(CampaignDeactivated, AccountChanged, LeadsOwed), into)
        await nursery.start(ControlRelay(store, database_url, bus, uuid.uuid4()).run)
    paused, account = uuid.uuid4(), uuid.uuid4()

    buses[0].publish(CampaignDeactivated(paused))
    buses[1].publish(AccountChanged(account))
    buses[0].publish(LeadsOwed())  # local to its process: not sent
    with trio.fail_after(10):
        while len(seen[0]) < 3 or len(seen[1]) < 2:
            await trio.sleep(0.05)
    await trio.sleep(0.5)  # an echo would have arrived by now

    assert seen[0] == [CampaignDeactivated(paused), LeadsOwed(), AccountChanged(account)]
    assert seen[1] == [AccountChanged(account), CampaignDeactivated(paused)]


def test_encoding__round_trips_and_refuses_what_it_cannot_read():
    me, other = uuid.uuid4(), uuid.uuid4()
    message = ParticipantsChanged(uuid.uuid4())
    payload = encode(message, other)
    assert payload is not None
    assert decode(payload, me) == message
    assert decode(payload, other) is None  # its own
    assert encode(LeadsOwed(), me) is None
    for bad in ("", "{", '{"k": "nope", "id": "x", "o": "y"}', '{"k": "account.changed", "id": "x"}'):
        assert decode(bad, me) is None
