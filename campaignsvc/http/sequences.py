"""Sequence steps (original-v1 §2.6)."""

from __future__ import annotations

from quart import Blueprint

bp = Blueprint("sequences", __name__, url_prefix="/api/campaigns")
