"""The CRM's Messaging Service: ``POST {MESSAGING_SERVICE_URL}/api/messaging/send`` (original-v1 §5.3).

The one boundary where HTTP outcomes (integrations/http11.py) become :class:`Delivered` or a classified
:class:`campaignsvc.domain.delivery.Failure`. Nothing is retried here: the caller decides, because only
it knows the ledger state (a timed-out request may have been delivered and must be retried with the
same idempotency key after the quarantine, never at once).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from campaignsvc.config import Settings
from campaignsvc.domain.delivery import Failure, classify_response, classify_transport
from campaignsvc.integrations.http11 import Http11Pool, TransportFailure


@attrs.frozen
class Delivered:
    message_id: uuid.UUID | None
    channel_id: str | None


@attrs.frozen
class SendCommand:
    organization_id: uuid.UUID
    user_id: uuid.UUID | None
    contact_id: uuid.UUID
    bd_account_id: uuid.UUID
    channel_id: str
    content: str
    idempotency_key: str
    correlation_id: str


def _parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


class MessagingClient:
    """Sends campaign messages; one pooled HTTP client for the process."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        internal_auth_secret: str | None = None,
        max_connections: int = 64,
    ) -> None:
        self._auth = [(b"x-internal-auth", internal_auth_secret.encode())] if internal_auth_secret else []
        self._http = Http11Pool(
            base_url.rstrip("/"),
            max_connections=max_connections,
            timeout_s=timeout_s,
            connect_timeout_s=min(timeout_s, 10.0),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> MessagingClient:
        return cls(
            settings.messaging_service_url,
            timeout_s=settings.messaging_timeout_s,
            internal_auth_secret=settings.internal_auth_secret,
            max_connections=settings.messaging_max_connections,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def warm(self) -> None:
        """A connection ready for the next call (integrations/http11.Http11Pool.warm)."""
        await self._http.warm()

    async def send(
        self, command: SendCommand, *, on_sent: Callable[[], None] | None = None
    ) -> Delivered | Failure:
        """``on_sent`` is called the moment the request has been written to the connection: the instant
        the message left, which an event-loop stall or a new connection can put well after the call began."""
        headers = [
            (b"content-type", b"application/json"),
            (b"x-organization-id", str(command.organization_id).encode()),
            (b"x-correlation-id", command.correlation_id.encode()),
            *self._auth,
        ]
        if command.user_id is not None:
            headers.append((b"x-user-id", str(command.user_id).encode()))
        body = {
            "contactId": str(command.contact_id),
            "channel": "telegram",
            "channelId": command.channel_id,
            "content": command.content,
            "bdAccountId": str(command.bd_account_id),
            "source": "campaign",
            "idempotencyKey": command.idempotency_key,
        }
        try:
            response = await self._http.request(
                b"POST", "/api/messaging/send", headers, json.dumps(body).encode(), on_sent=on_sent
            )
        except TransportFailure as exc:
            return classify_transport(exc.kind)
        try:
            payload: Any = json.loads(response.body)
        except ValueError:
            payload = response.body.decode(errors="replace")
        if 200 <= response.status < 300:
            row = payload if isinstance(payload, dict) else {}
            channel = row.get("channel_id")
            return Delivered(
                message_id=_parse_uuid(row.get("id")), channel_id=str(channel) if channel else None
            )
        return classify_response(response.status, payload)
