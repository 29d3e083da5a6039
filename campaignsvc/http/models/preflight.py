"""The pre-launch checks of a campaign (``GET /api/campaigns/:id/preflight``, docs/visibility.md)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from campaignsvc.domain.preflight import PreflightCode, Severity

CODES = (
    "no_steps, first_step_waits, invalid_template (samples: step ids); no_accounts; account_inactive, "
    "account_blocked, account_at_cap, window_never_open (samples: BD account ids); gap_below_floor; "
    "no_audience; no_channel, already_in_campaign, missing_data, empty_render (samples: contact ids); "
    "long_campaign"
)


class PreflightCheck(BaseModel):
    code: PreflightCode = Field(description=f"What is checked: {CODES}")
    severity: Severity = Field(
        description="error: the start would fail or nothing would be sent; warning: worth knowing first"
    )
    count: int = Field(
        ge=0,
        description="How many fail (contacts, accounts or steps as the sample's ids are; 1 for a check of "
        "the whole campaign); 0: the check passes",
    )
    message: str = Field(description="What was found, in a sentence a rep reads (also when it passes)")
    sample: list[uuid.UUID] = Field(
        max_length=5, description="Up to 5 ids of what fails, in audience or sequence order"
    )


class Preflight(BaseModel):
    ok: bool = Field(description="False when any error check fails")
    checks: list[PreflightCheck] = Field(description="Every check, passing ones included, in code order")
