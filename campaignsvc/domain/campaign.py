"""An active campaign as the dispatcher sees it, and how a participant moves on after each step.

A :class:`CampaignPlan` is an immutable snapshot taken when the campaign actor starts: steps and
templates cannot change while the campaign is active (editing needs a pause, SPEC R-SEQ-5), so every
send of the run uses the same parsed templates.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from campaignsvc.domain import schedule as sched
from campaignsvc.domain import steps as st
from campaignsvc.domain.audience import Audience
from campaignsvc.domain.status import ParticipantStatus, Waiting
from campaignsvc.domain.templates import Template, TemplateError, parse
from campaignsvc.domain.variants import CONTROL_WEIGHT, Arm, assign

# How far a send moved to the next window start may land inside the window (SPEC R-SEQ-4 jitter).
WINDOW_JITTER_S = 300.0


def step_from_row(row: Mapping[str, Any]) -> st.Step:
    """A step from its ``campaign_sequences`` row."""
    return st.Step(
        id=row["id"],
        order_index=row["order_index"],
        created_at=row["created_at"],
        trigger_type=row["trigger_type"],
        delay_hours=row["delay_hours"],
        delay_minutes=row["delay_minutes"],
        is_hidden=row["is_hidden"],
        template_id=row["template_id"],
        conditions=row["conditions"] or {},
        key=row.get("step_key"),
    )


def _arm(row: Mapping[str, Any], templates: dict[uuid.UUID, Template | TemplateError]) -> Arm:
    """A variant from ``load_campaign``'s JSON (ids as text); its template parsed into ``templates``, or
    left out when it is not a template of the campaign's organization (the arm is then skipped)."""
    template_id = uuid.UUID(str(row["template_id"]))
    if row.get("content") is not None and template_id not in templates:
        try:
            templates[template_id] = parse(row["content"])
        except TemplateError as exc:
            templates[template_id] = exc
    return Arm(variant_id=uuid.UUID(str(row["id"])), template_id=template_id, weight=int(row["weight"]))


@attrs.frozen
class CampaignPlan:
    id: uuid.UUID
    organization_id: uuid.UUID
    owner_id: uuid.UUID | None
    steps: tuple[st.Step, ...]
    templates: Mapping[uuid.UUID, Template | TemplateError] = attrs.field(hash=False)
    schedule: sched.Schedule | None
    gap_min_s: float
    gap_max_s: float
    daily_target: int | None
    reply_wait: timedelta
    pipeline_id: uuid.UUID | None
    lead_settings: Mapping[str, Any] = attrs.field(hash=False)
    audience: Audience = attrs.field(factory=lambda: Audience.parse(None))
    # Step id → its arms, the control first (only steps with variants; docs/semantics.md "A/B variants").
    arms: Mapping[uuid.UUID, tuple[Arm, ...]] = attrs.field(factory=dict, hash=False)
    # Steps with autoWinner, and the winner decided for each so far (the campaign actor refreshes it).
    auto_winner: frozenset[uuid.UUID] = frozenset()
    winners: Mapping[uuid.UUID, Arm] = attrs.field(factory=dict, hash=False)

    def arm_for(self, step: st.Step, campaign_contact: uuid.UUID | None) -> Arm | None:
        """The arm this contact's participant gets at ``step``; None for a step without variants."""
        arms = self.arms.get(step.id)
        if not arms:
            return None
        won = self.winners.get(step.id) if step.id in self.auto_winner else None
        if won is not None:
            return won
        if campaign_contact is None or step.key is None:
            return arms[0]
        return assign(arms, self.id, campaign_contact, step.key)

    @classmethod
    def from_rows(
        cls, campaign: Mapping[str, Any], step_rows: Sequence[Mapping[str, Any]], *, reply_wait_hours: float
    ) -> CampaignPlan:
        audience = Audience.parse(campaign.get("target_audience"))
        steps = st.ordered(step_from_row(r) for r in step_rows)
        templates: dict[uuid.UUID, Template | TemplateError] = {}
        for r in step_rows:
            if r["content"] is None:
                continue  # no template of the campaign's organization: the step is skipped, never sent
            try:
                templates[r["template_id"]] = parse(r["content"])
            except TemplateError as exc:
                templates[r["template_id"]] = exc
        arms: dict[uuid.UUID, tuple[Arm, ...]] = {}
        for r in step_rows:
            variants = r.get("variants") or []
            if not variants:
                continue
            control = Arm(variant_id=None, template_id=r["template_id"], weight=CONTROL_WEIGHT)
            arms[r["id"]] = (control, *(_arm(v, templates) for v in variants))
        try:
            schedule = sched.Schedule.from_json(campaign.get("schedule"))
        except sched.ScheduleError:
            schedule = None  # stored by an older version without validation: no restriction
        return cls(
            id=campaign["id"],
            organization_id=campaign["organization_id"],
            owner_id=campaign.get("created_by_user_id"),
            steps=tuple(steps),
            templates=templates,
            schedule=schedule,
            gap_min_s=audience.gap_min_s,
            gap_max_s=audience.gap_max_s,
            daily_target=audience.daily_target,
            reply_wait=timedelta(
                hours=reply_wait_hours if audience.reply_wait_hours is None else audience.reply_wait_hours
            ),
            pipeline_id=campaign.get("pipeline_id"),
            lead_settings=campaign.get("lead_creation_settings") or {},
            audience=audience,
            arms=arms,
            auto_winner=frozenset(r["id"] for r in step_rows if r.get("auto_winner") and r["id"] in arms),
        )

    def gap_s(self, floor_s: float, rng: random.Random) -> float:
        """This send's gap: a sample of the campaign's range, never below the account floor."""
        sample = (
            self.gap_min_s
            if self.gap_max_s <= self.gap_min_s
            else rng.uniform(self.gap_min_s, self.gap_max_s)
        )
        return max(floor_s, sample)

    def spread_gap_s(self, floor_s: float) -> float:
        """The gap first sends are spread at: the middle of the campaign's range, at least the floor."""
        return max(floor_s, (self.gap_min_s + self.gap_max_s) / 2)

    def daily_cap(self, account_cap: int) -> int:
        """Sends per local day this campaign may use on an account (0 = no cap)."""
        if self.daily_target is None:
            return account_cap
        return min(self.daily_target, account_cap) if account_cap else self.daily_target

    @property
    def lead_trigger(self) -> str | None:
        """``on_first_send`` / ``on_reply``; v1 defaulted to on_first_send when only a pipeline was set."""
        trigger = self.lead_settings.get("trigger")
        if trigger in ("on_first_send", "on_reply"):
            return str(trigger)
        return "on_first_send" if self.pipeline_id is not None and not self.lead_settings else None

    def effective_schedule(self, account_schedule: sched.Schedule | None) -> sched.Schedule | None:
        """The campaign's window; without one, the BD account's own working hours; else any time."""
        return self.schedule if self.schedule is not None else account_schedule


@attrs.frozen
class ParticipantUpdate:
    """A participant's scheduling state after a step: what the recorder writes."""

    current_step: int
    status: ParticipantStatus
    next_send_at: datetime | None
    waiting_reason: Waiting | None
    attempts: int = 0
    last_error: str | None = None


def follow_plan(
    plan: st.Plan, schedule: sched.Schedule | None, rng: random.Random, *, fallback_index: int
) -> ParticipantUpdate:
    """Turn a step plan into the participant's next state, placing a due time inside the window."""
    if isinstance(plan, st.Done):
        return ParticipantUpdate(
            current_step=fallback_index,
            status=ParticipantStatus.COMPLETED,
            next_send_at=None,
            waiting_reason=None,
        )
    if isinstance(plan, st.WaitReply):
        return ParticipantUpdate(
            current_step=plan.index,
            status=ParticipantStatus.SENT,
            next_send_at=None,
            waiting_reason=Waiting.REPLY,
        )
    at = sched.place(schedule, plan.at, rng, WINDOW_JITTER_S)
    return ParticipantUpdate(
        current_step=plan.index,
        status=ParticipantStatus.SENT,
        next_send_at=at,
        waiting_reason=Waiting.WINDOW if at > plan.at else None,
    )


def after_send(
    campaign: CampaignPlan, index: int, sent_at: datetime, schedule: sched.Schedule | None, rng: random.Random
) -> ParticipantUpdate:
    return follow_plan(
        st.plan_after(campaign.steps, index, sent_at), schedule, rng, fallback_index=len(campaign.steps)
    )


def after_skip(
    campaign: CampaignPlan,
    index: int,
    at: datetime,
    schedule: sched.Schedule | None,
    rng: random.Random,
    *,
    sent_before: bool,
) -> ParticipantUpdate:
    update = follow_plan(
        st.plan_skip(campaign.steps, index, at), schedule, rng, fallback_index=len(campaign.steps)
    )
    if update.status == ParticipantStatus.SENT and not sent_before:
        update = attrs.evolve(
            update, status=ParticipantStatus.PENDING
        )  # nothing sent yet: still "pending" for reports
    return update
