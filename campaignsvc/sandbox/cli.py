"""``campaignsvc sandbox``: the Messaging Service stand-in as a process, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from functools import partial

import trio
import trio_asyncio

from campaignsvc.app import watch_signals
from campaignsvc.config import Settings
from campaignsvc.errors import ConfigError
from campaignsvc.sandbox.config import ConfigPatchError, SandboxConfig
from campaignsvc.sandbox.server import run_sandbox


def add_parser(commands: argparse._SubParsersAction) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="run a Messaging Service stand-in that behaves like Telegram",
        description="Serve POST /api/messaging/send with Telegram-like latency, flood waits, errors "
        "and replies; inspect it under /sandbox/*. Other settings: POST /sandbox/config.",
    )
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=3003, help="0 picks a free port")
    sandbox.add_argument("--seed", type=int, default=0)
    sandbox.add_argument("--latency-ms", type=float, default=0.0)
    sandbox.add_argument("--jitter-ms", type=float, default=0.0)
    sandbox.add_argument("--account-min-gap-s", type=float, default=0.0, help="faster sends get FLOOD_WAIT")
    sandbox.add_argument("--flood-wait-s", type=float, default=30.0)
    sandbox.add_argument("--peer-flood-after", type=int, default=None)
    sandbox.add_argument("--reply-rate", type=float, default=0.0, help="share of recipients that reply")
    sandbox.add_argument("--reply-delay-s", type=float, nargs=2, default=(1.0, 5.0), metavar=("MIN", "MAX"))
    sandbox.add_argument("--echo-rate", type=float, default=0.0)
    sandbox.add_argument("--events-url", default=None, help="POST events to {URL}/api/campaigns/events")
    sandbox.add_argument("--rabbitmq-url", default=None, help="publish events to RabbitMQ instead")
    sandbox.add_argument("--rabbitmq-exchange", default="events")


def config_from_args(args: argparse.Namespace, settings: Settings) -> SandboxConfig:
    fields = {
        "seed": args.seed,
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "account_min_gap_s": args.account_min_gap_s,
        "flood_wait_s": args.flood_wait_s,
        "peer_flood_after": args.peer_flood_after,
        "reply_rate": args.reply_rate,
        "reply_delay_s": list(args.reply_delay_s),
        "echo_rate": args.echo_rate,
        "events_url": args.events_url,
        "rabbitmq_url": args.rabbitmq_url,
        "rabbitmq_exchange": args.rabbitmq_exchange,
        "internal_auth_secret": settings.internal_auth_secret,
        "events_ingest_secret": settings.events_ingest_secret,
    }
    try:
        return SandboxConfig().patched(fields)
    except ConfigPatchError as exc:
        first = exc.details[0]
        raise ConfigError(f"--{first['path'].replace('_', '-')}", first["message"]) from None


async def run(args: argparse.Namespace, settings: Settings) -> None:
    config = config_from_args(args, settings)
    shutdown = trio.Event()
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        nursery.start_soon(partial(watch_signals, shutdown, nursery.cancel_scope))
        await run_sandbox(config, host=args.host, port=args.port, shutdown=shutdown)
        nursery.cancel_scope.cancel()
