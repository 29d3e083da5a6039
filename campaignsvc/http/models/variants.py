"""A/B variants of a step: the body that adds one, the analytics per step and arm (docs/semantics.md,
"A/B variants")."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from campaignsvc.domain.variants import DEFAULT_MIN_SAMPLE, MAX_WEIGHT, MIN_WEIGHT
from campaignsvc.http.models.campaigns import StepVariant
from campaignsvc.http.models.common import Body
from campaignsvc.http.models.sequences import JsonInt

__all__ = [
    "ArmStats",
    "StepVariant",
    "StepVariantsStats",
    "VariantCreate",
    "VariantsAnalytics",
    "VariantsQuery",
]

Weight = Annotated[JsonInt, Field(ge=MIN_WEIGHT, le=MAX_WEIGHT)]


class VariantCreate(Body):
    templateId: uuid.UUID = Field(description="A template of this campaign")
    weight: Weight = Field(1, description="Relative share of participants (the control weighs 1)")


class VariantsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    minSample: int = Field(
        DEFAULT_MIN_SAMPLE, ge=1, le=1_000_000, description="Sends every arm needs before a winner is named"
    )


class ArmStats(BaseModel):
    variantId: uuid.UUID | None = Field(description="None: the control, the step's own template")
    templateId: uuid.UUID | None = Field(description="None: a variant removed since its sends")
    templateName: str | None
    weight: int = Field(description="0: a variant removed since its sends")
    removed: bool = False
    sent: int
    replied: int = Field(description="Replies whose latest earlier send was this arm's")
    positive: int = Field(description="Of those, read as interested or question")
    unsubscribed: int
    replyRate: float
    positiveRate: float
    unsubscribeRate: float


class Winner(BaseModel):
    variantId: uuid.UUID | None
    templateId: uuid.UUID


class StepVariantsStats(BaseModel):
    stepId: uuid.UUID
    index: int = Field(description="Position in the sequence")
    orderIndex: int
    autoWinner: bool
    arms: list[ArmStats]
    winner: Winner | None = Field(
        description="None until every arm has minSample sends and the best positive rate beats each other "
        "arm's with p < 0.05 (two-proportion z-test)"
    )


class VariantsAnalytics(BaseModel):
    campaignId: uuid.UUID
    minSample: int
    steps: list[StepVariantsStats]
