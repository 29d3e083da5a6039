"""Per-contact preview of every step and the AI variant stub (SPEC R-API-3)."""

from __future__ import annotations

from quart import Blueprint

bp = Blueprint("preview", __name__, url_prefix="/api/campaigns")
