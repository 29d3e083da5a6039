"""The CRM's Messaging Service: ``POST {MESSAGING_SERVICE_URL}/api/messaging/send`` (original-v1 §5.3).

The one boundary where httpx outcomes become :class:`Delivered` or a classified
:class:`campaignsvc.domain.delivery.Failure`. Nothing is retried here: the caller decides, because only
it knows the ledger state (a timed-out request may have been delivered and must be retried with the
same idempotency key after the quarantine, never at once).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs
import httpx

from campaignsvc.domain.delivery import Failure, classify_response, classify_transport


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


def _transport_kind(exc: httpx.HTTPError) -> str:
    # Only failures that happen before the request reached the server are safe to call "not sent".
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return "connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "reset"
    return "protocol"


def _parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


_REQUEST_WRITTEN = ("http11.send_request_body.complete", "http2.send_request_body.complete")


def _sent_hook(on_sent: Callable[[], None] | None) -> dict[str, Any]:
    """httpcore's trace extension, reduced to the one event that says the request is on the wire."""
    if on_sent is None:
        return {}

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event in _REQUEST_WRITTEN:
            on_sent()

    return {"trace": trace}


class MessagingClient:
    """Sends campaign messages; one pooled HTTP client for the process."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        internal_auth_secret: str | None = None,
        max_connections: int = 500,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"x-internal-auth": internal_auth_secret} if internal_auth_secret else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers=headers,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self, command: SendCommand, *, on_sent: Callable[[], None] | None = None
    ) -> Delivered | Failure:
        """``on_sent`` is called the moment the request has been written to the connection: the instant
        the message left, which an event-loop stall or a new connection can put well after the call began."""
        headers = {
            "x-organization-id": str(command.organization_id),
            "x-correlation-id": command.correlation_id,
        }
        if command.user_id is not None:
            headers["x-user-id"] = str(command.user_id)
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
            response = await self._http.post(
                "/api/messaging/send", json=body, headers=headers, extensions=_sent_hook(on_sent)
            )
        except httpx.HTTPError as exc:
            return classify_transport(_transport_kind(exc))
        if 200 <= response.status_code < 300:
            try:
                row = response.json()
            except ValueError:
                row = {}
            if not isinstance(row, dict):
                row = {}
            channel = row.get("channel_id")
            return Delivered(
                message_id=_parse_uuid(row.get("id")), channel_id=str(channel) if channel else None
            )
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text
        return classify_response(response.status_code, payload)
