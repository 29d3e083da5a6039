"""Preview of a campaign for one contact, and the AI variant request (SPEC R-API-3)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from campaignsvc.http.models.common import Body
from campaignsvc.http.models.templates import MAX_CONTENT

MAX_INSTRUCTIONS = 2000


class PreviewQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    contactId: uuid.UUID


class PreviewStep(BaseModel):
    stepId: uuid.UUID
    index: int = Field(description="Position in the sequence (the participant's current_step)")
    orderIndex: int
    triggerType: str
    delayHours: int
    delayMinutes: int
    isHidden: bool
    templateId: uuid.UUID = Field(description="The template this contact gets: its A/B arm's, if any")
    variantId: uuid.UUID | None = Field(
        None, description="The A/B variant this contact gets at this step; None: the step's own template"
    )
    status: Literal["send", "skip"]
    text: str | None = Field(None, description="The message as it would be sent (status send only)")
    reason: Literal["hidden", "conditions", "missing_data", "invalid_template"] | None = Field(
        None, description="Why the step would be skipped (status skip only)"
    )
    detail: str | None = Field(
        None,
        description="conditions: the path of the first condition that fails (e.g. conditions.contact.0); "
        "missing_data: the placeholder without a value, or 'empty message'; invalid_template: the problem",
    )


class Preview(BaseModel):
    campaignId: uuid.UUID
    contactId: uuid.UUID
    steps: list[PreviewStep]


class VariantRequest(Body):
    templateId: uuid.UUID | None = Field(
        None, description="A template of this campaign; its content is used when content is not given"
    )
    content: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONTENT)] | None = None
    instructions: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_INSTRUCTIONS)] | None
    ) = None


class VariantOut(BaseModel):
    content: str
    provider: str
    message: str | None = None
