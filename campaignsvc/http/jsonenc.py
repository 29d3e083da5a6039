"""JSON the way the original service's clients read it (original-v1 §2.1 "Serialization").

``timestamptz`` → ISO-8601 in UTC with milliseconds and ``Z``; ``date`` → that day's UTC midnight in the same
form (node-pg turned dates into midnight timestamps); ``numeric`` → string (node-pg's default; handlers
that promise a number convert explicitly); UUID → string.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

from quart.json.provider import DefaultJSONProvider


def iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, dt.date):
        return f"{value.isoformat()}T00:00:00.000Z"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    return json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False)


class JSONProvider(DefaultJSONProvider):
    default = staticmethod(default)
    sort_keys = False
    ensure_ascii = False
    compact = True
