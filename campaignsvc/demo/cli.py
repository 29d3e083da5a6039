"""``campaignsvc demo``: the options, and the entry the console script dispatches to."""

from __future__ import annotations

import argparse

from campaignsvc.config import Settings
from campaignsvc.demo import plan, runner
from campaignsvc.errors import ConfigError


def add_parser(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="seed a demo organization and watch campaigns run against the sandbox",
        description="Start the embedded PostgreSQL (or use DATABASE_URL), the Messaging sandbox and the "
        "service in one process; seed a demo organization, start three campaigns through the API, show "
        "their progress and end with a summary. See docs/demo.md.",
    )
    demo.add_argument("--fresh", action="store_true", help="start from an empty demo database")
    demo.add_argument(
        "--keep-running", action="store_true", help="after the summary, keep the service up until Ctrl-C"
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=None,
        help=f"real seconds per demo second (default {plan.DEFAULT_SPEED:g}: one real day per minute)",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help=f"fewer contacts and speed {plan.QUICK_SPEED:g} (follow-ups become immediate): ~15 s",
    )
    demo.add_argument("--port", type=int, default=None, help="service port (default PORT or 3012; 0 = free)")
    demo.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")


def options(args: argparse.Namespace, settings: Settings) -> runner.Options:
    speed = args.speed if args.speed is not None else (plan.QUICK_SPEED if args.quick else plan.DEFAULT_SPEED)
    try:
        scale = plan.Speed(speed)
    except ValueError as exc:
        raise ConfigError("--speed", str(exc)) from None
    port = settings.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise ConfigError("--port", f"must be between 0 and 65535, got {port}")
    timeout = args.timeout if args.timeout is not None else (90.0 if args.quick else 300.0)
    return runner.Options(
        speed=scale,
        quick=args.quick,
        fresh=args.fresh,
        keep_running=args.keep_running,
        port=port,
        timeout_s=timeout,
    )


async def run(args: argparse.Namespace, settings: Settings) -> None:
    await runner.run(options(args, settings), settings)
