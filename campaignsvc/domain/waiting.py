"""Why an open participant is not being sent to right now, and until when (the rep's "why isn't it sending?").

:func:`explain` names the one constraint that binds now, from the participant's stored state and its
account's pacing rules as :class:`~campaignsvc.domain.pacing.AccountPolicy` applies them — the same
``hold`` and ``decide`` the live limiter calls, so the answer is the limiter's, not a second guess. When
nothing else changes, the participant's send goes out at ``until`` (give or take the window jitter).

Precedence, first match wins: the campaign is paused; the account is paused for this campaign, missing,
inactive, restricted or flood-blocked; the participant waits for a reply; its next step lacks data (it
will be skipped at its time); it waits for a stored time (its step's delay, a retry, an in-doubt
quarantine, a cap or window deferral the limiter wrote); it is due and its account decides: the daily cap
(``ramp_up`` when the account's ramp, not its own cap, sets it), the window, the gap (the account's next
send), or its place in the account's queue.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import attrs

from campaignsvc.domain import pacing, steps
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy
from campaignsvc.domain.status import CampaignStatus, ParticipantStatus, Waiting
from campaignsvc.domain.templates import RenderContext, Skip, Template, render

OPEN = frozenset({ParticipantStatus.PENDING, ParticipantStatus.SENT})
# The contact columns a template reads (domain.templates): a group of participants is known by which of
# them are empty, and a participant of that group is rendered as a contact with "x" in the others.
FIELDS = ("first_name", "last_name", "display_name", "username", "company_name")
# Stored waiting reasons the limiter writes when it hands a campaign's sends back (pacing.Defer.reason).
CAP_REASON, WINDOW_REASON = "cap", "window"


class Code(StrEnum):
    STEP_DELAY = "step_delay"
    GAP = "gap"
    QUEUED = "queued"
    DAILY_CAP = "daily_cap"
    RAMP_UP = "ramp_up"
    OUTSIDE_WINDOW = "outside_window"
    FLOOD_BLOCKED = "flood_blocked"
    ACCOUNT_PAUSED = "account_paused"
    ACCOUNT_INACTIVE = "account_inactive"
    ACCOUNT_RESTRICTED = "account_restricted"
    CAMPAIGN_PAUSED = "campaign_paused"
    AWAITING_REPLY = "awaiting_reply"
    IN_DOUBT = "in_doubt"
    RETRY_BACKOFF = "retry_backoff"
    MISSING_DATA = "missing_data"
    AUTO_REPLY_PAUSE = "auto_reply_pause"


# A participant waiting for a stored time: its stored reason names the code.
_TIMED = {
    Waiting.IN_DOUBT: Code.IN_DOUBT,
    Waiting.RETRY: Code.RETRY_BACKOFF,
    Waiting.FLOOD: Code.FLOOD_BLOCKED,
    Waiting.WINDOW: Code.OUTSIDE_WINDOW,
    CAP_REASON: Code.DAILY_CAP,
    Waiting.AUTO_REPLY: Code.AUTO_REPLY_PAUSE,
}


@attrs.frozen
class Wait:
    code: Code
    until: datetime | None
    message: str


@attrs.frozen
class Participant:
    """What the participant's row says."""

    status: str
    next_send_at: datetime | None
    waiting_reason: str | None
    current_step: int
    wait_since: datetime | None = None  # when its reply wait started (last send or skip)
    last_error: str | None = None
    missing: str | None = None  # the placeholder its next step lacks (domain.templates.Skip.detail)


@attrs.define
class Account:
    """An account as its limiter sees it now (live), or as the database says when none runs."""

    name: str
    policy: AccountPolicy
    last_start: datetime | None = None
    starts: Sequence[datetime] = ()  # counted send starts, sorted (the cap's count)
    gap_s: float | None = None  # the gap the limiter drew for this campaign's next send, when known
    # Sends of other campaigns the limiter serves before this campaign's next one, and how many other
    # campaigns take turns with it (round-robin) after that.
    lanes_ahead: int = 0
    other_lanes: int = 0
    _slots: list[datetime] = attrs.field(factory=list, init=False)

    def zone(self, plan: CampaignPlan) -> ZoneInfo:
        return self.policy.day_zone(plan)

    def gap(self, plan: CampaignPlan) -> float:
        return self.gap_s if self.gap_s is not None else plan.spread_gap_s(self.policy.floor_s)

    def slot(self, plan: CampaignPlan, first: datetime, position: int, now: datetime) -> datetime:
        """When the account's send ``position`` places from now (0: the next) starts: the account's slots
        from ``first`` at the campaign's gap, cap and window (pacing.AccountPolicy.spread). Memoised: a
        page of one account's queue costs one spread."""
        if len(self._slots) <= position or (self._slots and self._slots[0] != first):
            self._slots = self.policy.spread(
                plan,
                first,
                max(position + 1, 2 * len(self._slots)),
                sent_today=pacing.sent_today(self.starts, self.zone(plan), now),
                rng=random.Random(0),
            )
        return self._slots[position]


def reads_contacts(plan: CampaignPlan) -> bool:
    """Whether any step's template reads a contact field (else every contact renders alike)."""
    return any(isinstance(t, Template) and t.fields for t in plan.templates.values())


def missing_of(plan: CampaignPlan, index: int, fields: Mapping[str, str | None]) -> str | None:
    """What the step at ``index`` lacks for a contact with ``fields`` (FIELDS): the placeholder without a
    fallback that has no value, or "empty message"; None when it renders (or is not a template step).
    Spintax options are taken as a fixed generator picks them: a placeholder inside one option may or may
    not be needed at the send."""
    if index >= len(plan.steps) or plan.steps[index].is_hidden:
        return None
    template = plan.templates.get(plan.steps[index].template_id)
    if not isinstance(template, Template):
        return None
    contact = {f: fields.get(f) for f in FIELDS if f != "company_name"}
    rendered = render(template, RenderContext(contact, fields.get("company_name")), random.Random(0))
    return rendered.detail if isinstance(rendered, Skip) else None


def fields_of(mask: str) -> dict[str, str | None]:
    """A contact whose FIELDS are empty where ``mask`` (one 0/1 per field) says 1."""
    return {f: None if bit == "1" else "x" for f, bit in zip(FIELDS, mask, strict=True)}


def _at(value: datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return "later"
    local = value.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {zone.key}"


def _step(index: int) -> str:
    return f"step {index + 1}"


def explain(
    p: Participant,
    *,
    plan: CampaignPlan,
    campaign_status: str,
    account: Account | None,
    now: datetime,
    rank: int | None = 0,
) -> Wait | None:
    """Why ``p`` waits; None for a terminal participant. ``rank``: how many of the campaign's due
    participants on the same account go before it (None: more than were counted)."""
    if p.status not in OPEN:
        return None
    zone = account.zone(plan) if account is not None else pacing.AccountPolicy().day_zone(plan)
    if campaign_status == CampaignStatus.PAUSED:
        return Wait(Code.CAMPAIGN_PAUSED, None, "The campaign is paused: nothing is sent until it is resumed")
    if p.waiting_reason == Waiting.ACCOUNT_PAUSED:
        name = account.name if account is not None else "The account"
        return Wait(Code.ACCOUNT_PAUSED, None, f"{name} is paused for this campaign")
    if account is None:
        return Wait(Code.ACCOUNT_INACTIVE, None, "No BD account is assigned to this contact")
    held = account.policy.hold(now)
    if held is not None:
        return _held(account, held, zone)
    if p.next_send_at is None:
        if p.waiting_reason == Waiting.REPLY:
            until = p.wait_since + plan.reply_wait if p.wait_since is not None else None
            return Wait(
                Code.AWAITING_REPLY,
                until,
                f"Waiting for a reply before {_step(p.current_step)}; the wait ends {_at(until, zone)}",
            )
        return Wait(Code.QUEUED, None, "Being scheduled: the campaign is placing its first sends")
    if p.missing is not None:
        lacks = (
            "renders empty for this contact"
            if p.missing == "empty message"
            else f"needs {{{{{p.missing}}}}}, which this contact lacks"
        )
        return Wait(
            Code.MISSING_DATA,
            p.next_send_at,
            f"{_step(p.current_step).capitalize()} {lacks}: it will be skipped at "
            f"{_at(max(p.next_send_at, now), zone)} unless the contact is completed",
        )
    if p.next_send_at > now:
        return _timed(p, plan, account, now, zone)
    return _due(p, plan=plan, account=account, now=now, rank=rank, zone=zone)


def _held(account: Account, held: pacing.Hold, zone: ZoneInfo) -> Wait:
    policy = account.policy
    if held.state == pacing.FLOOD_BLOCKED:
        return Wait(
            Code.FLOOD_BLOCKED,
            held.until,
            f"Telegram asked {account.name} to slow down ({policy.block_reason or 'flood wait'}): sending "
            f"resumes at {_at(held.until, zone)}",
        )
    if not policy.active:
        return Wait(Code.ACCOUNT_INACTIVE, None, f"{account.name} is disconnected or inactive")
    return Wait(
        Code.ACCOUNT_RESTRICTED,
        None,
        f"{account.name} is restricted by Telegram (spam): nothing is sent until it is cleared",
    )


def _timed(p: Participant, plan: CampaignPlan, account: Account, now: datetime, zone: ZoneInfo) -> Wait:
    """A participant waiting for its stored time: the reason stored with it, else what placed it there."""
    assert p.next_send_at is not None
    until = p.next_send_at
    when = _at(until, zone)
    code = _TIMED.get(p.waiting_reason or "") or _placed(p, plan, account, now, zone)
    if code == Code.DAILY_CAP:
        return _capped(plan, account, now, zone, until, at=when)
    messages = {
        Code.IN_DOUBT: f"The outcome of an earlier send is unknown: it is checked, not repeated, after {when}",
        Code.RETRY_BACKOFF: f"The last attempt failed ({p.last_error or 'a temporary error'}): next try at {when}",
        Code.FLOOD_BLOCKED: f"Telegram asked {account.name} to slow down: sending resumes at {when}",
        Code.OUTSIDE_WINDOW: f"Outside sending hours: the window opens at {when}",
        Code.AUTO_REPLY_PAUSE: f"The contact's automatic answer (away message or bot) holds the next send "
        f"until {when}",
        Code.QUEUED: f"Spread behind other first messages of {account.name}: goes out at {when}",
        Code.STEP_DELAY: f"{_step(p.current_step).capitalize()} is due at {when}",
    }
    return Wait(code, until, messages[code])


def _placed(p: Participant, plan: CampaignPlan, account: Account, now: datetime, zone: ZoneInfo) -> Code:
    """Why a time stored without a reason is where it is: first sends are spread over the account's slots
    (enrolment, AccountPolicy.spread) — past a closed window, past today's cap, or behind the slots of
    the contacts before them; any other time is its step's delay."""
    policy = account.policy
    if not sched.is_open(policy.window(plan), now):
        return Code.OUTSIDE_WINDOW
    first = p.status == ParticipantStatus.PENDING and not _delay(plan, p.current_step)
    cap = policy.cap(plan, now)
    assert p.next_send_at is not None
    capped = cap and pacing.sent_today(account.starts, zone, now) >= cap
    if first and capped and p.next_send_at >= sched.next_local_midnight(zone, now):
        return Code.DAILY_CAP
    return Code.QUEUED if first else Code.STEP_DELAY


def _capped(
    plan: CampaignPlan,
    account: Account,
    now: datetime,
    zone: ZoneInfo,
    until: datetime,
    *,
    at: str | None = None,
) -> Wait:
    """The day's cap is used (``at``: the stored time the send waits for; else after local midnight): the
    account's ramp (``ramp_up``) when it is what sets today's cap, else the daily cap."""
    policy = account.policy
    cap = policy.cap(plan, now)
    midnight = sched.next_local_midnight(zone, now)
    when = f"at {at}" if at is not None else f"after {_at(midnight, zone)}"
    if policy.ramp_binds(plan, now):
        tomorrow = policy.cap(plan, midnight)
        return Wait(
            Code.RAMP_UP,
            until,
            f"Ramp-up of {account.name}: {cap}/day today ({tomorrow} tomorrow) reached — next send {when}",
        )
    return Wait(Code.DAILY_CAP, until, f"Daily limit of {account.name} ({cap}/day) reached: next send {when}")


def _delay(plan: CampaignPlan, index: int) -> timedelta:
    return steps.delay(plan.steps[index]) if index < len(plan.steps) else timedelta(0)


def _due(
    p: Participant,
    *,
    plan: CampaignPlan,
    account: Account,
    now: datetime,
    rank: int | None,
    zone: ZoneInfo,
) -> Wait:
    """A due participant: what its account's rules say (pacing.AccountPolicy.decide, as the limiter)."""
    assert p.next_send_at is not None
    policy = account.policy
    verdict = policy.decide(
        plan,
        due_at=p.next_send_at,
        now=now,
        last_start=account.last_start,
        gap_s=account.gap(plan),
        starts=account.starts,
        rng=random.Random(0),
    )
    if isinstance(verdict, pacing.Defer):
        if verdict.reason == CAP_REASON:
            return _capped(plan, account, now, zone, verdict.until)
        return Wait(
            Code.OUTSIDE_WINDOW,
            verdict.until,
            f"Outside sending hours: the window opens at {_at(verdict.until, zone)}",
        )
    if rank is None:
        return Wait(Code.QUEUED, None, f"Hundreds of messages go out from {account.name} before this one")
    position = account.lanes_ahead + rank * (1 + account.other_lanes)
    if position == 0:
        if verdict.at > now:
            gap = timedelta(seconds=policy.padded(account.gap(plan)))
            return Wait(
                Code.GAP,
                verdict.at,
                f"{account.name} keeps {_duration(gap)} between messages: this one goes at "
                f"{_at(verdict.at, zone)}",
            )
        return Wait(Code.QUEUED, verdict.at, f"Next in line on {account.name}: going out now")
    until = account.slot(plan, verdict.at, position, now)
    ahead = "1 message goes" if position == 1 else f"{position} messages go"
    return Wait(
        Code.QUEUED, until, f"{ahead} out from {account.name} before this one: about {_at(until, zone)}"
    )


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
