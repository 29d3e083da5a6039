"""Why a use case refused, without HTTP in it (http/errors.py maps each kind to its status)."""

from __future__ import annotations

from typing import Any

from campaignsvc.errors import CampaignsvcError


class Refused(CampaignsvcError):
    """The request cannot be done as asked; ``details`` (optional) says where."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(Refused):
    """The campaign (or what the request names) is missing, of another organization, or deleted."""


class Invalid(Refused):
    """The campaign or the request is not fit for it (no steps, no account, nobody to send to)."""


class WrongState(Refused):
    """Not from the campaign's current state (starting an active campaign)."""


class Conflict(Refused):
    """Not now: the campaign's state or unfinished work stands in the way."""
