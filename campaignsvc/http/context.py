"""What request handlers can reach: the runtime's long-lived objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
from quart import current_app

from campaignsvc.actors.snapshots import Snapshots
from campaignsvc.config import Settings
from campaignsvc.storage.store import Store

if TYPE_CHECKING:
    from campaignsvc.actors.bus import Bus
    from campaignsvc.actors.supervisor import Supervisor
    from campaignsvc.usecases.inbound import InboundHandler


@attrs.define
class Services:
    settings: Settings
    store: Store
    supervisor: Supervisor
    inbound: InboundHandler
    # Control messages to the actors, published after the commit whose change they announce.
    bus: Bus
    # Costly reporting values (the waiting counts of a large campaign), kept and refreshed in the background.
    snapshots: Snapshots = attrs.field(factory=Snapshots)
    # Reports the broker connection for /health: "not_configured", "ok" or "disconnected".
    amqp_state: Callable[[], str] = attrs.field(default=lambda: "not_configured")


def services() -> Services:
    return current_app.config["SERVICES"]
