"""Simulated replies and echoes: ``message.received`` events (original-v1 §5.1, §5.2), scheduled in the
sandbox's nursery and delivered to RabbitMQ or over HTTP, with retries.

Targets, read again at every attempt so a runtime config change applies to events already waiting:
RabbitMQ when ``rabbitmq_url`` is set (exchange ``rabbitmq_exchange``, routing key = event type); else
``POST {events_url}/api/campaigns/events`` with ``X-Organization-Id`` (and ``X-Internal-Auth`` /
``X-Events-Ingest-Secret`` when those secrets are configured; never ``X-User-Id``); else nowhere (the event is still recorded, as ``skipped``).
A delivery that keeps failing is logged and recorded as ``failed``; it never stops the sandbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import httpx
import trio

from campaignsvc.http.jsonenc import dumps, iso
from campaignsvc.logs import get_logger
from campaignsvc.sandbox.publisher import EventDeliveryFailed, EventPublisher
from campaignsvc.sandbox.records import EventRecord, SendRequest
from campaignsvc.sandbox.state import Ledger, SandboxState

log = get_logger(__name__)

EVENT_TYPE = "message.received"
_MAX_BACKOFF_S = 30.0


class EventDispatcher:
    def __init__(
        self, state: SandboxState, nursery: trio.Nursery, http: httpx.AsyncClient, publisher: EventPublisher
    ) -> None:
        self._state = state
        self._nursery = nursery
        self._http = http
        self._publisher = publisher

    def after_delivery(self, ledger: Ledger, request: SendRequest, row: dict[str, Any]) -> None:
        """A message was delivered: maybe echo it back at once, maybe schedule its recipient's reply."""
        state = self._state
        if state.wants_echo():
            echo = self._envelope(
                request,
                message_id=row["id"],
                content=row["content"],
                direction="outbound",
                telegram_message_id=row["telegram_message_id"],
            )
            self.schedule(ledger, "echo", echo, 0.0)
        recipient = (request.bd_account_id, request.channel_id)
        if recipient in ledger.replied:
            return
        delay = state.reply_delay(request.channel_id)
        if delay is None:
            return
        ledger.replied.add(recipient)
        reply = self._envelope(
            request,
            message_id=state.new_id(),
            content=state.config.reply_text,
            direction="inbound",
            telegram_message_id=state.next_telegram_id(request.bd_account_id),
        )
        self.schedule(ledger, "reply", reply, delay)

    def schedule(self, ledger: Ledger, kind: str, envelope: dict[str, Any], delay_s: float) -> EventRecord:
        record = ledger.add_event(kind, envelope, self._state.clock() + delay_s)
        self._nursery.start_soon(self._deliver_guarded, ledger, record, delay_s)
        return record

    async def _deliver_guarded(self, ledger: Ledger, record: EventRecord, delay_s: float) -> None:
        try:
            await self._deliver_later(ledger, record, delay_s)
        except Exception as exc:
            # Delivery is best effort: an unexpected error loses this event, never the sandbox.
            record.status, record.last_error = "failed", f"{type(exc).__name__}: {exc}"
            ledger.event_changed()
            log.exception("sandbox.event_delivery_error", event_id=record.envelope["id"])

    def _envelope(
        self, request: SendRequest, *, message_id: str, content: str, direction: str, telegram_message_id: str
    ) -> dict[str, Any]:
        # Timestamps are set when the event is due, as the real producer stamps it when it sees the message.
        return {
            "id": self._state.new_id(),
            "type": EVENT_TYPE,
            "timestamp": None,
            "organizationId": request.organization_id,
            "data": {
                "messageId": message_id,
                "channel": "telegram",
                "channelId": request.channel_id,
                "contactId": request.contact_id,
                "bdAccountId": request.bd_account_id,
                "content": content,
                "direction": direction,
                "telegramMessageId": telegram_message_id,
                "createdAt": None,
            },
        }

    async def _deliver_later(self, ledger: Ledger, record: EventRecord, delay_s: float) -> None:
        await trio.sleep(delay_s)
        now = iso(self._state.wall())
        record.envelope["timestamp"] = now
        record.envelope["data"]["createdAt"] = now
        attempt = 0
        while True:
            if self._state.ledger is not ledger:
                record.status = "dropped"  # the sandbox was reset meanwhile
                return
            config = self._state.config
            target = self._target(record.envelope)
            if target is None:
                record.status, record.target = "skipped", None
                ledger.event_changed()
                return
            record.target, send = target
            attempt += 1
            record.attempts = attempt
            try:
                with trio.fail_after(config.delivery_timeout_s):
                    await send()
            except (EventDeliveryFailed, trio.TooSlowError) as exc:
                retryable = getattr(exc, "retryable", True)
                record.last_error = str(exc) or type(exc).__name__
                log.warning(
                    "sandbox.event_delivery_failed",
                    event_id=record.envelope["id"],
                    target=record.target,
                    attempt=attempt,
                    error=record.last_error,
                )
                if not retryable or attempt >= config.delivery_attempts:
                    break
                await trio.sleep(min(config.delivery_backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            else:
                record.status, record.delivered_at, record.last_error = "delivered", self._state.wall(), None
                ledger.event_changed()
                return
        record.status = "failed"
        ledger.event_changed()
        log.error(
            "sandbox.event_dropped",
            event_id=record.envelope["id"],
            kind=record.kind,
            target=record.target,
            attempts=attempt,
            error=record.last_error,
        )

    def _target(self, envelope: dict[str, Any]) -> tuple[str, Callable[[], Awaitable[None]]] | None:
        config = self._state.config
        if config.rabbitmq_url is not None:
            publish = partial(
                self._publisher.publish, config.rabbitmq_url, config.rabbitmq_exchange, envelope
            )
            return "rabbitmq", publish
        if config.events_url is not None:
            url = config.events_url.rstrip("/") + "/api/campaigns/events"
            return "http", partial(
                self._post, url, envelope, config.internal_auth_secret, config.events_ingest_secret
            )
        return None

    async def _post(
        self, url: str, envelope: dict[str, Any], secret: str | None, ingest_secret: str | None
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if envelope["organizationId"]:
            headers["X-Organization-Id"] = envelope["organizationId"]
        if secret is not None:
            headers["X-Internal-Auth"] = secret
        if ingest_secret is not None:
            headers["X-Events-Ingest-Secret"] = ingest_secret
        try:
            response = await self._http.post(url, content=dumps(envelope), headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise EventDeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            retryable = response.status_code >= 500 or response.status_code in (408, 429)
            raise EventDeliveryFailed(f"HTTP {response.status_code}", retryable=retryable)
