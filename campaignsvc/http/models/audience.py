"""Audience import bodies and results (original-v1 §2.4, §4.13)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, Field

from campaignsvc.domain.replies import Intent
from campaignsvc.http.models.common import Body, Timestamp

MAX_CSV_CHARS = 5_000_000
MAX_USERNAME_TEXT = 500_000
MAX_BULK_CONTACTS = 5000


class CsvImport(Body):
    content: Annotated[str, Field(min_length=1, max_length=MAX_CSV_CHARS)] = Field(
        description="The CSV file: RFC 4180 quoting, `,` `;` or tab, optional BOM, CRLF or LF line ends"
    )
    hasHeader: bool = Field(
        True,
        description="The first row names the columns; without a header the columns are judged from the cells",
    )


class UsernameImport(Body):
    text: Annotated[str, Field(min_length=1, max_length=MAX_USERNAME_TEXT)] = Field(
        description="One @username, t.me link or Telegram id per line"
    )


class ImportResult(BaseModel):
    contactIds: list[uuid.UUID] = Field(
        description="The contacts of the valid rows, once each, in file order"
    )
    created: int = Field(description="Contacts created by this import")
    matched: int = Field(description="Existing contacts of the organization that rows matched")
    skipped: int = Field(description="Rows not imported: invalid, or naming a deleted contact")
    invalidSamples: list[str] = Field(description="Up to 10 of the skipped rows, with why")


class ParticipantsBulk(Body):
    contactIds: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_BULK_CONTACTS)]
    bdAccountId: uuid.UUID | None = None


class BulkAdded(BaseModel):
    added: int = Field(description="Participants added (contacts already in the campaign are left alone)")


class Deleted(BaseModel):
    deleted: int = Field(description="Participants removed (with their send history)")


class IntentPatch(Body):
    replyIntent: Intent = Field(description="What the participant's reply means, as a person reads it")


class ParticipantIntent(BaseModel):
    participantId: uuid.UUID
    contactId: uuid.UUID
    status: str
    replyIntent: Intent
    repliedAt: Timestamp | None
