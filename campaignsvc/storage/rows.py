"""Row → attrs conversion: a record becomes an instance of a frozen attrs class by field name."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs

T = TypeVar("T")


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls))


def from_record(cls: type[T], record: Mapping[str, Any]) -> T:
    """Build ``cls`` from the record's columns of the same names; extra columns are ignored."""
    return cls(**{name: record[name] for name in _field_names(cls)})


def from_records(cls: type[T], records: Iterable[Mapping[str, Any]]) -> list[T]:
    names = _field_names(cls)
    return [cls(**{name: r[name] for name in names}) for r in records]


def record_dict(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A plain dict of a record (column order kept), for JSON responses that mirror table rows."""
    return None if record is None else dict(record.items())
