"""Templates and org-level presets (original-v1 §2.4 presets, §2.5)."""

from __future__ import annotations

from quart import Blueprint

bp = Blueprint("templates", __name__, url_prefix="/api/campaigns")
