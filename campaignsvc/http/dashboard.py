"""``GET /dashboard``: the per-account throttling dashboard (SPEC R-UI-1), static files served by the service.

The page is plain HTML, CSS and JavaScript from ``http/static/`` (no build step, nothing fetched from
elsewhere, so it works offline). It polls ``GET /api/campaigns/agents/throttle``, ``GET /api/campaigns``
and each campaign's ``/stats`` every two seconds. Those API calls need the identity headers: behind the
gateway they are added to every call; without it (the demo, a developer's machine) the page takes
``?org=<uuid>`` (and optionally ``&user=<uuid>&role=<role>``) and sends them itself. The page itself
needs no identity; like every route but health/ready/metrics it needs ``X-Internal-Auth`` when
``INTERNAL_AUTH_SECRET`` is set.
"""

from __future__ import annotations

from quart import Blueprint, Response

from campaignsvc.http import pages
from campaignsvc.http.errors import not_found

bp = Blueprint("dashboard", __name__)

_ASSETS = {
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
# Everything the page loads comes from this service; the API calls go to the same origin.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def _asset(name: str) -> Response:
    content_type = _ASSETS.get(name)
    if content_type is None:
        pages.check_access()
        raise not_found("Not found")
    return await pages.serve(pages.static_file(name), content_type, _CSP)


@bp.get("/dashboard")
async def page() -> Response:
    return await _asset("dashboard.html")


@bp.get("/dashboard/<name>")
async def asset(name: str) -> Response:
    return await _asset(name)
