"""``/health``, ``/ready`` and ``/metrics`` — open without gateway headers or internal auth."""

from __future__ import annotations

from typing import Any, Literal

import trio
from pydantic import BaseModel, Field
from quart import Blueprint, Response, jsonify

from campaignsvc import SERVICE_NAME, metrics
from campaignsvc.errors import StorageError
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import Services, services

bp = Blueprint("health", __name__)
TAGS = ("service",)


class Checks(BaseModel):
    db: Literal["ok", "error"]
    rabbitmq: Literal["ok", "disconnected", "not_configured"]
    supervisor: str = Field(description="The dispatcher's state: starting, running, stopping, …")
    instance: str = Field(description="This instance's id (INSTANCE_ID)")
    leases: Literal["ok", "expired"] = Field(
        description="ok: this instance's account leases are surely its own (its heartbeat is on time); "
        "expired: it sends nothing until a heartbeat succeeds"
    )
    accountsHeld: int = Field(description="BD accounts this instance holds the lease of")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    service: str
    checks: Checks


class Ready(BaseModel):
    ready: bool
    service: str
    checks: Checks


_DB_CHECK_TIMEOUT_S = 2.0


async def _checks(svc: Services) -> dict[str, Any]:
    db = "error"
    with trio.move_on_after(_DB_CHECK_TIMEOUT_S):
        try:
            if await svc.store.ping():
                db = "ok"
        except StorageError:
            db = "error"
    leases = svc.supervisor.leases
    return {
        "db": db,
        "rabbitmq": svc.amqp_state(),
        "supervisor": svc.supervisor.state,
        "instance": leases.instance,
        "leases": "ok" if leases.healthy else "expired",
        "accountsHeld": len(leases.held),
    }


def _answer(body: dict[str, Any], ok: bool) -> Response:
    response = jsonify(body)
    response.status_code = 200 if ok else 503
    return response


@endpoint(
    bp,
    "GET",
    "/health",
    summary="Liveness: 503 when the database does not answer; a lost broker is only 'degraded'",
    tags=TAGS,
    response=Health,
    errors=(503,),
    error_schemas={503: Health},
    auth="public",
)
async def health() -> Response:
    checks = await _checks(services())
    # The service keeps working with RabbitMQ down (events wait in the outbox), so only the database makes
    # it unhealthy; a lost broker still shows as "degraded".
    healthy = checks["db"] == "ok"
    ok = healthy and checks["rabbitmq"] in ("ok", "not_configured")
    body = {"status": "ok" if ok else "degraded", "service": SERVICE_NAME, "checks": checks}
    return _answer(body, healthy)


@endpoint(
    bp,
    "GET",
    "/ready",
    summary="Readiness: the database answers and the dispatcher runs",
    tags=TAGS,
    response=Ready,
    errors=(503,),
    error_schemas={503: Ready},
    auth="public",
)
async def ready() -> Response:
    svc = services()
    checks = await _checks(svc)
    is_ready = checks["db"] == "ok" and checks["supervisor"] == "running"
    body = {"ready": is_ready, "service": SERVICE_NAME, "checks": checks}
    return _answer(body, is_ready)


@endpoint(
    bp,
    "GET",
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    tags=TAGS,
    response={"type": "string"},
    content_type="text/plain",
    auth="public",
)
async def prometheus() -> Response:
    payload, content_type = metrics.render()
    return Response(payload, content_type=content_type)
