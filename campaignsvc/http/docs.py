"""``GET /docs``: the interactive API reference, Swagger UI over the service's own ``/openapi.json``.

Swagger UI comes from the ``swagger-ui-bundle-v2`` wheel (its static build, Swagger UI 5, which reads
OpenAPI 3.1) and is served from here, as the page and ``http/static/docs.js`` that starts it: nothing is
loaded from elsewhere, so the page works offline. "Try it out" calls the API from the browser; the
Authorize dialog takes the headers the API reads (the document's security schemes: X-Organization-Id,
X-User-Id, X-User-Role, X-Internal-Auth, X-Events-Ingest-Secret), and ``?org=<uuid>`` (optionally
``&user=<uuid>&role=<role>``) fills them in, as on the dashboard. Every operation carries an example
request and response recorded from the real service (http/examples.json, docs/compat.md).
"""

from __future__ import annotations

from importlib.resources.abc import Traversable

import swagger_ui_bundle
from quart import Blueprint, Response

from campaignsvc.http import pages
from campaignsvc.http.errors import not_found

bp = Blueprint("docs", __name__)

SWAGGER_UI = swagger_ui_bundle.swagger_ui_path
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
_ASSETS: dict[str, tuple[Traversable, str]] = {
    "docs.js": (pages.static_file("docs.js"), _JS),
    "docs.css": (pages.static_file("docs.css"), _CSS),
    "swagger-ui-bundle.js": (SWAGGER_UI / "swagger-ui-bundle.js", _JS),
    "swagger-ui.css": (SWAGGER_UI / "swagger-ui.css", _CSS),
    "favicon-32x32.png": (SWAGGER_UI / "favicon-32x32.png", "image/png"),
}
# As the dashboard's: scripts, styles and images from this service only, API calls to the same origin.
# Swagger UI sets styles through the DOM (allowed) and its icons are data: SVGs.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.get("/docs")
async def page() -> Response:
    return await pages.serve(pages.static_file("docs.html"), "text/html; charset=utf-8", _CSP)


@bp.get("/docs/<name>")
async def asset(name: str) -> Response:
    found = _ASSETS.get(name)
    if found is None:
        pages.check_access()
        raise not_found("Not found")
    file, content_type = found
    return await pages.serve(file, content_type, _CSP)
