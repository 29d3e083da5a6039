"""Sequence step bodies (original-v1 §2.6, §3.3 StepConditions); rows are ``SequenceRow``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from campaignsvc.domain.steps import MAX_DELAY_HOURS
from campaignsvc.http.models.campaigns import SequenceRow
from campaignsvc.http.models.common import Body, Json
from campaignsvc.http.models.templates import reject_null

__all__ = ["SequenceRow", "StepCreate", "StepPatch"]

TriggerType = Literal["delay", "after_reply"]


def _json_number(value: Any) -> Any:
    """JSON numbers only: ``"5"`` and ``true`` are not integers (pydantic's lax mode would take them)."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_number)]
OrderIndex = Annotated[JsonInt, Field(ge=0, le=1_000_000)]
DelayHours = Annotated[JsonInt, Field(ge=0, le=MAX_DELAY_HOURS)]
DelayMinutes = Annotated[JsonInt, Field(ge=0, le=59)]
StrictBool = Annotated[bool, Field(strict=True)]


class StepCreate(Body):
    orderIndex: OrderIndex = 0
    templateId: uuid.UUID
    delayHours: DelayHours = 24
    delayMinutes: DelayMinutes = 0
    conditions: Json | None = None
    triggerType: TriggerType = "delay"
    isHidden: StrictBool = False
    autoWinner: StrictBool = False


class StepPatch(Body):
    orderIndex: OrderIndex | None = None
    templateId: uuid.UUID | None = None
    delayHours: DelayHours | None = None
    delayMinutes: DelayMinutes | None = None
    conditions: Json | None = None
    triggerType: TriggerType | None = None
    isHidden: StrictBool | None = None
    autoWinner: StrictBool | None = Field(
        None, description="A/B: once an arm has won, send only it to participants not yet sent this step"
    )

    _not_null = field_validator(
        "orderIndex",
        "templateId",
        "delayHours",
        "delayMinutes",
        "triggerType",
        "isHidden",
        "autoWinner",
        mode="before",
    )(reject_null)
