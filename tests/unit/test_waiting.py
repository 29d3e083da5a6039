"""Why a participant waits (domain.waiting): each code from the state that causes it, and — on the virtual
clock, with the real AccountLimiter — the code and ``until`` of a due participant are what the limiter then
does: its send starts at ``until`` (the window's jitter aside)."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy
from campaignsvc.domain.templates import parse
from campaignsvc.domain.waiting import Account, Code, Participant, explain, fields_of, missing_of
from tests.unit.test_limiter import (
    BERLIN,
    JITTER,
    World,
    make_plan,
    new_id,
    open_settings,
    seconds,
    utc,
    window,
)

NOW = utc(2026, 3, 2, 12, 0)  # a Monday, 13:00 in Berlin
HOUR = dt.timedelta(hours=1)


def with_steps(plan: CampaignPlan, *contents: str, delays_h: tuple[int, ...] = ()) -> CampaignPlan:
    steps, templates = [], {}
    for i, content in enumerate(contents):
        template = uuid.UUID(int=500 + i)
        templates[template] = parse(content)
        steps.append(
            st.Step(
                id=uuid.UUID(int=600 + i),
                order_index=i,
                created_at=NOW,
                trigger_type="delay",
                delay_hours=delays_h[i] if i < len(delays_h) else 0,
                delay_minutes=0,
                is_hidden=False,
                template_id=template,
                conditions={},
            )
        )
    return attrs.evolve(plan, steps=tuple(steps), templates=templates)


PLAN = with_steps(make_plan({"sendDelaySeconds": 60}), "Hi", "Again", delays_h=(0, 24))


def account(**rules: object) -> Account:
    return Account("Anna", AccountPolicy(**({"floor_s": 0.0, "daily_cap": 0} | rules)))  # type: ignore[arg-type]


def why(
    p: Participant, acc: Account | None = None, *, status: str = "active", plan: CampaignPlan = PLAN, rank=0
):
    return explain(
        p,
        plan=plan,
        campaign_status=status,
        account=acc if acc is not None else account(),
        now=NOW,
        rank=rank,
    )


def pending(**fields: object) -> Participant:
    return Participant(
        **({"status": "pending", "next_send_at": NOW, "waiting_reason": None, "current_step": 0} | fields)
    )  # type: ignore[arg-type]


def sent(**fields: object) -> Participant:
    return pending(status="sent", current_step=1, **fields)


# --- codes from stored state ---------------------------------------------------------------------------


def test_terminal__has_no_waiting():
    for status in ("completed", "replied", "failed", "stopped", "skipped"):
        assert why(pending(status=status)) is None


def test_campaign_paused__binds_before_anything_else():
    wait = why(pending(), account(restricted=True), status="paused")
    assert (wait.code, wait.until) == (Code.CAMPAIGN_PAUSED, None)


def test_account_paused_for_the_campaign():
    wait = why(pending(waiting_reason="account_paused"))
    assert (wait.code, wait.until, wait.message) == (
        Code.ACCOUNT_PAUSED,
        None,
        "Anna is paused for this campaign",
    )


def test_account_missing_inactive_restricted_flood_blocked():
    p = pending()
    assert (
        explain(p, plan=PLAN, campaign_status="active", account=None, now=NOW).code == Code.ACCOUNT_INACTIVE
    )
    assert why(p, account(active=False)).code == Code.ACCOUNT_INACTIVE
    assert why(p, account(restricted=True)).code == Code.ACCOUNT_RESTRICTED
    blocked = why(p, account(blocked_until=NOW + HOUR, block_reason="flood_wait"))
    assert (blocked.code, blocked.until) == (Code.FLOOD_BLOCKED, NOW + HOUR)
    assert "flood_wait" in blocked.message
    # A block that has ended holds nothing.
    assert why(p, account(blocked_until=NOW - HOUR)).code == Code.QUEUED


def test_awaiting_reply__until_the_reply_wait_ends():
    since = NOW - 2 * HOUR
    wait = why(sent(next_send_at=None, waiting_reason="reply", wait_since=since))
    assert (wait.code, wait.until) == (Code.AWAITING_REPLY, since + PLAN.reply_wait)


def test_stored_times__name_their_reason():
    later = NOW + HOUR
    cases = {
        "in_doubt": Code.IN_DOUBT,
        "retry": Code.RETRY_BACKOFF,
        "flood": Code.FLOOD_BLOCKED,
        "window": Code.OUTSIDE_WINDOW,
        "cap": Code.DAILY_CAP,
        None: Code.STEP_DELAY,
    }
    for reason, code in cases.items():
        wait = why(sent(next_send_at=later, waiting_reason=reason, last_error="HTTP 500"))
        assert (wait.code, wait.until) == (code, later), reason
    assert "HTTP 500" in why(sent(next_send_at=later, waiting_reason="retry", last_error="HTTP 500")).message


def test_first_sends_placed_without_a_reason__queued_window_or_cap():
    later = NOW + HOUR
    assert why(pending(next_send_at=later)).code == Code.QUEUED
    closed = attrs.evolve(PLAN, schedule=window(BERLIN, "18:00", "19:00"))
    assert why(pending(next_send_at=later), plan=closed).code == Code.OUTSIDE_WINDOW
    capped = account(daily_cap=2)
    capped.starts = [NOW - 2 * HOUR, NOW - HOUR]
    assert why(pending(next_send_at=NOW + 13 * HOUR), capped).code == Code.DAILY_CAP
    # A first step with its own delay is that delay.
    delayed = with_steps(make_plan({"sendDelaySeconds": 60}), "Hi", delays_h=(2,))
    assert why(pending(next_send_at=later), plan=delayed).code == Code.STEP_DELAY


def test_missing_data__names_the_placeholder_and_when_the_step_is_skipped():
    plan = with_steps(
        make_plan({}), "Hi {{contact.first_name}} from {{company.name|us}}", "Hello {{company.name}}"
    )
    assert missing_of(plan, 0, fields_of("10000")) == "contact.first_name"
    assert missing_of(plan, 0, fields_of("00001")) is None  # company.name has a fallback in step 1
    assert missing_of(plan, 1, fields_of("00001")) == "company.name"
    assert missing_of(plan, 2, fields_of("11111")) is None  # no such step
    wait = why(pending(next_send_at=NOW + HOUR, missing="contact.first_name"), plan=plan)
    assert (wait.code, wait.until) == (Code.MISSING_DATA, NOW + HOUR)
    assert "{{contact.first_name}}" in wait.message


def test_due__daily_cap_and_window_from_the_accounts_rules():
    capped = account(daily_cap=1, timezone=BERLIN)
    capped.starts = [NOW - HOUR]
    wait = why(pending(), capped)
    assert (wait.code, wait.until) == (Code.DAILY_CAP, utc(2026, 3, 2, 23, 0))  # 00:00 Berlin
    assert "(1/day)" in wait.message and "Europe/Berlin" in wait.message
    closed = attrs.evolve(PLAN, schedule=window(BERLIN, "18:00", "19:00"))
    wait = why(pending(), plan=closed)
    assert wait.code == Code.OUTSIDE_WINDOW
    assert utc(2026, 3, 2, 17, 0) <= wait.until <= utc(2026, 3, 2, 17, 0) + JITTER


def test_due__gap_for_the_first_in_line_queued_behind_it():
    acc = account()
    acc.last_start = NOW - seconds(20)
    head = why(pending(), acc)
    assert (head.code, head.until) == (Code.GAP, NOW + seconds(40))
    assert "60 s" in head.message
    behind = why(pending(), acc, rank=2)
    assert (behind.code, behind.until) == (Code.QUEUED, NOW + seconds(40 + 2 * 60))
    assert why(pending(), acc, rank=None).until is None
    # Nothing to wait for: going out now.
    free = why(pending(), account())
    assert (free.code, free.until) == (Code.QUEUED, NOW)


# --- the limiter then does what the code said ------------------------------------------------------------


def _view(world: World, limiter, plan: CampaignPlan) -> Account:
    return limiter.pacing_view(plan.id, "Anna")


async def test_live__gap_and_queue_positions_are_the_next_starts(autojump_clock):
    world = World(NOW)
    limiter = world.account(open_settings())
    plan = make_plan({"sendDelaySeconds": 60})
    world.campaign(plan, [limiter], participants=4)
    async with world.running():
        await world.until(NOW + seconds(10))
        assert world.starts(limiter) == [NOW]
        now = NOW + seconds(10)
        view = _view(world, limiter, plan)
        waits = [
            explain(pending(), plan=plan, campaign_status="active", account=view, now=now, rank=r)
            for r in range(3)
        ]
        assert [w.code for w in waits] == [Code.GAP, Code.QUEUED, Code.QUEUED]
        await world.until(NOW + seconds(200))
    assert world.starts(limiter)[1:] == [w.until for w in waits]


async def test_live__another_campaign_first_in_line_puts_this_one_behind_it(autojump_clock):
    world = World(NOW)
    limiter = world.account(open_settings())
    first, second = make_plan({"sendDelaySeconds": 60}), make_plan({"sendDelaySeconds": 60})
    world.campaign(first, [limiter], participants=2)
    world.campaign(second, [limiter], participants=2)
    async with world.running():
        await world.until(NOW + seconds(1))
        sends = world.sent(limiter)
        assert [s.campaign for s in sends] == [first.id]
        view = _view(world, limiter, second)
        assert (view.lanes_ahead, view.other_lanes) == (0, 1)  # second is next; first queues again behind it
        now = NOW + seconds(1)
        head = explain(pending(), plan=second, campaign_status="active", account=view, now=now)
        behind = explain(pending(), plan=second, campaign_status="active", account=view, now=now, rank=1)
        await world.until(NOW + seconds(400))
    sends = world.sent(limiter)
    mine = [s.start for s in sends if s.campaign == second.id]
    assert (head.code, behind.code) == (Code.GAP, Code.QUEUED)
    assert mine == [head.until, behind.until]


async def test_live__daily_cap_and_window_deferrals_are_the_limiters(autojump_clock):
    world = World(NOW)
    capped = world.account(open_settings(daily_cap=1, timezone=BERLIN))
    plan = make_plan({"sendDelaySeconds": 60})
    world.campaign(plan, [capped], participants=2)
    async with world.running():
        await world.until(NOW + seconds(1))
        view = _view(world, capped, plan)
        wait = explain(pending(), plan=plan, campaign_status="active", account=view, now=NOW + seconds(1))
        await world.until(NOW + seconds(2))
    cap = [d for d in world.deferrals if d.reason == "cap"]
    assert wait.code == Code.DAILY_CAP and cap and cap[0].until == wait.until

    world = World(NOW)
    limiter = world.account(open_settings())
    closed = make_plan({"sendDelaySeconds": 60}, schedule=window(BERLIN, "18:00", "19:00"))
    view = limiter.pacing_view(closed.id, "Anna")
    wait = explain(pending(), plan=closed, campaign_status="active", account=view, now=NOW)
    world.campaign(closed, [limiter], participants=1)
    async with world.running():
        await world.until(NOW + seconds(1))
    deferred = [d for d in world.deferrals if d.reason == "window"]
    assert wait.code == Code.OUTSIDE_WINDOW and deferred
    assert abs(deferred[0].until - wait.until) <= JITTER


async def test_flood_block__until_is_when_the_limiter_may_send_again(autojump_clock):
    world = World(NOW)
    limiter = world.account(open_settings(blocked_until=NOW + HOUR, block_reason="flood_wait"))
    view = limiter.pacing_view(new_id(), "Anna")
    wait = explain(pending(), plan=PLAN, campaign_status="active", account=view, now=NOW)
    assert (wait.code, wait.until) == (Code.FLOOD_BLOCKED, limiter.next_start(NOW))


def test_queued_estimate__is_one_spread_per_account():
    acc = account()
    acc.last_start = NOW
    # Positions asked in any order come from one memoised spread of the account's slots.
    estimates = [why(pending(), acc, rank=r).until for r in (5, 1, 3)]
    assert estimates == [NOW + seconds(60 * (r + 1)) for r in (5, 1, 3)]
