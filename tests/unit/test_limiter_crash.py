"""A limiter whose send raises (the database went away mid-claim) frees its campaign's slot for the account
(issue item 1): the supervisor restarts the limiter and the campaign hears that the participant is back."""

from __future__ import annotations

import datetime as dt
import uuid

import trio

from campaignsvc.actors.clock import TrioClock
from campaignsvc.actors.limiter import AccountLimiter, SendReport, SendRequest
from campaignsvc.actors.supervisor import Supervisor, _Running
from campaignsvc.config import Settings
from campaignsvc.errors import DatabaseUnavailable
from tests.unit.test_limiter import make_plan, open_settings


class CrashOnce:
    def __init__(self) -> None:
        self.calls = 0

    async def send(
        self, limiter: AccountLimiter, request: SendRequest, start_at: dt.datetime | None = None
    ) -> SendReport:
        self.calls += 1
        if self.calls == 1:
            raise DatabaseUnavailable("connection was closed in the middle of operation")
        return SendReport(attempted=True)


class FakeActor:
    def __init__(self) -> None:
        self.released_: list[tuple[uuid.UUID, uuid.UUID]] = []

    def released(self, participant_id: uuid.UUID, bd_account_id: uuid.UUID, update: object) -> None:
        self.released_.append((participant_id, bd_account_id))


async def test_limiter_crash__releases_the_slot_of_the_send_under_way(autojump_clock):
    clock = TrioClock(dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC))
    supervisor = Supervisor(None, Settings.from_env({}), clock=clock)  # type: ignore[arg-type]
    plan = make_plan()
    actor = FakeActor()
    supervisor.campaigns[plan.id] = _Running(actor, trio.CancelScope())  # type: ignore[arg-type]
    account = uuid.uuid4()
    sender = CrashOnce()
    limiter = AccountLimiter(account, open_settings(), sender=sender, on_defer=lambda *a: None, clock=clock)
    participant = uuid.uuid4()
    limiter.offer(SendRequest(plan, participant, account, 0, clock.now()))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor._run_limiter, limiter, trio.CancelScope())
        with trio.fail_after(60):
            while not actor.released_:
                await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert actor.released_ == [(participant, account)]
    assert supervisor.restarts["limiter"] == 1
    assert limiter.sending is None and limiter.lost is None


def test_restart_delay__an_outage_never_puts_an_actor_to_sleep_for_long():
    from campaignsvc.actors.supervision import OUTAGE_BACKOFF_S, restart_delay
    from campaignsvc.errors import DatabaseUnavailable

    assert restart_delay(8, DatabaseUnavailable("down")) == OUTAGE_BACKOFF_S
    assert restart_delay(1, DatabaseUnavailable("down")) == 1.0
    assert restart_delay(6, ValueError("bug")) == 32.0
