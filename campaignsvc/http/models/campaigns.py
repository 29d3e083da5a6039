"""Campaign bodies and rows (original-v1 §2.3, §3.1, §3.3)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from campaignsvc.http.models.common import (
    BdAccountOut,
    Body,
    ContactSummary,
    Json,
    Name,
    Page,
    Passthrough,
    ScheduleIn,
    Timestamp,
    require_min_le_max,
)

CampaignStatus = Literal["draft", "active", "paused", "completed"]
UUIDList = Annotated[list[uuid.UUID], Field(max_length=10_000)]


class AudienceFilters(Passthrough):
    companyId: uuid.UUID | None = None
    pipelineId: uuid.UUID | None = None
    hasTelegram: bool | None = None


class TargetAudience(Passthrough):
    """``campaigns.target_audience``; keys not listed here are kept as they come."""

    contactIds: UUIDList | None = None
    limit: int | None = Field(None, ge=0, le=1_000_000)
    filters: AudienceFilters | None = None
    onlyNew: bool | None = None
    sendDelaySeconds: float | None = Field(None, ge=0, le=86_400)
    sendDelayMinSeconds: int | None = Field(None, ge=0, le=86_400)
    sendDelayMaxSeconds: int | None = Field(None, ge=0, le=86_400)
    bdAccountId: uuid.UUID | None = None
    bdAccountIds: Annotated[list[uuid.UUID], Field(max_length=500)] | None = None
    dynamicPipelineId: uuid.UUID | None = None
    dynamicStageIds: Annotated[list[uuid.UUID], Field(max_length=500)] | None = None
    randomizeWithAI: bool | None = None
    dailySendTarget: int | None = Field(None, ge=1, le=500)
    replyWaitHours: float | None = Field(None, ge=0, le=8760)
    autoReplyPauseHours: float | None = Field(
        None,
        ge=0,
        le=720,
        description="How long an automatic answer (away message, business bot) holds the next send back; "
        "default 24, 0: not held",
    )
    enrichContactsBeforeStart: bool | None = None

    @model_validator(mode="after")
    def _range(self) -> TargetAudience:
        require_min_le_max(self.__dict__, "sendDelayMinSeconds", "sendDelayMaxSeconds")
        return self


class LeadCreationSettings(Passthrough):
    trigger: Literal["on_first_send", "on_reply"] | None = None
    default_stage_id: uuid.UUID | None = None
    default_responsible_id: uuid.UUID | None = None


class CampaignCreate(Body):
    name: Name
    companyId: uuid.UUID | None = None
    pipelineId: uuid.UUID | None = None
    targetAudience: TargetAudience | None = None
    schedule: ScheduleIn | None = None


class CampaignPatch(Body):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] | None = None
    companyId: uuid.UUID | None = None
    pipelineId: uuid.UUID | None = None
    targetAudience: TargetAudience | None = None
    schedule: ScheduleIn | None = None
    status: CampaignStatus | None = None
    leadCreationSettings: LeadCreationSettings | None = None


class CampaignListQuery(Page):
    status: Annotated[str, StringConstraints(max_length=50)] | None = None


class CampaignRow(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    company_id: uuid.UUID | None
    pipeline_id: uuid.UUID | None
    name: str
    status: str
    target_audience: Json | None
    schedule: Json | None
    created_at: Timestamp
    updated_at: Timestamp
    lead_creation_settings: Json | None
    created_by_user_id: uuid.UUID | None
    deleted_at: Timestamp | None
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    status_reason: str | None = None


class CampaignKpis(BaseModel):
    owner_email: str | None
    owner_name: str | None
    total_participants: int
    total_sent: int
    total_read: int
    total_replied: int
    total_converted_to_shared_chat: int
    total_won: int
    total_revenue: float
    bd_account_name: str | None
    bd_accounts: list[BdAccountOut]


class CampaignListItem(CampaignRow, CampaignKpis):
    pass


class Summary(BaseModel):
    total_sent: int
    total_replied: int
    total_won: int


class CampaignList(BaseModel):
    data: list[CampaignListItem]
    total: int
    page: int
    limit: int
    summary: Summary


class TemplateRow(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    campaign_id: uuid.UUID | None
    name: str
    channel: str
    content: str
    conditions: Json | None
    created_at: Timestamp
    updated_at: Timestamp
    media_url: str | None = None
    media_type: str | None = None
    media_metadata: Json | None = None
    variant_group: uuid.UUID | None = None
    variant_weight: int = 100


class StepVariant(BaseModel):
    """An A/B variant of a step (docs/semantics.md, "A/B variants"); the step's own template is the control."""

    id: uuid.UUID
    templateId: uuid.UUID
    weight: int = Field(description="Relative share of participants; the control weighs 1")
    templateName: str | None = Field(None, description="None: not a template of this organization")


class SequenceRow(BaseModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    order_index: int
    template_id: uuid.UUID
    delay_hours: int
    delay_minutes: int
    conditions: Json | None
    trigger_type: str
    is_hidden: bool
    created_at: Timestamp
    updated_at: Timestamp
    template_name: str
    channel: str | None = None
    content: str | None = None
    variants: list[StepVariant] = Field(
        default_factory=list, description="The step's A/B variants besides its own template, the control"
    )
    autoWinner: bool = Field(
        False, description="Once an arm has won, only it is sent to participants not yet sent this step"
    )


class CampaignDetail(CampaignListItem):
    templates: list[TemplateRow]
    sequences: list[SequenceRow]
    selected_contacts: list[ContactSummary] | None = None


def audience_json(audience: TargetAudience | None) -> dict[str, Any]:
    """What is stored in ``target_audience``: the keys the client sent, unknown ones included."""
    return {} if audience is None else audience.model_dump(mode="json", exclude_unset=True)
