"""The sandbox's HTTP surface: the Messaging Service's send route and the ``/sandbox/*`` controls.

``POST /api/messaging/send``  — the real contract (original-v1 §5.3)
``GET  /sandbox/received``    — every send request, in order (filters ``bdAccountId``, ``since_seq``)
``GET  /sandbox/events``      — every reply/echo event and its delivery status
``GET  /sandbox/messages``    — the delivered message rows
``GET  /sandbox/stats``       — counts per status, outcome and account
``GET|POST /sandbox/config``  — read, or change with a JSON object of fields
``POST /sandbox/reset``       — forget everything recorded
``GET  /health``
"""

from __future__ import annotations

import hmac
from typing import Any

from quart import Response, jsonify, request
from quart_trio import QuartTrio

from campaignsvc.http import errors
from campaignsvc.http.asgi import HTTPConnection
from campaignsvc.http.jsonenc import JSONProvider
from campaignsvc.sandbox.answers import UNAUTHORIZED
from campaignsvc.sandbox.config import ConfigPatchError
from campaignsvc.sandbox.engine import handle_send
from campaignsvc.sandbox.state import SandboxState
from campaignsvc.sandbox.validation import SendRejected, parse_send

MAX_BODY_BYTES = 64 * 1024 * 1024  # fileBase64 rides in the JSON body
_HEADERS = ("x-organization-id", "x-user-id", "x-correlation-id")


def _answer(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def create_sandbox_app(state: SandboxState) -> QuartTrio:
    """The app over ``state``; sends need the runtime that :func:`run_sandbox` attaches (503 without)."""
    app = QuartTrio("campaignsvc.sandbox")
    app.asgi_http_class = HTTPConnection
    app.json_provider_class = JSONProvider
    app.json = JSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.url_map.strict_slashes = False
    errors.install(app)

    @app.get("/health")
    async def health() -> Response:
        return _answer({"status": "ok", "service": "messaging-sandbox"})

    @app.post("/api/messaging/send")
    async def send() -> Response:
        body = await request.get_json(force=True, silent=True)
        headers = {name: request.headers.get(name, "").strip() for name in _HEADERS}
        ledger = state.ledger
        record = ledger.receive(headers, body, state.wall())
        try:
            secret = state.config.internal_auth_secret
            given = request.headers.get("x-internal-auth", "")
            if secret is not None and not hmac.compare_digest(given.encode(), secret.encode()):
                raise SendRejected(401, UNAUTHORIZED, "unauthorized")
            send_request = parse_send(body, headers)
        except SendRejected as rejected:
            ledger.finish(record, rejected.status, rejected.outcome)
            return _answer(rejected.body, rejected.status)
        status, payload = await handle_send(state, ledger, record, send_request)
        return _answer(payload, status)

    @app.get("/sandbox/received")
    async def received() -> Response:
        try:
            since_seq = int(request.args.get("since_seq", "0"))
        except ValueError:
            raise errors.validation(
                "Validation failed", [{"path": "since_seq", "message": "Expected integer"}]
            ) from None
        account = request.args.get("bdAccountId") or None
        return _answer({"items": state.received_json(bd_account_id=account, since_seq=since_seq)})

    @app.get("/sandbox/events")
    async def events() -> Response:
        return _answer({"items": [e.to_json() for e in state.events]})

    @app.get("/sandbox/messages")
    async def messages() -> Response:
        return _answer({"items": state.messages})

    @app.get("/sandbox/stats")
    async def stats() -> Response:
        return _answer(state.stats())

    @app.get("/sandbox/config")
    async def get_config() -> Response:
        return _answer(state.config.to_json())

    @app.post("/sandbox/config")
    async def patch_config() -> Response:
        patch = await request.get_json(force=True, silent=True)
        if not isinstance(patch, dict):
            raise errors.validation(
                "Validation failed", [{"path": "", "message": "Expected a JSON object of config fields"}]
            )
        try:
            config = state.update_config(patch)
        except ConfigPatchError as exc:
            raise errors.validation("Validation failed", exc.details) from None
        return _answer(config.to_json())

    @app.post("/sandbox/reset")
    async def reset() -> Response:
        state.reset()
        return _answer({"ok": True})

    return app
