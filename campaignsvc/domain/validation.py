"""Field errors and the small value checks every domain validator shares.

Validators return ``list[FieldError]`` (empty = valid) so the HTTP layer can report every problem of a
body at once; parsers that need a single answer raise a :class:`DomainInputError` instead.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from typing import Any
from uuid import UUID

import attrs

from campaignsvc.errors import CampaignsvcError


@attrs.frozen
class FieldError:
    """One problem with one input value; ``path`` is dotted (``conditions.contact.0.op``)."""

    path: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class DomainInputError(CampaignsvcError):
    """A schedule, template or other definition given by a user is invalid; ``field_errors()`` says
    where, for the 400 response. Subclasses that know the field name it; by default the error stands
    for the whole input."""

    def field_errors(self) -> list[FieldError]:
        return [FieldError("", str(self))]


def join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def is_int(value: Any) -> bool:
    """True for JSON integers (``bool`` is an ``int`` subclass in Python but not a number in JSON)."""
    return isinstance(value, int) and not isinstance(value, bool)


_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_uuid(value: Any) -> UUID | None:
    """The UUID in canonical 8-4-4-4-12 text form, else None (no braces, ``urn:``, or bare hex)."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return UUID(value)
    return None


# Names that exist in a system zoneinfo folder but are not IANA zones a user can mean.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules", "posix", "right"})


@functools.cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones() if name not in _NOT_ZONES}


def parse_zone(value: Any) -> zoneinfo.ZoneInfo | None:
    """The IANA zone named by ``value`` (case-insensitive: ``europe/berlin`` is ``Europe/Berlin``),
    else None."""
    if not isinstance(value, str):
        return None
    name = _zone_names().get(value.strip().lower())
    return zoneinfo.ZoneInfo(name) if name is not None else None
