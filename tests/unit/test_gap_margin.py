"""The gap's safety margin and the recovered last start (issue item 4)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable

import trio

from campaignsvc.actors.clock import TrioClock
from campaignsvc.actors.limiter import RECOVERED_START_ALLOWANCE, AccountLimiter, SendReport, SendRequest
from tests.unit.test_limiter import make_plan, open_settings


class Starts:
    def __init__(self, clock: TrioClock) -> None:
        self.clock = clock
        self.at: list[dt.datetime] = []

    async def send(self, limiter, request, start_at=None) -> SendReport:
        if start_at is not None:
            await trio.sleep_until(self.clock.deadline(start_at))
        self.at.append(self.clock.now())
        return SendReport(attempted=True, started_at=self.clock.now())


async def _first_start(
    clock: TrioClock, settings: object, *, load: Callable[[], Awaitable[object]] | None = None
) -> dt.datetime:
    """The start of the first send a limiter makes, due now, for a campaign with a 4 s gap."""
    sender = Starts(clock)
    plan = make_plan({"sendDelaySeconds": 4})
    account = uuid.uuid4()
    limiter = AccountLimiter(
        account, settings, sender=sender, on_defer=lambda *a: None, clock=clock, load_settings=load
    )
    if load is not None:
        limiter.reload()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.run)
        limiter.offer(SendRequest(plan, uuid.uuid4(), account, 0, clock.now()))
        with trio.fail_after(60):
            while not sender.at:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    return sender.at[0]


async def test_gap__every_non_zero_gap_gets_the_safety_margin(autojump_clock):
    clock = TrioClock(dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC))
    last = clock.now()
    start = await _first_start(clock, open_settings(margin_s=0.02, last_start=last))
    assert (start - last).total_seconds() >= 4 + 0.02


async def _first_start_after_boot(clock: TrioClock, last: dt.datetime, *, exact: bool) -> dt.datetime:
    """A fresh limiter (a restarted process) reads the account's last start from the database."""

    async def load() -> object:
        return open_settings(last_start=last, last_start_exact=exact)

    return await _first_start(clock, open_settings(), load=load)


async def test_after_a_restart__an_exact_last_start_is_used_as_it_is(autojump_clock):
    clock = TrioClock(dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC))
    last = clock.now()
    start = await _first_start_after_boot(clock, last, exact=True)
    assert start - last == dt.timedelta(seconds=4)


async def test_after_a_restart__a_start_only_planned_gets_the_allowance(autojump_clock):
    clock = TrioClock(dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC))
    last = clock.now()
    start = await _first_start_after_boot(clock, last, exact=False)
    assert start - last == dt.timedelta(seconds=4) + RECOVERED_START_ALLOWANCE
