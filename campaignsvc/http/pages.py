"""The service's own pages (``/dashboard``, ``/docs``): static files with the headers every page gets.

Each page has its own Content-Security-Policy, set on its HTML and files only; API responses are JSON and
carry none. Like every route but health/ready/metrics, a page needs ``X-Internal-Auth`` when
``INTERNAL_AUTH_SECRET`` is set.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from importlib.resources.abc import Traversable

from quart import Response, request

from campaignsvc.http import identity as ident
from campaignsvc.http.context import services

_READ: dict[str, tuple[bytes, str]] = {}


def read(file: Traversable) -> tuple[bytes, str]:
    """A packaged file's bytes and their ETag, read once (the files ship with the installed packages)."""
    key = str(file)
    if key not in _READ:
        body = file.read_bytes()
        _READ[key] = body, hashlib.sha256(body).hexdigest()[:32]
    return _READ[key]


def static_file(name: str) -> Traversable:
    return resources.files("campaignsvc.http").joinpath("static", name)


def check_access() -> None:
    ident.check_internal_auth(request.headers, services().settings.internal_auth_secret)


async def serve(file: Traversable, content_type: str, csp: str) -> Response:
    """``file`` with its ETag (a repeated request revalidates and gets a 304), ``no-cache`` and ``csp``."""
    check_access()
    body, etag = read(file)
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = csp
    response.set_etag(etag)
    return await response.make_conditional(request)
