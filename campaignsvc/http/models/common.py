"""Types shared by several resources."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from campaignsvc.domain.validation import parse_zone

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Channel = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Timestamp = dt.datetime
Json = dict[str, Any]

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Body(BaseModel):
    """Request bodies: unknown keys are ignored (as the original's zod schemas stripped them)."""

    model_config = ConfigDict(extra="ignore")


class Passthrough(BaseModel):
    """JSON objects stored as they come (jsonb columns): unknown keys are kept."""

    model_config = ConfigDict(extra="allow")


class Page(BaseModel):
    """``page`` from 1; ``limit`` above the endpoint's maximum is lowered to it (the original clamped)."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(1, ge=1, le=1_000_000)
    limit: int | None = Field(None, ge=1)

    def window(self, default: int, maximum: int) -> tuple[int, int]:
        limit = min(self.limit or default, maximum)
        return limit, (self.page - 1) * limit


class WorkingHours(Passthrough):
    start: str | None = Field(None, max_length=16)
    end: str | None = Field(None, max_length=16)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None and not _HHMM.match(value):
            raise ValueError("must be a time HH:MM (00:00–23:59)")
        return value


class ScheduleIn(Passthrough):
    timezone: str | None = Field(None, max_length=64)
    workingHours: WorkingHours | None = None
    daysOfWeek: list[Annotated[int, Field(ge=0, le=6)]] | None = Field(None, max_length=7)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return value  # no zone: UTC, as the dispatcher reads it
        # The dispatcher's own reading (domain.validation.parse_zone): a name it would ignore, such as
        # Factory or posix/..., is refused here instead of leaving a campaign without its window.
        zone = parse_zone(value)
        if zone is None:
            raise ValueError("must be an IANA time zone such as Europe/Berlin")
        return zone.key


class BdAccountOut(BaseModel):
    """A BD account as the list, detail and agents endpoints show it (original-v1 §2.2)."""

    id: uuid.UUID
    displayName: str
    floodWaitUntil: Timestamp | None
    floodWaitSeconds: int | None
    floodReason: str | None
    floodLastAt: Timestamp | None
    spamRestrictedAt: Timestamp | None
    spamRestrictionSource: str | None
    peerFloodCount1h: int | None
    photoFileId: str | None
    isActive: bool
    connectionState: str
    firstName: str | None
    lastName: str | None
    username: str | None
    phoneNumber: str | None
    telegramId: str


class ContactSummary(BaseModel):
    """A contact as the campaign detail (``selected_contacts``) and the picker show it."""

    id: uuid.UUID
    first_name: str
    last_name: str | None
    display_name: str | None
    username: str | None
    telegram_id: str | None
    email: str | None
    phone: str | None


def require_min_le_max(values: dict[str, Any], low: str, high: str) -> None:
    a, b = values.get(low), values.get(high)
    if a is not None and b is not None and a > b:
        raise ValueError(f"{low} must be <= {high}")
