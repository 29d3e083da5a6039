"""Isolate and restart (actors/supervision.py): a crashing actor is counted and run again, the others never
notice, and readiness is real."""

from __future__ import annotations

import datetime as dt
import functools
import uuid

import pytest
import trio
from prometheus_client import REGISTRY

from campaignsvc.actors.clock import TrioClock
from campaignsvc.actors.limiter import AccountLimiter, SendReport, SendRequest
from campaignsvc.actors.supervision import supervise
from campaignsvc.actors.supervisor import Supervisor
from campaignsvc.config import Settings
from tests.unit.test_limiter import make_plan, open_settings


def restarts(kind: str) -> float:
    return REGISTRY.get_sample_value("campaign_actor_restarts_total", {"kind": kind}) or 0.0


async def test_supervise__restarts_a_crashing_run_and_counts_it(autojump_clock):
    runs: list[int] = []

    async def run(*, task_status: trio.TaskStatus[None]) -> None:
        runs.append(len(runs))
        task_status.started()
        if len(runs) < 3:
            raise ValueError("bug")

    before = restarts("test")
    crashes: list[BaseException] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(supervise, "test", {"key": "k"}, run, crashed=crashes.append))
    assert runs == [0, 1, 2]
    assert [type(c) for c in crashes] == [ValueError, ValueError]  # unwrapped from the nursery's group
    assert restarts("test") - before == 2


@pytest.mark.parametrize("crash_before_ready", [True, False])
async def test_supervise__start_returns_at_the_first_readiness_never_at_a_restart(
    autojump_clock, crash_before_ready
):
    ready_at: list[float] = []
    runs = 0

    async def run(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal runs
        runs += 1
        await trio.sleep(1)
        if runs == 1 and crash_before_ready:
            raise ValueError("crashed while booting")
        task_status.started()
        await trio.sleep(1000)

    async with trio.open_nursery() as nursery:
        began = trio.current_time()
        await nursery.start(supervise, "test", {}, run)
        ready_at.append(trio.current_time() - began)
        nursery.cancel_scope.cancel()
    # Ready after the first run's second of booting, whether that run came up or crashed.
    assert ready_at == [1]


class Actor:
    """A campaign actor as the supervisor runs it; ``crash`` makes its first run raise once it is ready."""

    def __init__(self, campaign_id: uuid.UUID, log: list[str], crash: bool) -> None:
        self.campaign_id, self._log, self._crash = campaign_id, log, crash

    async def run(self, *, task_status: trio.TaskStatus[object]) -> None:
        self._log.append(f"start {self.campaign_id}")
        task_status.started(self)
        await trio.sleep(5)
        if self._crash:
            raise RuntimeError("campaign actor bug")
        await trio.sleep(3600)
        self._log.append(f"done {self.campaign_id}")


async def test_a_crashing_campaign_actor__is_restarted_and_the_others_never_notice(autojump_clock):
    supervisor = Supervisor(None, Settings.from_env({}))  # type: ignore[arg-type]
    bad, good = uuid.uuid4(), uuid.uuid4()
    log: list[str] = []
    made: list[Actor] = []

    def new_actor(campaign_id: uuid.UUID) -> Actor:
        crash = campaign_id == bad and not any(a.campaign_id == bad for a in made)
        made.append(Actor(campaign_id, log, crash))
        return made[-1]

    supervisor._new_actor = new_actor  # type: ignore[method-assign,assignment]
    before = restarts("campaign")
    async with trio.open_nursery() as nursery:
        supervisor._nursery = nursery
        await supervisor._start_campaign_ready(bad)
        await supervisor._start_campaign_ready(good)
        first_good = supervisor.campaigns[good].actor
        await trio.sleep(60)
        assert supervisor.campaigns[good].actor is first_good  # never restarted
        assert supervisor.campaigns[bad].actor is not made[0]  # a fresh actor after the crash
        nursery.cancel_scope.cancel()
    assert log == [f"start {bad}", f"start {good}", f"start {bad}"]
    assert supervisor.restarts["campaign"] == 1
    assert restarts("campaign") - before == 1


class Sender:
    def __init__(self, crash: bool) -> None:
        self.crash, self.sent = crash, 0

    async def send(
        self, limiter: AccountLimiter, request: SendRequest, start_at: dt.datetime | None = None
    ) -> SendReport:
        if self.crash:
            self.crash = False
            raise RuntimeError("limiter bug")
        self.sent += 1
        return SendReport(attempted=True)


async def test_a_crashing_limiter__is_restarted_and_the_other_limiters_never_notice(autojump_clock):
    clock = TrioClock(dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC))
    supervisor = Supervisor(None, Settings.from_env({}), clock=clock)  # type: ignore[arg-type]
    plan = make_plan({"sendDelaySeconds": 0})
    limiters = {}
    senders = {"bad": Sender(crash=True), "good": Sender(crash=False)}
    for name, sender in senders.items():
        account = uuid.uuid4()
        limiters[name] = AccountLimiter(
            account, open_settings(), sender=sender, on_defer=lambda *a: None, clock=clock
        )
    before = restarts("limiter")
    async with trio.open_nursery() as nursery:
        for limiter in limiters.values():
            await nursery.start(supervisor._run_limiter, limiter, trio.CancelScope())
        for limiter in limiters.values():
            limiter.offer(SendRequest(plan, uuid.uuid4(), limiter.bd_account_id, 0, clock.now()))
        await trio.sleep(1)
        # The good limiter sent at once; the bad one crashed on its send.
        assert (senders["good"].sent, senders["bad"].sent) == (1, 0)
        await trio.sleep(10)  # the bad one's backoff
        for limiter in limiters.values():
            limiter.offer(SendRequest(plan, uuid.uuid4(), limiter.bd_account_id, 0, clock.now()))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert (senders["good"].sent, senders["bad"].sent) == (2, 1)
    assert supervisor.restarts["limiter"] == 1
    assert restarts("limiter") - before == 1
