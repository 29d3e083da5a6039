"""Reporting: stats, participant accounts, analytics, participants, sends, export (original-v1 §2.8)."""

from __future__ import annotations

from quart import Blueprint

bp = Blueprint("reporting", __name__, url_prefix="/api/campaigns")
