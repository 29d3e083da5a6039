"""``python -m bench <scenario> [--size ci|full]`` and ``python -m bench all --size ci``."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import trio
import trio_asyncio

from bench import harness
from campaignsvc import logs

# CLI name → module; each module has ``async def run(size, out_dir) -> dict``.
SCENARIOS = {
    "throughput": "bench.throughput",
    "lateness": "bench.lateness",
    "start": "bench.start",
    "stats": "bench.stats",
    "footprint": "bench.footprint",
    "slow-endpoint": "bench.slow_endpoint",
    "instances": "bench.instances",
}
ALIASES = {str(i): name for i, name in enumerate(SCENARIOS, start=1)}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", choices=[*SCENARIOS, *ALIASES, "all"])
    parser.add_argument(
        "--size",
        choices=harness.SIZES,
        default="ci",
        help="ci (default): about two minutes or less per scenario; full: the SPEC sizes; smoke: the test suite's",
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write <scenario>-<size>.json")
    return parser.parse_args(argv)


async def _main(names: list[str], size: str, out: Path | None) -> list[dict]:
    reports = []
    async with trio_asyncio.open_loop():
        try:
            for name in names:
                module = importlib.import_module(SCENARIOS[name])
                reports.append(await module.run(size, out))
        finally:
            await harness.drop_template()
    return reports


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    logs.configure("warning", "console")
    name = ALIASES.get(args.scenario, args.scenario)
    names = list(SCENARIOS) if name == "all" else [name]
    trio.run(_main, names, args.size, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
