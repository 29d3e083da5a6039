"""Scenario 4 — ``GET /stats`` and the participants page of a 1,000,000-participant campaign (100,000 at
CI size).

The measurement itself lives in ``bench/stats_scale.py``; this module gives it the same entry point as the
other scenarios (``run(size, out_dir)``) so ``python -m bench stats`` and ``python -m bench all`` run it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from bench import harness as h


async def run(size: str, out_dir: Path | None = None) -> dict[str, Any]:
    try:
        stats_scale = importlib.import_module("bench.stats_scale")
    except ModuleNotFoundError:
        report = h.Report("stats", size, {})
        report.notes.append("bench/stats_scale.py is not in this checkout: nothing measured")
        return await h.emit(report, out_dir)
    return await stats_scale.run(size, out_dir)
