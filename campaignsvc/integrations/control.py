"""The control bus between instances: control messages published here reach the other instances on the
same database through PostgreSQL's LISTEN/NOTIFY, and theirs reach this one (R-OPS-5).

Any instance takes any HTTP call or broker event; the change it makes is committed first, and the message
that says "look again" (actors/messages.py) then goes to every instance, so the one holding the account
or running the campaign acts at once. A notification can be missed (a listener reconnecting): the
database stays the truth and each instance catches up periodically — the reconciler syncs its campaign
actors with the campaigns that are active, and limiters re-read changed accounts (actors/reconciler.py).
"""

from __future__ import annotations

import json
import uuid
from functools import partial
from typing import Any

import trio

from campaignsvc.actors.bus import Bus
from campaignsvc.actors.messages import (
    AccountChanged,
    CampaignActivated,
    CampaignDeactivated,
    ControlMessage,
    ParticipantsChanged,
)
from campaignsvc.errors import StorageError
from campaignsvc.logs import get_logger
from campaignsvc.storage import notifications
from campaignsvc.storage.store import Store

log = get_logger(__name__)

# What crosses instances, by its name on the wire; each carries one id.
KINDS: dict[str, tuple[type, str]] = {
    "campaign.activated": (CampaignActivated, "campaign_id"),
    "campaign.deactivated": (CampaignDeactivated, "campaign_id"),
    "participants.changed": (ParticipantsChanged, "campaign_id"),
    "account.changed": (AccountChanged, "bd_account_id"),
}
_NAMES = {cls: (name, field) for name, (cls, field) in KINDS.items()}


def encode(message: ControlMessage, origin: uuid.UUID) -> str | None:
    known = _NAMES.get(type(message))
    if known is None:
        return None
    name, field = known
    return json.dumps({"k": name, "id": str(getattr(message, field)), "o": str(origin)})


def decode(payload: str, origin: uuid.UUID) -> ControlMessage | None:
    """The message in a notification, or None for this instance's own (or one it cannot read)."""
    try:
        data: dict[str, Any] = json.loads(payload)
        if data.get("o") == str(origin):
            return None
        cls, field = KINDS[data["k"]]
        message: ControlMessage = cls(**{field: uuid.UUID(data["id"])})
        return message
    except (ValueError, KeyError, TypeError):
        log.warning("control.unreadable_notification", payload=payload[:200])
        return None


class ControlRelay:
    """Forwards this instance's control messages to the others, and theirs to this instance's bus."""

    def __init__(self, store: Store, dsn: str, bus: Bus, origin: uuid.UUID) -> None:
        self._store = store
        self._dsn = dsn
        self._bus = bus
        self._origin = origin
        self._inbox = bus.subscribe(*(cls for cls, _ in KINDS.values()))
        self._remote: set[int] = set()  # ids of the messages this relay published from elsewhere
        self.sent = 0
        self.received = 0

    def _heard(self, payload: str) -> None:
        message = decode(payload, self._origin)
        if message is not None:
            self.received += 1
            self._remote.add(id(message))
            self._bus.publish(message)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    notifications.listen,
                    self._dsn,
                    notifications.CONTROL,
                    lambda: None,
                    on_payload=self._heard,
                )
            )
            task_status.started()
            async for message in self._inbox:
                if id(message) in self._remote:
                    self._remote.discard(id(message))
                    continue
                payload = encode(message, self._origin)
                if payload is None:
                    continue
                try:
                    await self._store.run(
                        notifications.notify, notifications.CONTROL, payload, transaction=False
                    )
                    self.sent += 1
                except StorageError as exc:
                    # The others catch up from the database (the reconciler's sync, account re-reads).
                    log.warning("control.notify_failed", error=str(exc), kind=type(message).__name__)
