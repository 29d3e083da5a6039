"""Whether a campaign is ready to launch (``GET /api/campaigns/:id/preflight``, docs/visibility.md).

Pure: each check is computed from what the use case read — the campaign's plan, its accounts' pacing
rules (:class:`~campaignsvc.domain.pacing.AccountPolicy`) with their sends today, a :class:`Tally` of the
remaining audience, and the forecast's finish. Every check is reported, a passing one with count 0. An
``error`` is something that makes the start fail or nothing be sent; a ``warning`` is something a rep
should know before pressing Start.

Rendering is judged per group of contacts, not per contact: a step's outcome (sent, a placeholder without
fallback left empty, an empty message) depends on a contact's fields only through whether each one is
empty (:func:`_token`), and on which spintax options are picked — every combination is rendered with the
templates' own :func:`~campaignsvc.domain.templates.render`, up to :data:`MAX_PATHS` of them.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from campaignsvc.domain import conditions
from campaignsvc.domain import schedule as sched
from campaignsvc.domain import steps as st
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.pacing import RESTRICTED, UTC, AccountPolicy
from campaignsvc.domain.templates import RenderContext, Rendered, Skip, Template, TemplateError, render


class PreflightCode(StrEnum):
    """What a pre-launch check is about (docs/visibility.md, "Ready to launch?")."""

    NO_STEPS = "no_steps"
    FIRST_STEP_WAITS = "first_step_waits"
    INVALID_TEMPLATE = "invalid_template"
    NO_ACCOUNTS = "no_accounts"
    ACCOUNT_INACTIVE = "account_inactive"
    ACCOUNT_BLOCKED = "account_blocked"
    ACCOUNT_AT_CAP = "account_at_cap"
    WINDOW_NEVER_OPEN = "window_never_open"
    GAP_BELOW_FLOOR = "gap_below_floor"
    NO_AUDIENCE = "no_audience"
    NO_CHANNEL = "no_channel"
    ALREADY_IN_CAMPAIGN = "already_in_campaign"
    MISSING_DATA = "missing_data"
    EMPTY_RENDER = "empty_render"
    LONG_CAMPAIGN = "long_campaign"


class Severity(StrEnum):
    """error: the start would fail or send nothing; warning: worth knowing before the start."""

    ERROR = "error"
    WARNING = "warning"


_ERRORS = {
    PreflightCode.NO_STEPS,
    PreflightCode.FIRST_STEP_WAITS,
    PreflightCode.INVALID_TEMPLATE,
    PreflightCode.NO_ACCOUNTS,
    PreflightCode.WINDOW_NEVER_OPEN,
    PreflightCode.NO_AUDIENCE,
}
SEVERITY = {code: Severity.ERROR if code in _ERRORS else Severity.WARNING for code in PreflightCode}
SAMPLE_SIZE = 5
LONG_CAMPAIGN_DAYS = 30
# Spintax combinations rendered per step and group of contacts; past it, as many random picks.
MAX_PATHS = 256


@attrs.frozen
class Check:
    code: PreflightCode
    count: int  # what fails (contacts, accounts, steps or 1 for the campaign: docs/visibility.md); 0 passes
    message: str
    sample: tuple[uuid.UUID, ...] = ()

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.code]


@attrs.frozen
class Report:
    checks: tuple[Check, ...]

    @classmethod
    def of(cls, checks: Iterable[Check]) -> Report:
        """The checks in :class:`PreflightCode` order, every code present (the last given of each counts)."""
        by_code = {c.code: c for c in checks}
        if set(by_code) != set(PreflightCode):
            raise ValueError(f"checks missing: {sorted(set(PreflightCode) - set(by_code))}")
        return cls(tuple(by_code[code] for code in PreflightCode))

    @property
    def ok(self) -> bool:
        return not any(c.count and c.severity is Severity.ERROR for c in self.checks)


def _listed(items: Sequence[str], limit: int = SAMPLE_SIZE) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def _plural(n: int, noun: str, nouns: str | None = None) -> str:
    return f"{n:,} " + (noun if n == 1 else nouns or noun + "s")


def _at(at: datetime, zone: ZoneInfo = UTC) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M ") + zone.key


# --- steps ---------------------------------------------------------------------------------------------


def _step(index: int) -> str:
    return f"step {index + 1}"


def step_checks(plan: CampaignPlan, now: datetime) -> list[Check]:
    """no_steps, first_step_waits, invalid_template: what ``POST /:id/start`` refuses (the step ids are the
    sample)."""
    visible = st.visible_count(plan.steps)
    first = st.plan_first(plan.steps, now)
    waits = [plan.steps[first.index]] if isinstance(first, st.WaitReply) else []
    broken = [
        (i, s, t)
        for i, s in enumerate(plan.steps)
        if not s.is_hidden and isinstance(t := plan.templates.get(s.template_id), TemplateError)
    ]
    return [
        Check(
            PreflightCode.NO_STEPS,
            0 if visible else 1,
            f"{_plural(visible, 'visible step')}"
            if visible
            else "The campaign has no visible step: add one before starting",
        ),
        Check(
            PreflightCode.FIRST_STEP_WAITS,
            len(waits),
            "The first visible step waits for a reply, but nothing has been sent yet: give it a delay trigger"
            if waits
            else "The first visible step is sent after its delay",
            tuple(s.id for s in waits),
        ),
        Check(
            PreflightCode.INVALID_TEMPLATE,
            len(broken),
            "A template cannot be sent as written: " + _listed([f"{_step(i)}: {t}" for i, _, t in broken])
            if broken
            else "Every step's template can be sent as written",
            tuple(s.id for _, s, _ in broken[:SAMPLE_SIZE]),
        ),
    ]


# --- accounts ------------------------------------------------------------------------------------------


@attrs.frozen
class Account:
    """One of the campaign's BD accounts: ``found`` in the organization, its rules, its sends today (counted
    since its local midnight in :meth:`AccountPolicy.day_zone`)."""

    id: uuid.UUID
    name: str
    found: bool
    policy: AccountPolicy
    sent_today: int = 0

    @property
    def can_send(self) -> bool:
        return self.found and self.policy.active


def opening(window: sched.Schedule | None, now: datetime) -> datetime | None:
    """When ``window`` next opens (``now`` when it is open); None when the schedule functions find no
    opening at all (every window in reach erased, e.g. by DST)."""
    try:
        return sched.next_open(window, now)
    except AssertionError:
        return None


def account_checks(
    plan: CampaignPlan, accounts: Sequence[Account], *, named: bool, now: datetime
) -> list[Check]:
    """no_accounts, account_inactive, account_blocked, account_at_cap, window_never_open; the sample holds
    account ids. ``accounts``: the audience's accounts in order (``named``), else the organization's first
    active one, which the start falls back to."""
    sending = [a for a in accounts if a.can_send]
    inactive = [a for a in accounts if not a.can_send]
    blocked: list[tuple[Account, str]] = []
    at_cap: list[tuple[Account, str]] = []
    never: list[Account] = []
    for a in sending:
        held = a.policy.hold(now)
        if held is not None:
            if held.state == RESTRICTED:
                blocked.append((a, f"{a.name} is spam-restricted: no sends until the restriction is cleared"))
            else:
                reason = f" ({a.policy.block_reason})" if a.policy.block_reason else ""
                until = _at(held.until) if held.until else "further notice"
                blocked.append((a, f"{a.name} is flood-blocked{reason} until {until}"))
        zone, cap = a.policy.day_zone(plan), a.policy.cap(plan)
        if cap and a.sent_today >= cap:
            resume = sched.next_local_midnight(zone, now)
            at_cap.append((a, f"{a.name}: {a.sent_today}/{cap} sends today, next after {_at(resume, zone)}"))
        if opening(a.policy.window(plan), now) is None:
            never.append(a)
    where = "The campaign's schedule" if plan.schedule is not None else "The working hours"
    return [
        Check(
            PreflightCode.NO_ACCOUNTS,
            0 if sending else 1,
            _plural(len(sending), "active BD account")
            if sending
            else (
                "None of the campaign's BD accounts is active"
                if named
                else "The campaign names no BD account and the organization has no active one"
            ),
        ),
        Check(
            PreflightCode.ACCOUNT_INACTIVE,
            len(inactive),
            "Not sending (inactive or no longer in the organization): " + _listed([a.name for a in inactive])
            if inactive
            else "Every BD account of the campaign is active",
            tuple(a.id for a in inactive[:SAMPLE_SIZE]),
        ),
        Check(
            PreflightCode.ACCOUNT_BLOCKED,
            len(blocked),
            _listed([m for _, m in blocked]) if blocked else "No BD account is restricted or blocked",
            tuple(a.id for a, _ in blocked[:SAMPLE_SIZE]),
        ),
        Check(
            PreflightCode.ACCOUNT_AT_CAP,
            len(at_cap),
            "Daily limit reached: " + _listed([m for _, m in at_cap])
            if at_cap
            else "Every BD account has sends left today",
            tuple(a.id for a, _ in at_cap[:SAMPLE_SIZE]),
        ),
        Check(
            PreflightCode.WINDOW_NEVER_OPEN,
            len(never),
            f"{where} never open for: " + _listed([a.name for a in never])
            if never
            else "Every BD account's sending window opens",
            tuple(a.id for a in never[:SAMPLE_SIZE]),
        ),
    ]


def gap_check(plan: CampaignPlan, floor_s: float) -> Check:
    """gap_below_floor: the campaign's gap range reaches below the accounts' floor, which is used instead."""
    low, high = plan.gap_min_s, plan.gap_max_s
    shown = f"{low:g} s" if low == high else f"{low:g}–{high:g} s"
    if low >= floor_s:
        return Check(PreflightCode.GAP_BELOW_FLOOR, 0, f"The campaign's gap ({shown}) is at least the floor")
    if high <= floor_s:
        message = f"The campaign's gap ({shown}) is below the floor of {floor_s:g} s: every gap will be {floor_s:g} s"
    else:
        message = (
            f"Part of the campaign's gap range ({shown}) is below the floor of {floor_s:g} s: "
            f"gaps drawn below it will be {floor_s:g} s"
        )
    return Check(PreflightCode.GAP_BELOW_FLOOR, 1, message)


def long_campaign_check(
    *, remaining_sends: int, finishes_at: datetime | None, reason: str | None, now: datetime
) -> Check:
    """long_campaign: the forecast finishes more than :data:`LONG_CAMPAIGN_DAYS` days from now, or never."""
    if remaining_sends and finishes_at is None:
        return Check(
            PreflightCode.LONG_CAMPAIGN, 1, "The forecast never finishes" + (f": {reason}" if reason else "")
        )
    if finishes_at is None:
        return Check(PreflightCode.LONG_CAMPAIGN, 0, "Nothing left to send")
    days = (finishes_at - now) / timedelta(days=1)
    message = (
        f"{_plural(remaining_sends, 'send')} left; the forecast finishes {_at(finishes_at)}, "
        f"in {days:.1f} days"
    )
    if days > LONG_CAMPAIGN_DAYS:
        return Check(PreflightCode.LONG_CAMPAIGN, 1, message + f" (more than {LONG_CAMPAIGN_DAYS})")
    return Check(PreflightCode.LONG_CAMPAIGN, 0, message)


# --- the audience --------------------------------------------------------------------------------------

# The render context's fields a template reads, and the field each data placeholder reads.
RENDER_FIELDS = ("first_name", "last_name", "display_name", "username", "company_name")
_READS = {
    "contact.first_name": "first_name",
    "contact.last_name": "last_name",
    "contact.display_name": "display_name",
    "contact.username": "username",
    "company.name": "company_name",
}
_SEEN: dict[str, str | None] = {"": None, "@": "@", "x": "x"}
# Contact rules whose outcome depends on a field only through whether it is empty once trimmed.
_EMPTINESS_OPS = frozenset({"empty", "not_empty"})


def _token(value: Any) -> str:
    """A field as rendering sees it: empty, "@" (an empty username once its @ is dropped), or a value."""
    if value is None:
        return ""
    text = (value if isinstance(value, str) else str(value)).strip()
    return text if text in ("", "@") else "x"


def key_fields(plan: CampaignPlan) -> dict[str, bool]:
    """The contact fields contacts are grouped by, each True when its exact value matters (a visible
    step's contact rule compares it) and False when a stand-in does: "x" for a value holding a letter or
    a digit (never empty once trimmed, never "@"), else the value as it is — rendering and the emptiness
    rules cannot tell the two apart (tests/unit/test_preflight.py checks it)."""
    fields = dict.fromkeys(RENDER_FIELDS, False)
    for step in plan.steps:
        rules = step.conditions.get("contact") if isinstance(step.conditions, Mapping) else None
        if step.is_hidden or not isinstance(rules, list):
            continue
        for rule in rules:
            if isinstance(rule, Mapping) and rule.get("field") in conditions.CONTACT_FIELDS:
                name = str(rule["field"])
                fields[name] = fields.get(name, False) or rule.get("op") not in _EMPTINESS_OPS
    return fields


@attrs.define
class Group:
    """Contacts that fare alike: how many, and the first :data:`SAMPLE_SIZE` as (position in the
    audience, contact id)."""

    count: int = 0
    sample: list[tuple[int, uuid.UUID]] = attrs.Factory(list)

    def add(self, count: int, sample: Iterable[tuple[int, uuid.UUID]]) -> None:
        self.count += count
        self.sample = heapq.nsmallest(SAMPLE_SIZE, [*self.sample, *sample])


def merged(groups: Iterable[Group]) -> tuple[int, tuple[uuid.UUID, ...]]:
    """Their total and the first :data:`SAMPLE_SIZE` contacts of all of them."""
    groups = list(groups)
    first = heapq.nsmallest(SAMPLE_SIZE, (s for g in groups for s in g.sample))
    return sum(g.count for g in groups), tuple(c for _, c in first)


_Key = tuple[int, tuple[str, ...], tuple[bool, ...]]


@attrs.define
class Tally:
    """The remaining audience, added a group of alike contacts at a time (:meth:`add`; the database
    groups them by :func:`key_fields`), kept as one :class:`Group` per (first step left, rendering
    tokens, outcome of each conditional step).

    ``drafted``: the audience is the campaign's definition (a start materialises it), else its open
    participants."""

    plan: CampaignPlan
    drafted: bool
    reachable: int = 0
    no_channel: Group = attrs.Factory(Group)
    elsewhere: Group = attrs.Factory(Group)
    groups: dict[_Key, Group] = attrs.Factory(dict)
    _conditional: tuple[tuple[int, Any], ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._conditional = tuple(
            (i, s.conditions) for i, s in enumerate(self.plan.steps) if s.conditions and not s.is_hidden
        )

    def add(
        self,
        fields: Mapping[str, Any],
        sample: Sequence[tuple[int, uuid.UUID]],
        *,
        count: int = 1,
        reachable: bool = True,
        from_step: int = 0,
        has_replied: bool = False,
        lead_stages: Mapping[uuid.UUID, uuid.UUID] | None = None,
        elsewhere: bool = False,
    ) -> None:
        """``count`` contacts alike in all of that, with ``fields`` (:func:`key_fields`, as they are or as
        stand-ins) and the first of them as (position, contact id)."""
        if not reachable:
            self.no_channel.add(count, sample)
            return
        self.reachable += count
        if elsewhere:
            self.elsewhere.add(count, sample)
        facts = conditions.Facts(contact=fields, has_replied=has_replied, lead_stages=lead_stages or {})
        holds = tuple(i >= from_step and conditions.evaluate(c, facts) for i, c in self._conditional)
        key = (from_step, tuple(_token(fields.get(f)) for f in RENDER_FIELDS), holds)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group()
        group.add(count, sample)


def pipelines(plan: CampaignPlan) -> set[uuid.UUID]:
    """Pipelines the steps' conditions read (the contacts' lead stages are loaded for them)."""
    return {p for s in plan.steps for p in conditions.pipelines_referenced(s.conditions)}


class _Scripted(random.Random):
    """Picks the spintax options of one path: ``path[i]`` at the i-th choice (0 past its end), recording
    how many options each choice had."""

    def __init__(self, path: Sequence[int]) -> None:
        super().__init__(0)
        self.path = path
        self.widths: list[int] = []

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is not None or step != 1:  # render picks an option as randrange(len(options))
            raise ValueError("only randrange(n) is scripted")
        self.widths.append(start)
        i = len(self.widths) - 1
        return self.path[i] if i < len(self.path) else 0


def renders(template: Template, ctx: RenderContext) -> list[Rendered | Skip]:
    """The template rendered for every combination of its spintax options (in order), or, past
    :data:`MAX_PATHS` combinations, for that many and as many random picks."""
    out: list[Rendered | Skip] = []
    path: list[int] = []
    while len(out) < MAX_PATHS:
        rng = _Scripted(path)
        out.append(render(template, ctx, rng))
        taken = (path + [0] * len(rng.widths))[: len(rng.widths)]
        turn = next((k for k in reversed(range(len(taken))) if taken[k] + 1 < rng.widths[k]), None)
        if turn is None:
            return out
        path = [*taken[:turn], taken[turn] + 1]
    picks = random.Random(template.content)
    out.extend(render(template, ctx, picks) for _ in range(MAX_PATHS))
    return out


@attrs.frozen
class Outcome:
    """What a step can come to for a group: the placeholders it cannot fill, and whether it can be empty."""

    missing: frozenset[str]
    empty: bool


def outcome(template: Template, tokens: Sequence[str], ai_text: str) -> Outcome:
    """For contacts whose :data:`RENDER_FIELDS` are ``tokens``. A render stops at the first placeholder it
    cannot fill, so each one found is filled in and the step rendered again, until none is left."""
    values = {f: _SEEN[t] for f, t in zip(RENDER_FIELDS, tokens, strict=True)}

    def results() -> list[Rendered | Skip]:
        contact = {f: values[f] for f in RENDER_FIELDS if f != "company_name"}
        ctx = RenderContext(contact=contact, company_name=values["company_name"], ai_text=ai_text)
        return renders(template, ctx)

    first = results()
    empty = any(isinstance(r, Skip) and r.detail not in _READS for r in first)
    missing: set[str] = set()
    found = {r.detail for r in first if isinstance(r, Skip) and r.detail in _READS}
    while found:
        missing |= found
        values.update({_READS[name]: "x" for name in found})
        found = {r.detail for r in results() if isinstance(r, Skip) and r.detail in _READS} - missing
    return Outcome(frozenset(missing), empty)


def audience_checks(tally: Tally, *, other_campaigns: Sequence[str] = ()) -> list[Check]:
    """no_audience (1 when nobody is left), no_channel and already_in_campaign (contact ids)."""
    who = ("contact of the audience", "contacts of the audience") if tally.drafted else ("open participant",)
    no_channel, no_channel_ids = merged([tally.no_channel])
    elsewhere, elsewhere_ids = merged([tally.elsewhere])
    named = f" ({', '.join(other_campaigns)})" if other_campaigns else ""
    if tally.drafted:
        nobody = "No contact of the audience has a Telegram id or username: the start would fail"
        left_out = "the start leaves them out"
    else:
        nobody = "No open participant is left to send to"
        left_out = "they fail without a send"
    return [
        Check(
            PreflightCode.NO_AUDIENCE,
            0 if tally.reachable else 1,
            f"{_plural(tally.reachable, *who)} to send to" if tally.reachable else nobody,
        ),
        Check(
            PreflightCode.NO_CHANNEL,
            no_channel,
            f"{_plural(no_channel, 'contact')} with neither a Telegram id nor a username: {left_out}"
            if no_channel
            else "Every contact has a Telegram id or a username",
            no_channel_ids,
        ),
        Check(
            PreflightCode.ALREADY_IN_CAMPAIGN,
            elsewhere,
            f"{_plural(elsewhere, 'contact')} already in other active campaigns{named}"
            if elsewhere
            else "No contact is in another active campaign",
            elsewhere_ids,
        ),
    ]


def render_checks(tally: Tally, *, ai_text: str) -> list[Check]:
    """missing_data and empty_render, counting and sampling contacts: each group's remaining steps that
    its conditions let through, rendered once per group."""
    plan = tally.plan
    conditional = [i for i, s in enumerate(plan.steps) if s.conditions and not s.is_hidden]
    cache: dict[tuple[int, tuple[str, ...]], Outcome] = {}
    missing_groups: list[Group] = []
    empty_groups: list[Group] = []
    by_placeholder: dict[tuple[int, str], int] = {}
    empty_steps: dict[int, int] = {}
    for (from_step, tokens, holds), group in tally.groups.items():
        allowed = dict(zip(conditional, holds, strict=True))
        lacks = empty = False
        for i, step in enumerate(plan.steps):
            template = plan.templates.get(step.template_id)
            if (
                i < from_step
                or step.is_hidden
                or not allowed.get(i, True)
                or not isinstance(template, Template)
            ):
                continue
            found = cache.get((i, tokens))
            if found is None:
                found = cache[(i, tokens)] = outcome(template, tokens, ai_text)
            for name in found.missing:
                by_placeholder[(i, name)] = by_placeholder.get((i, name), 0) + group.count
            if found.empty:
                empty_steps[i] = empty_steps.get(i, 0) + group.count
            lacks, empty = lacks or bool(found.missing), empty or found.empty
        if lacks:
            missing_groups.append(group)
        if empty:
            empty_groups.append(group)
    missing, missing_ids = merged(missing_groups)
    empties, empty_ids = merged(empty_groups)
    lacking = [
        f"{{{{{name}}}}} in {_step(i)} has no fallback and {_plural(n, 'contact')} no value for it"
        for (i, name), n in sorted(by_placeholder.items())
    ]
    blank = [f"{_step(i)} for {_plural(n, 'contact')}" for i, n in sorted(empty_steps.items())]
    return [
        Check(
            PreflightCode.MISSING_DATA,
            missing,
            f"{_plural(missing, 'contact')} would skip a step for missing data: " + _listed(lacking)
            if missing
            else "Every contact can fill every placeholder",
            missing_ids,
        ),
        Check(
            PreflightCode.EMPTY_RENDER,
            empties,
            "A step can come out as an empty message (skipped): " + _listed(blank)
            if empties
            else "No step renders to an empty message",
            empty_ids,
        ),
    ]
