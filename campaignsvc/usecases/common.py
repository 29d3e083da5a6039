"""What every use case shares: who asks, what it returns, the campaign it works on."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Collection, Sequence
from typing import Generic, TypeVar

import asyncpg
import attrs

from campaignsvc.actors.messages import ControlMessage
from campaignsvc.config import Settings
from campaignsvc.storage import campaigns as campaigns_db
from campaignsvc.storage import outbox
from campaignsvc.usecases.errors import Invalid, NotFound

T = TypeVar("T")

CAMPAIGN_NOT_FOUND = "Campaign not found"


@attrs.frozen
class Caller:
    organization_id: uuid.UUID
    user_id: uuid.UUID | None


@attrs.frozen
class Context:
    """What a use case reads besides the database: the settings, the time, randomness (spreads)."""

    settings: Settings
    now: dt.datetime
    rng: random.Random

    @classmethod
    def current(cls, settings: Settings) -> Context:
        return cls(settings, dt.datetime.now(dt.UTC), random.Random())


@attrs.frozen
class Result(Generic[T]):
    """A use case's answer, and the messages to publish once its transaction has committed."""

    value: T
    messages: tuple[ControlMessage, ...] = ()


async def campaign(
    conn: asyncpg.Connection, org: uuid.UUID, campaign_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record:
    """The campaign row (locked until the transaction ends with ``lock``); NotFound when it is missing,
    of another organization or soft-deleted."""
    fetch = campaigns_db.get_for_update if lock else campaigns_db.get
    row = await fetch(conn, org, campaign_id)
    if row is None:
        raise NotFound(CAMPAIGN_NOT_FOUND)
    return row


async def record_event(
    conn: asyncpg.Connection, caller: Caller, event_type: str, campaign_id: uuid.UUID
) -> None:
    """The campaign's lifecycle event, in the outbox, in the change's transaction."""
    await outbox.enqueue(
        conn,
        event_type=event_type,
        organization_id=caller.organization_id,
        user_id=caller.user_id,
        data={"campaignId": str(campaign_id)},
    )


def reference_errors(
    ids: Sequence[uuid.UUID], unknown: Collection[uuid.UUID], *, path: str, noun: str
) -> list[dict[str, str]]:
    """One problem per position of ``ids`` holding an id of ``unknown``."""
    return [
        {"path": f"{path}.{i}", "message": f"{noun} not found in this organization"}
        for i, value in enumerate(ids)
        if value in unknown
    ]


def raise_references(problems: list[dict[str, str]]) -> None:
    if problems:
        raise Invalid("Referenced records not found", problems)


async def require_contacts(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    ids: Sequence[uuid.UUID],
    *,
    used: Sequence[uuid.UUID] | None = None,
) -> None:
    """Invalid at ``contactIds.N`` for each id that is not a contact of the organization; with ``used``
    (the ids the request will act on) only those are checked, still reported at their positions in
    ``ids``."""
    checked = ids if used is None else used
    foreign = (await campaigns_db.foreign_ids(conn, org, {"contacts": checked})).get("contacts", ())
    raise_references(reference_errors(ids, set(foreign), path="contactIds", noun="contact"))
