"""What a claim decides and finds (actors/send_path.py asks, storage/claims.py answers under the
participant's lock): the step's text or a skip, and what the ledger says about the step."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from campaignsvc.domain import conditions
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.campaign import CampaignPlan, ParticipantUpdate, after_skip
from campaignsvc.domain.templates import RenderContext, Skip, TemplateError, render


@attrs.frozen
class SendText:
    text: str
    variant_id: uuid.UUID | None = None  # the A/B arm rendered (None: the step's own template)


@attrs.frozen
class SkipStep:
    reason: str
    detail: str
    update: ParticipantUpdate


@attrs.frozen
class Facts:
    """What the dispatcher decides a step on, read under the participant's lock."""

    contact: Mapping[str, Any]
    company_name: str | None
    has_replied: bool
    sent_before: bool
    lead_stages: Mapping[uuid.UUID, uuid.UUID]
    contact_id: uuid.UUID | None = None  # the participant's contact: what its A/B arm is hashed on


Decide = Callable[[Facts], SendText | SkipStep]


@attrs.frozen
class Claimed:
    """The ledger row is ``sending``: call Messaging with exactly this key and text."""

    send_id: uuid.UUID
    idempotency_key: str
    content: str
    contact_id: uuid.UUID
    channel_id: str
    first_send: bool
    participant_attempts: int  # transient failures of this step so far


@attrs.frozen
class NotDue:
    """The participant moved on (reply, pause, another instance, a reschedule): nothing to send."""

    reason: str


@attrs.frozen
class Skipped:
    update: ParticipantUpdate
    reason: str


@attrs.frozen
class Quarantined:
    """An earlier attempt of this step may have been delivered; retry with the same key after ``until``."""

    until: datetime


@attrs.frozen
class Recovered:
    """The step was already recorded as sent (a repeat after a crash): advance without sending."""

    message_id: uuid.UUID | None
    first_send: bool


@attrs.frozen
class ContactGone:
    reason: str


@attrs.frozen
class Stopped:
    """Nothing more is sent to this contact, by any campaign (the do-not-contact list)."""

    reason: str


ClaimResult = Claimed | NotDue | Skipped | Quarantined | Recovered | ContactGone | Stopped


def decide(
    plan: CampaignPlan,
    index: int,
    schedule: sched.Schedule | None,
    rng: random.Random,
    now: dt.datetime,
    ai_text: str,
    facts: Facts,
) -> SendText | SkipStep:
    """Send this step's text — of the participant's A/B arm when the step has variants — or skip the step
    (hidden, conditions false, missing data, bad template)."""
    step = plan.steps[index]

    def skip(reason: str, detail: str) -> SkipStep:
        update = after_skip(plan, index, now, schedule, rng, sent_before=facts.sent_before)
        return SkipStep(reason=reason, detail=detail, update=update)

    if step.is_hidden:
        return skip("hidden", "hidden step")
    arm = plan.arm_for(step, facts.contact_id)
    template = plan.templates.get(step.template_id if arm is None else arm.template_id)
    if template is None or isinstance(template, TemplateError):
        return skip("invalid_template", str(template) if template else "template missing")
    held = conditions.Facts(
        contact=facts.contact, has_replied=facts.has_replied, lead_stages=facts.lead_stages
    )
    if not conditions.evaluate(step.conditions, held):
        return skip("conditions", "step conditions are not met")
    rendered = render(
        template, RenderContext(contact=facts.contact, company_name=facts.company_name, ai_text=ai_text), rng
    )
    if isinstance(rendered, Skip):
        return skip(rendered.reason, rendered.detail)
    return SendText(rendered.text, variant_id=None if arm is None else arm.variant_id)
