"""The forecast's query and response (GET /:id/forecast, docs/visibility.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from campaignsvc.domain import forecast as fc
from campaignsvc.http.models.common import Timestamp

MAX_EXTRA_ACCOUNTS = 10

Bottleneck = Literal["daily_cap", "gap", "window", "step_delays", "blocked", "none"]


class ForecastQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    extraAccounts: int = Field(
        0,
        ge=0,
        le=MAX_EXTRA_ACCOUNTS,
        description="Forecast with this many more accounts like the campaign's median one (0–10)",
    )


class ForecastAccount(BaseModel):
    bdAccountId: uuid.UUID | None = Field(description="Null for an account extraAccounts adds")
    remainingSends: int = Field(description="Sends this account still makes for the campaign")
    sendsPerDay: float = Field(
        description="Its remaining sends over the days until it finishes (at least one)"
    )
    finishesAt: Timestamp | None = Field(description="Its last send's start; null when it never finishes")


class ForecastDay(BaseModel):
    date: dt.date = Field(description="A day in the campaign schedule's time zone (else UTC)")
    sends: int = Field(description="Sends forecast that day")


class ForecastWhatIf(BaseModel):
    extraAccounts: int = Field(description="Accounts like the median one added to the campaign as it is")
    finishesAt: Timestamp | None


class Forecast(BaseModel):
    remainingSends: int = Field(description="Every remaining send of every open participant, no replies")
    finishesAt: Timestamp | None = Field(description="When the last send starts; null when it never does")
    bottleneck: Bottleneck = Field(description="The rule that holds the simulated sends back the longest")
    reason: str | None = Field(description="Why it never finishes; null when it does")
    perAccount: list[ForecastAccount]
    daily: list[ForecastDay] = Field(description="Sends per day from today, up to 90 days")
    whatIf: list[ForecastWhatIf] = Field(
        description="The finish with 1, 2 and 3 more accounts like the median one"
    )
    assumptions: list[str] = Field(description="What the forecast takes for granted, as sentences")


def forecast_body(f: fc.Forecast) -> dict[str, Any]:
    return {
        "remainingSends": f.remaining_sends,
        "finishesAt": f.finishes_at,
        "bottleneck": f.bottleneck,
        "reason": f.reason,
        "perAccount": [
            {
                "bdAccountId": a.bd_account_id,
                "remainingSends": a.remaining_sends,
                "sendsPerDay": a.sends_per_day,
                "finishesAt": a.finishes_at,
            }
            for a in f.per_account
        ],
        "daily": [{"date": d.date.isoformat(), "sends": d.sends} for d in f.daily],
        "whatIf": [{"extraAccounts": w.extra_accounts, "finishesAt": w.finishes_at} for w in f.what_if],
        "assumptions": list(f.assumptions),
    }
