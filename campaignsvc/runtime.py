"""The composition root: the service's long-lived objects, built one way — for ``campaignsvc serve``
(campaignsvc/app.py), the tests and the benchmarks — each adding only what it replaces.

Wiring is by the control bus: whoever changes state publishes a message after the commit, whoever cares
subscribes (supervisor: campaign and account changes; lead creator: leads owed). Outbox rows wake the relay
through PostgreSQL itself (storage/notifications.py), so no writer has to remember to.
"""

from __future__ import annotations

import functools
import random

import attrs
import trio
from quart_trio import QuartTrio

from campaignsvc.actors.bus import Bus
from campaignsvc.actors.clock import Clock
from campaignsvc.actors.leads import LeadCreator
from campaignsvc.actors.read_receipts import ReadReceipts
from campaignsvc.actors.supervision import supervise as supervise_actor
from campaignsvc.actors.supervisor import Supervisor
from campaignsvc.config import Settings
from campaignsvc.http.app import create_app
from campaignsvc.http.context import Services
from campaignsvc.integrations.messaging import MessagingClient
from campaignsvc.integrations.pipeline import PipelineClient
from campaignsvc.storage.store import Store
from campaignsvc.usecases.inbound import InboundHandler


@attrs.define
class Runtime:
    settings: Settings
    store: Store
    bus: Bus
    supervisor: Supervisor
    inbound: InboundHandler
    leads: LeadCreator | None
    read_receipts: ReadReceipts
    services: Services  # what HTTP handlers reach

    async def start(self, nursery: trio.Nursery, *, supervise: bool = True) -> None:
        """Start the actors in ``nursery`` and return once they are ready. Without ``supervise`` the
        supervisor does not run: control messages wait on the bus (benchmarks that only seed)."""
        await nursery.start(self.services.snapshots.run)
        if supervise:
            await nursery.start(self.supervisor.run)
        if self.leads is not None:
            await nursery.start(self.leads.run)
        if supervise:
            # Isolated like every actor: a crash of its round is logged, counted and run again.
            await nursery.start(
                functools.partial(supervise_actor, "read_receipts", {}, self.read_receipts.run)
            )

    def app(self) -> QuartTrio:
        """The HTTP application (quart-trio) over these objects."""
        return create_app(self.services)


def build(
    settings: Settings,
    store: Store,
    *,
    messaging: MessagingClient | None = None,
    pipeline: PipelineClient | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Runtime:
    """Everything but the transports around it (HTTP server, broker). ``pipeline``: leads are created
    through it (none without). ``messaging``: the Messaging client (one from the settings without)."""
    bus = Bus()
    supervisor = Supervisor(store, settings, messaging=messaging, clock=clock, bus=bus, rng=rng)
    inbound = InboundHandler(store, settings, bus=bus)
    leads = LeadCreator(store, pipeline, bus=bus) if pipeline is not None else None
    read_receipts = ReadReceipts(store, interval_s=settings.read_sync_interval_s)
    services = Services(settings=settings, store=store, supervisor=supervisor, inbound=inbound, bus=bus)
    return Runtime(settings, store, bus, supervisor, inbound, leads, read_receipts, services)
