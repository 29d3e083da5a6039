"""The quart-trio application: blueprints, JSON, errors, request metrics and logging context."""

from __future__ import annotations

import time
import uuid

import structlog
from quart import Response, g, request
from quart_trio import QuartTrio

from campaignsvc import metrics
from campaignsvc.http import (
    audience,
    campaigns,
    dashboard,
    do_not_contact,
    docs,
    errors,
    events,
    forecast,
    health,
    lifecycle,
    lookups,
    openapi,
    preflight,
    preview,
    ramp,
    reporting,
    sequences,
    templates,
    throttle,
    variants,
)
from campaignsvc.http.asgi import HTTPConnection
from campaignsvc.http.context import Services
from campaignsvc.http.jsonenc import JSONProvider

MAX_BODY_BYTES = 6 * 1024 * 1024  # the CSV import accepts 5,000,000 characters of content


def create_app(svc: Services) -> QuartTrio:
    app = QuartTrio("campaignsvc")
    app.asgi_http_class = HTTPConnection
    app.json_provider_class = JSONProvider
    app.json = JSONProvider(app)
    app.config["SERVICES"] = svc
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.url_map.strict_slashes = False

    errors.install(app)
    # werkzeug ranks static segments (/agents, /presets) above variables (/<id>): order does not matter.
    blueprints = (
        health,
        openapi,
        campaigns,
        lifecycle,
        templates,
        sequences,
        variants,
        lookups,
        audience,
        reporting,
        do_not_contact,
        forecast,
        preflight,
        preview,
        events,
        throttle,
        ramp,
        dashboard,
        docs,
    )
    for module in blueprints:
        app.register_blueprint(module.bp)

    @app.before_request
    async def _begin() -> None:
        g.started = time.perf_counter()
        correlation = request.headers.get("X-Correlation-Id") or str(uuid.uuid4())
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation[:128])

    @app.after_request
    async def _finish(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        metrics.HTTP_DURATION.labels(request.method, route).observe(elapsed)
        return response

    return app
