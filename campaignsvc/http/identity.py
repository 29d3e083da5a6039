"""Who is calling: the gateway headers, the internal secret and the role rules (SPEC R-API-4).

The gateway authenticates users and passes ``X-User-Id``, ``X-Organization-Id`` and ``X-User-Role``;
when ``INTERNAL_AUTH_SECRET`` is set, ``X-Internal-Auth`` must equal it, so only the gateway and peer
services can reach the API.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Protocol

import attrs
from quart import g

from campaignsvc.http.errors import ApiError, forbidden, unauthorized

ROLES = ("owner", "admin", "supervisor", "bidi", "viewer")
# A caller without a role (a peer service) gets the agent's rights: it may write, but lifecycle actions
# on campaigns it did not create need owner/admin.
DEFAULT_ROLE = "bidi"


@attrs.frozen
class Identity:
    organization_id: uuid.UUID
    user_id: uuid.UUID | None
    role: str

    @property
    def read_only(self) -> bool:
        return self.role == "viewer"

    def may_manage(self, created_by_user_id: uuid.UUID | None) -> bool:
        """Lifecycle actions (delete, duplicate, rename, reset): owner/admin, or the campaign's creator."""
        if self.role in ("owner", "admin"):
            return True
        return self.user_id is not None and created_by_user_id == self.user_id

    def require_manage(self, created_by_user_id: uuid.UUID | None) -> None:
        if not self.may_manage(created_by_user_id):
            raise forbidden("Insufficient permissions")

    @property
    def account_scope(self) -> str:
        """Which BD accounts this caller sees: 'none' (viewer), 'own' (agent), 'all'."""
        if self.role == "viewer":
            return "none"
        if self.role == "bidi":
            return "own"
        return "all"


class HeaderMap(Protocol):
    """Request headers (quart's ``Headers``, or any mapping of names to values)."""

    def get(self, key: str, default: str) -> str: ...


def check_secret(headers: HeaderMap, name: str, secret: str, message: str) -> None:
    """Header ``name`` must carry ``secret`` (compared in constant time), else 401 with ``message``."""
    given = headers.get(name, "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise unauthorized(message)


def check_internal_auth(headers: HeaderMap, secret: str | None) -> None:
    if secret is not None:
        check_secret(headers, "X-Internal-Auth", secret, "Missing or invalid internal authentication")


def _uuid_header(headers: HeaderMap, name: str) -> uuid.UUID | None:
    raw = headers.get(name, "").strip()
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise unauthorized(f"{name} must be a UUID") from None


def identify(headers: HeaderMap) -> Identity:
    organization_id = _uuid_header(headers, "X-Organization-Id")
    if organization_id is None:
        raise unauthorized("X-Organization-Id is required")
    user_id = _uuid_header(headers, "X-User-Id")
    role = headers.get("X-User-Role", "").strip().lower() or DEFAULT_ROLE
    if role not in ROLES:
        raise unauthorized(f"X-User-Role must be one of {', '.join(ROLES)}")
    return Identity(organization_id=organization_id, user_id=user_id, role=role)


def current() -> Identity:
    """The identity of the request being handled (set by the endpoint wrapper)."""
    identity = g.get("identity")
    if identity is None:  # an endpoint declared auth="internal" asked for a tenant identity
        raise ApiError(500, "INTERNAL_ERROR", "No caller identity for this endpoint")
    return identity


def require_write(identity: Identity) -> None:
    if identity.read_only:
        raise forbidden("Viewers have read-only access")
