"""Template and preset bodies and rows (original-v1 §2.4 presets, §2.5, §3.1)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints, field_validator

from campaignsvc.http.models.campaigns import TemplateRow
from campaignsvc.http.models.common import Body, Channel, Json, Name, Timestamp

__all__ = ["PresetCreate", "PresetRow", "TemplateCreate", "TemplatePatch", "TemplateRow", "reject_null"]

MAX_CONTENT = 50_000
# Template content may be empty (the original allowed it; an empty message is skipped at send time).
Content = Annotated[str, StringConstraints(max_length=MAX_CONTENT)]
PresetContent = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONTENT)]


def reject_null(value: Any) -> Any:
    """For optional PATCH fields: absent means "unchanged", an explicit null is an error."""
    if value is None:
        raise ValueError("must not be null")
    return value


class TemplateCreate(Body):
    name: Name
    channel: Channel
    content: Content
    # Stored as given and never evaluated (as the original); null stores {}.
    conditions: Json | None = None


class TemplatePatch(Body):
    name: Name | None = None
    channel: Channel | None = None
    content: Content | None = None
    conditions: Json | None = None

    _not_null = field_validator("name", "channel", "content", mode="before")(reject_null)


class PresetCreate(Body):
    name: Name
    channel: Channel = "telegram"
    content: PresetContent


class PresetRow(BaseModel):
    id: uuid.UUID
    name: str
    channel: str
    content: str
    created_at: Timestamp
