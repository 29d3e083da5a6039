"""What a request may touch (SPEC R-API-4): a live campaign of the caller's organization, else 404; ids in
a body that are rows of that organization, else 400 VALIDATION naming each offending path."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TypeVar

import asyncpg

from campaignsvc.http import identity as ident
from campaignsvc.http.context import services
from campaignsvc.http.errors import validation
from campaignsvc.storage import campaigns as campaigns_db

# The campaign every request starts from, as the use cases look it up (NotFound answers 404).
from campaignsvc.usecases.common import campaign as campaign_or_404

R = TypeVar("R")


async def in_campaign(
    campaign_id: uuid.UUID,
    fn: Callable[[asyncpg.Connection, uuid.UUID], Awaitable[R]],
    *,
    prepare: Callable[[asyncpg.Connection], Awaitable[object]] | None = None,
) -> R:
    """``fn(conn, org)`` in one transaction, once the campaign is found in the caller's organization (404
    otherwise); ``prepare(conn)`` runs first (session settings)."""
    org = ident.current().organization_id

    async def run(conn: asyncpg.Connection) -> R:
        if prepare is not None:
            await prepare(conn)
        await campaign_or_404(conn, org, campaign_id)
        return await fn(conn, org)

    return await services().store.run(run)


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
        raise validation("Referenced records not found", problems)


async def require_contacts(
    conn: asyncpg.Connection,
    org: uuid.UUID,
    ids: Sequence[uuid.UUID],
    *,
    used: Sequence[uuid.UUID] | None = None,
) -> None:
    """400 VALIDATION at ``contactIds.N`` for each id that is not a contact of the organization; with
    ``used`` (the ids the request will act on) only those are checked, still reported at their positions
    in ``ids``."""
    checked = ids if used is None else used
    foreign = (await campaigns_db.foreign_ids(conn, org, {"contacts": checked})).get("contacts", ())
    raise_references(reference_errors(ids, set(foreign), path="contactIds", noun="contact"))
