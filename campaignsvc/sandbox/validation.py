"""``POST /api/messaging/send`` body validation, as the Messaging Service's schema does it (original-v1 §5.3).

Issues are reported the way its validator words them (``Required``, ``Invalid uuid``, ``String must contain
at most 64 character(s)``), all at once; the "content or fileBase64" rule is checked only when every field
is well-formed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from campaignsvc.sandbox.answers import BD_ACCOUNT_REQUIRED, UNSUPPORTED_CHANNEL, validation_failed
from campaignsvc.sandbox.records import SendRequest

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MISSING = object()


class SendRejected(Exception):
    """The request is answered before anything is sent: bad input or a channel the service cannot use."""

    def __init__(self, status: int, body: dict[str, Any], outcome: str) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body
        self.outcome = outcome


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


class _Fields:
    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.issues: list[dict[str, str]] = []

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        nullable: bool = False,
        min_len: int = 0,
        max_len: int | None = None,
        uuid: bool = False,
    ) -> str | None:
        value = self.body.get(name, _MISSING)
        if value is _MISSING:
            if required:
                self.issues.append({"path": name, "message": "Required"})
            return None
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            self.issues.append({"path": name, "message": f"Expected string, received {_type_name(value)}"})
            return None
        if uuid and not _UUID.match(value):
            self.issues.append({"path": name, "message": "Invalid uuid"})
        elif len(value) < min_len:
            self.issues.append(
                {"path": name, "message": f"String must contain at least {min_len} character(s)"}
            )
        elif max_len is not None and len(value) > max_len:
            self.issues.append(
                {"path": name, "message": f"String must contain at most {max_len} character(s)"}
            )
        return value


def parse_send(body: Any, headers: Mapping[str, str]) -> SendRequest:
    """The validated request, or :class:`SendRejected` with the service's exact answer."""
    if not isinstance(body, dict):
        details = [{"path": "", "message": f"Expected object, received {_type_name(body)}"}]
        raise SendRejected(400, validation_failed(details), "validation")
    f = _Fields(body)
    contact_id = body.get("contactId")
    if contact_id == "":
        contact_id = None
    elif contact_id is not None:
        contact_id = f.string("contactId", uuid=True)
    channel = f.string("channel", required=True, min_len=1, max_len=64)
    channel_id = f.string("channelId", required=True, min_len=1, max_len=128)
    content = f.string("content", max_len=100_000)
    bd_account_id = f.string("bdAccountId", nullable=True, uuid=True)
    file_base64 = f.string("fileBase64")
    file_name = f.string("fileName", max_len=512)
    reply_to = f.string("replyToMessageId", nullable=True, max_len=128)
    source = f.string("source", max_len=64)
    idempotency_key = f.string("idempotencyKey", max_len=256)
    username_hint = f.string("usernameHint", nullable=True, min_len=1, max_len=256)
    if not f.issues and not content and not file_base64:
        f.issues.append({"path": "content", "message": "Either content or fileBase64 is required"})
    if f.issues:
        raise SendRejected(400, validation_failed(f.issues), "validation")
    if channel != "telegram":
        raise SendRejected(400, UNSUPPORTED_CHANNEL, "unsupported_channel")
    if not bd_account_id:
        raise SendRejected(400, BD_ACCOUNT_REQUIRED, "bd_account_required")
    assert channel_id is not None
    return SendRequest(
        organization_id=headers.get("x-organization-id") or None,
        user_id=headers.get("x-user-id") or None,
        correlation_id=headers.get("x-correlation-id") or None,
        contact_id=contact_id,
        channel=channel,
        channel_id=channel_id,
        bd_account_id=bd_account_id,
        content=content,
        source=source,
        idempotency_key=idempotency_key,
        username_hint=username_hint,
        reply_to_message_id=reply_to,
        file_name=file_name,
        has_file=bool(file_base64),
    )
