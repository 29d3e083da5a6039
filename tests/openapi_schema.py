"""Checking values against the schemas of ``/openapi.json``: JSON Schema 2020-12, the API's formats checked,
and no field the document does not describe. Used by the conformance run (real responses) and the example
test (the recorded examples of http/examples.json)."""

from __future__ import annotations

import copy
import datetime as dt
import re
import uuid
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

# The API's timestamps: UTC, milliseconds, Z (original-v1 §2.1).
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _TIMESTAMP.match(value):
        raise ValueError(f"{value!r} is not YYYY-MM-DDTHH:MM:SS.mmmZ")
    dt.datetime.fromisoformat(value)
    return True


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    if isinstance(value, str):
        uuid.UUID(value)
    return True


def closed(node: Any) -> Any:
    """Every object schema that lists its properties and says nothing of others gets
    ``additionalProperties: false``: a field the document does not describe fails the check."""
    if isinstance(node, dict):
        out = {key: closed(value) for key, value in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [closed(item) for item in node]
    return node


class SchemaCheck:
    """Validates values against schemas of one document (their ``$ref``s resolved in its components)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components = closed(copy.deepcopy(document["components"]))

    def errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        validator = Draft202012Validator({**schema, "components": self.components}, format_checker=FORMATS)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(value)
        ]
