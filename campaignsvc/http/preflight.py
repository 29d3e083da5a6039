"""``GET /api/campaigns/:id/preflight``: whether a campaign is ready to launch (usecases/preflight.py).
Viewers may read it; 404 "Campaign not found" for a campaign that is missing, of another organization
or deleted."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from quart import Blueprint

from campaignsvc.domain.preflight import Report
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.models.preflight import Preflight
from campaignsvc.http.presenters import account_display_name
from campaignsvc.usecases import preflight as uc
from campaignsvc.usecases.common import Context

bp = Blueprint("preflight", __name__, url_prefix="/api/campaigns")


def body(report: Report) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "checks": [
            {
                "code": c.code,
                "severity": c.severity,
                "count": c.count,
                "message": c.message,
                "sample": list(c.sample),
            }
            for c in report.checks
        ],
    }


@endpoint(
    bp,
    "GET",
    "/<id>/preflight",
    summary="Whether the campaign is ready to launch: every pre-launch check with what fails",
    response=Preflight,
    errors=(404,),
)
async def preflight(id: uuid.UUID) -> dict[str, Any]:
    org = ident.current().organization_id
    ctx = Context.current(services().settings)

    async def run(conn: asyncpg.Connection) -> Report:
        # One snapshot for every read; reports' short scans cost less without JIT (as storage/reporting.tune).
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        await conn.execute("SET LOCAL jit = off")
        return await uc.preflight(conn, org, id, ctx, account_name=account_display_name)

    return body(await services().store.run(run))
