"""When a campaign will finish: GET /:id/forecast (docs/visibility.md). 404 "Campaign not found" for a
campaign that is missing, of another organization or deleted; viewers may read it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import trio
from quart import Blueprint

from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.models.forecast import Forecast, ForecastQuery, forecast_body
from campaignsvc.usecases import forecast as usecase

bp = Blueprint("forecast", __name__, url_prefix="/api/campaigns")


@endpoint(
    bp,
    "GET",
    "/<id>/forecast",
    summary="When the campaign will finish: its remaining sends simulated with the pacing rules",
    query=ForecastQuery,
    response=Forecast,
    errors=(404,),
)
async def forecast(id: uuid.UUID, query: ForecastQuery) -> dict[str, Any]:
    svc = services()
    org = ident.current().organization_id
    now = dt.datetime.now(dt.UTC)

    async def read(conn: asyncpg.Connection) -> usecase.Prepared:
        return await usecase.prepare(
            conn, org, id, now=now, settings=svc.settings, extra_accounts=query.extraAccounts
        )

    prepared = await svc.store.run(read)
    # The simulation is CPU work: in a thread, so the dispatcher's timers keep their time meanwhile.
    return forecast_body(await trio.to_thread.run_sync(prepared.compute))
