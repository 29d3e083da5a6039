"""A BD account's ramp-up (``/agents/:accountId/ramp``; docs/semantics.md, "Ramp-up")."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from campaignsvc.http.models.common import Body, Timestamp

MAX_PER_DAY = 100_000  # as CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY's bound


class RampBody(Body):
    startPerDay: int = Field(ge=1, le=MAX_PER_DAY, description="Sends allowed on startedOn (and before it)")
    increasePerDay: int = Field(
        ge=0, le=MAX_PER_DAY, description="Added to the budget on each local day after startedOn"
    )
    maxPerDay: int = Field(ge=1, le=MAX_PER_DAY, description="The budget never grows past this")
    startedOn: dt.date = Field(description="The ramp's first day, a calendar day of the account's time zone")

    @field_validator("maxPerDay")
    @classmethod
    def _not_below_start(cls, value: int, info: ValidationInfo) -> int:
        start = info.data.get("startPerDay")
        if isinstance(start, int) and value < start:
            raise ValueError("must be at least startPerDay")
        return value


class RampStepDown(BaseModel):
    budget: int = Field(description="Sends a day the step-down left (half of that day's budget)")
    at: Timestamp = Field(description="When the FLOOD_WAIT or PEER_FLOOD stepped the ramp down")
    until: Timestamp = Field(
        description="End of the cool-off: the budget grows again from the local day after it"
    )
    reason: str | None = Field(description="flood_wait or peer_flood")


class RampOut(BaseModel):
    bdAccountId: uuid.UUID
    startPerDay: int
    increasePerDay: int
    maxPerDay: int
    startedOn: dt.date
    budgetToday: int = Field(
        description="Today's budget in the account's time zone; the account's cap is the lower of it and "
        "its own daily cap"
    )
    nextStepAt: Timestamp | None = Field(
        description="The local midnight from which the budget is higher; null: it no longer grows"
    )
    stepDown: RampStepDown | None = Field(description="The latest step-down; null: none")
    updatedAt: Timestamp
