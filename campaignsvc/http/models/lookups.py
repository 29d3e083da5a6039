"""Lookup queries and rows: agents, group sources, Telegram sources, contact picker, audience conflicts
(original-v1 §2.2, §2.4)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from campaignsvc.http.models.common import BdAccountOut, Body, ContactSummary, Timestamp

PICKER_DEFAULT_LIMIT = 500
PICKER_MAX_LIMIT = 1000
MAX_CONFLICT_CONTACTS = 5000


Search = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)]  # search_keyword
ChatId = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]  # telegram_chat_id


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AgentOut(BdAccountOut):
    sentToday: int = Field(
        description="Sends of this account since local midnight (account time zone, else UTC)"
    )


class GroupSource(BaseModel):
    id: uuid.UUID
    bd_account_id: uuid.UUID
    telegram_chat_id: str
    title: str | None
    peer_type: str
    account_name: str


class GroupContactsQuery(Query):
    bdAccountId: uuid.UUID
    telegramChatId: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class GroupContacts(BaseModel):
    contactIds: list[uuid.UUID]


class TelegramSourceGroup(BaseModel):
    bdAccountId: uuid.UUID | None
    telegramChatId: str
    telegramChatTitle: str | None = Field(None, description="Omitted when the chat has no title")


class PickerQuery(Query):
    limit: int | None = Field(
        None, ge=1, description=f"Default {PICKER_DEFAULT_LIMIT}; above {PICKER_MAX_LIMIT} is lowered to it"
    )
    outreachStatus: Literal["new", "in_outreach"] | None = None
    search: Search | None = None
    sourceKeyword: Keyword | None = None
    sourceTelegramChatId: ChatId | None = None
    sourceBdAccountId: uuid.UUID | None = None

    def effective_limit(self) -> int:
        return min(self.limit or PICKER_DEFAULT_LIMIT, PICKER_MAX_LIMIT)


class PickerContact(ContactSummary):
    outreach_status: Literal["new", "in_outreach"]


class ConflictsBody(Body):
    contactIds: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_CONFLICT_CONTACTS)]


class Conflict(BaseModel):
    contact_id: uuid.UUID
    campaign_id: uuid.UUID
    campaign_name: str
    participant_status: str
    last_sent_at: Timestamp | None
    is_current_campaign: bool
    contact_name: str | None
    contact_username: str | None


class Conflicts(BaseModel):
    conflicts: list[Conflict]
