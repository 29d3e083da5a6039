"""The statuses the service stores, named once. They are ``StrEnum`` members: each equals its stored text,
so rows read from the database compare with them directly and they are written as that text."""

from __future__ import annotations

from enum import StrEnum


class CampaignStatus(StrEnum):
    """draft → active ⇄ paused → completed (a completed campaign reopens when given someone to send to)."""

    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


class ParticipantStatus(StrEnum):
    """pending (nothing sent yet) → sent (a step went out) → completed | replied | failed; ``stopped`` and
    ``skipped`` end a participant nothing more will be sent to for another reason."""

    PENDING = "pending"
    SENT = "sent"
    COMPLETED = "completed"
    REPLIED = "replied"
    FAILED = "failed"
    STOPPED = "stopped"
    SKIPPED = "skipped"


class SendStatus(StrEnum):
    """A ledger row (``campaign_sends``): claimed and handed to Messaging (``sending``), outcome unknown
    after a crash or a timeout (``in_doubt``), then ``sent`` or ``failed``; ``deferred`` when Messaging
    asked to wait (flood, 429) and the same key will be tried again, ``skipped`` when the step was not sent
    (its conditions or its template ruled it out)."""

    SENDING = "sending"
    IN_DOUBT = "in_doubt"
    SENT = "sent"
    FAILED = "failed"
    DEFERRED = "deferred"
    SKIPPED = "skipped"


class Waiting(StrEnum):
    """Why an open participant is not due (``waiting_reason``); none while it simply waits for its time."""

    REPLY = "reply"
    IN_DOUBT = "in_doubt"
    RETRY = "retry"
    FLOOD = "flood"
    WINDOW = "window"
    ACCOUNT_PAUSED = "account_paused"
    AUTO_REPLY = "auto_reply"  # an automatic answer holds the next send back (autoReplyPauseHours)
