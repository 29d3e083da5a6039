"""Lookups: agents, group sources, Telegram sources, contact picker, audience conflicts (original-v1 §2.4)."""

from __future__ import annotations

from quart import Blueprint

bp = Blueprint("lookups", __name__, url_prefix="/api/campaigns")
