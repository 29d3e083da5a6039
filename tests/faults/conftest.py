"""The fault tier (tests/faults/README.md): every test here carries the ``faults`` marker, so
``pytest -m faults`` runs the tier alone and ``-m "not faults"`` leaves it out."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.faults)
