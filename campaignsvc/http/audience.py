"""Audience import: CSV, username lists, participants-bulk (original-v1 §2.4, §4.13)."""

from __future__ import annotations

from quart import Blueprint

bp = Blueprint("audience", __name__, url_prefix="/api/campaigns")
