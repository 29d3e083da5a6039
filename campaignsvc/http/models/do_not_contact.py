"""Bodies and answers of the do-not-contact list (campaignsvc/http/do_not_contact.py)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campaignsvc.http.models.common import Body, Timestamp

MAX_VALUES = 10_000
_TELEGRAM_ID = re.compile(r"^-?\d{1,20}$")
_USERNAME = re.compile(r"^[a-z0-9_]{3,64}$")

Reason = Literal["manual", "reply_unsubscribe", "blocked_by_user"]


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)
    q: str | None = Field(None, max_length=100, description="Part of a username, a Telegram id or a name")


class EntriesAdd(Body):
    contactIds: Annotated[list[uuid.UUID], Field(max_length=MAX_VALUES)] | None = None
    telegramIds: Annotated[list[str], Field(max_length=MAX_VALUES)] | None = None
    usernames: Annotated[list[str], Field(max_length=MAX_VALUES)] | None = Field(
        None, description="With or without @; kept in lower case"
    )
    reason: Literal["manual"] = Field("manual", description="Entries added by a person are manual")

    @field_validator("telegramIds")
    @classmethod
    def _ids(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        cleaned = [v.strip() for v in values]
        bad = [v for v in cleaned if not _TELEGRAM_ID.match(v)]
        if bad:
            raise ValueError(f"not a Telegram id: {bad[0][:40]!r}")
        return cleaned

    @field_validator("usernames")
    @classmethod
    def _names(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        cleaned = [v.strip().removeprefix("@").lower() for v in values]
        bad = [v for v in cleaned if not _USERNAME.match(v)]
        if bad:
            raise ValueError(f"not a Telegram username: {bad[0][:40]!r}")
        return cleaned

    @model_validator(mode="after")
    def _something(self) -> EntriesAdd:
        if not (self.contactIds or self.telegramIds or self.usernames):
            raise ValueError("give at least one of contactIds, telegramIds, usernames")
        return self


class Added(BaseModel):
    added: int = Field(description="Entries added (values already on the list are left alone)")


class Entry(BaseModel):
    id: uuid.UUID
    contactId: uuid.UUID | None
    telegramId: str | None = Field(description="The entry's, else its contact's")
    username: str | None = Field(description="The entry's, else its contact's")
    contactName: str | None
    reason: Reason
    addedByUserId: uuid.UUID | None = Field(description="Who added it (null: a reply or Messaging did)")
    sourceCampaignId: uuid.UUID | None = Field(description="The campaign whose reply or send added it")
    createdAt: Timestamp


class EntriesPage(BaseModel):
    data: list[Entry]
    total: int
