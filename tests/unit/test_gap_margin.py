"""The gap's safety margin and the recovered last start (issue item 4)."""

from __future__ import annotations

import datetime as dt
import uuid

import trio

from campaignsvc.actors.clock import TrioClock
from campaignsvc.actors.limiter import AccountLimiter, SendReport, SendRequest
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


async def test_gap__every_non_zero_gap_gets_the_safety_margin(autojump_clock):
    clock = TrioClock(dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC))
    sender = Starts(clock)
    plan = make_plan({"sendDelaySeconds": 4})
    account = uuid.uuid4()
    last = clock.now()
    limiter = AccountLimiter(
        account,
        open_settings(margin_s=0.02, last_start=last),
        sender=sender,
        on_defer=lambda *a: None,
        clock=clock,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.run)
        limiter.offer(SendRequest(plan, uuid.uuid4(), account, 0, clock.now()))
        with trio.fail_after(60):
            while not sender.at:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    gap = (sender.at[0] - last).total_seconds()
    assert gap >= plan.gap_min_s + 0.02
