"""What a request may touch (SPEC R-API-4): a live campaign of the caller's organization, else 404; ids in
a body that are rows of that organization, else 400 VALIDATION naming each offending path."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from campaignsvc.http import identity as ident
from campaignsvc.http.context import services

# The campaign every request starts from, as the use cases look it up (NotFound answers 404), and the
# references a body may hold (Invalid answers 400 VALIDATION naming each offending path).
from campaignsvc.usecases.common import campaign as campaign_or_404
from campaignsvc.usecases.common import raise_references, reference_errors, require_contacts

__all__ = ["campaign_or_404", "in_campaign", "raise_references", "reference_errors", "require_contacts"]

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
