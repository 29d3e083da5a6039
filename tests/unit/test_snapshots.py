"""Snapshots (actors/snapshots.py) on trio's virtual clock: cheap values are always computed, costly ones
are served from memory and refreshed once in the background when stale."""

from __future__ import annotations

import datetime as dt

import trio

from campaignsvc.actors.snapshots import Snapshots

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class Counter:
    """A compute that takes ``cost_s`` of virtual time and returns how many times it ran."""

    def __init__(self, cost_s: float, fail_on: set[int] | None = None) -> None:
        self.cost_s = cost_s
        self.calls = 0
        self.fail_on = fail_on or set()

    async def __call__(self) -> tuple[int, dt.datetime]:
        self.calls += 1
        if self.cost_s:
            await trio.sleep(self.cost_s)
        if self.calls in self.fail_on:
            raise RuntimeError("database went away")
        return self.calls, T0 + dt.timedelta(seconds=trio.current_time())


async def test_cheap_values__are_computed_for_every_request(autojump_clock, nursery):
    snapshots = await nursery.start(Snapshots().run)
    compute = Counter(0.0)
    values = [(await snapshots.get("k", compute))[0] for _ in range(3)]
    assert values == [1, 2, 3]


async def test_costly_values__served_from_memory_and_refreshed_once_in_the_background(
    autojump_clock, nursery
):
    snapshots = await nursery.start(Snapshots(fresh_s=5.0, cost_factor=20.0).run)
    compute = Counter(1.0)
    assert (await snapshots.get("k", compute))[0] == 1  # the first request waits for it
    await trio.sleep(10)
    value, _ = await snapshots.get("k", compute)
    assert (value, compute.calls) == (1, 1)  # fresh for 20 × its cost
    await trio.sleep(11)
    asked_at = trio.current_time()
    stale = [(await snapshots.get("k", compute))[0] for _ in range(3)]
    assert trio.current_time() == asked_at  # nobody waited for the refresh
    assert stale == [1, 1, 1]
    await trio.sleep(2)
    assert compute.calls == 2 and snapshots.refreshes == 1  # one refresh however many asked
    value, as_of = await snapshots.get("k", compute)
    assert value == 2 and as_of == T0 + dt.timedelta(seconds=asked_at + 1.0)


async def test_a_failed_refresh__keeps_the_old_value_and_tries_again_later(autojump_clock, nursery):
    snapshots = await nursery.start(Snapshots(fresh_s=5.0, cost_factor=1.0).run)
    compute = Counter(1.0, fail_on={2})
    await snapshots.get("k", compute)
    await trio.sleep(6)
    assert (await snapshots.get("k", compute))[0] == 1
    await trio.sleep(2)
    assert compute.calls == 2 and snapshots.refreshes == 0
    assert (await snapshots.get("k", compute))[0] == 1  # not yet stale again: no third call
    assert compute.calls == 2
    await trio.sleep(6)
    await snapshots.get("k", compute)
    await trio.sleep(2)
    assert compute.calls == 3 and (await snapshots.get("k", compute))[0] == 3


async def test_values_nobody_asks_for__are_dropped(autojump_clock, nursery):
    snapshots = await nursery.start(Snapshots(keep_s=60.0).run)
    compute = Counter(1.0)
    await snapshots.get("k", compute)
    await trio.sleep(61)
    await snapshots.get("other", Counter(0.0))
    await snapshots.get("k", compute)  # computed again in the request, not served stale
    assert compute.calls == 2


async def test_without_a_running_actor__every_request_computes(autojump_clock):
    snapshots = Snapshots()
    compute = Counter(1.0)
    await snapshots.get("k", compute)
    await snapshots.get("k", compute)
    assert compute.calls == 2
