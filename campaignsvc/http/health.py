"""``/health``, ``/ready`` and ``/metrics`` — open without gateway headers or internal auth."""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response, jsonify

from campaignsvc import SERVICE_NAME, metrics
from campaignsvc.errors import StorageError
from campaignsvc.http.context import Services, services

bp = Blueprint("health", __name__)

_DB_CHECK_TIMEOUT_S = 2.0


async def _checks(svc: Services) -> dict[str, Any]:
    db = "error"
    with trio.move_on_after(_DB_CHECK_TIMEOUT_S):
        try:
            if await svc.store.fetchval("SELECT 1") == 1:
                db = "ok"
        except StorageError:
            db = "error"
    return {"db": db, "rabbitmq": svc.amqp_state(), "supervisor": svc.supervisor.state}


@bp.get("/health")
async def health() -> tuple[Response, int]:
    checks = await _checks(services())
    # The service keeps working with RabbitMQ down (events wait in the outbox), so only the database makes
    # it unhealthy; a lost broker still shows as "degraded".
    healthy = checks["db"] == "ok"
    ok = healthy and checks["rabbitmq"] in ("ok", "not_configured")
    body = {"status": "ok" if ok else "degraded", "service": SERVICE_NAME, "checks": checks}
    return jsonify(body), 200 if healthy else 503


@bp.get("/ready")
async def ready() -> tuple[Response, int]:
    svc = services()
    checks = await _checks(svc)
    is_ready = checks["db"] == "ok" and checks["supervisor"] == "running"
    body = {"ready": is_ready, "service": SERVICE_NAME, "checks": checks}
    return jsonify(body), 200 if is_ready else 503


@bp.get("/metrics")
async def prometheus() -> Response:
    payload, content_type = metrics.render()
    return Response(payload, content_type=content_type)
