"""``campaignsvc serve | migrate | demo | sandbox``: the console entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial

import trio
import trio_asyncio

from campaignsvc import __version__, logs
from campaignsvc.app import migrate_database, serve_until_signalled
from campaignsvc.config import Settings
from campaignsvc.demo import cli as demo_cli
from campaignsvc.errors import CampaignsvcError, ConfigError
from campaignsvc.sandbox import cli as sandbox_cli
from campaignsvc.storage.embedded import database_dsn


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="campaignsvc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"campaignsvc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API and the dispatcher")
    serve.add_argument("--migrate", action="store_true", help="apply migrations before serving")

    commands.add_parser("migrate", help="apply database migrations and exit")

    demo_cli.add_parser(commands)
    sandbox_cli.add_parser(commands)
    return parser


async def _serve(settings: Settings, *, migrate_first: bool, fresh: bool = False) -> None:
    async with (
        trio_asyncio.open_loop(),
        database_dsn(settings.database_url, settings.data_dir, fresh=fresh) as dsn,
    ):
        if migrate_first:
            await migrate_database(dsn, settings)
        await serve_until_signalled(settings, dsn)


async def _migrate(settings: Settings) -> None:
    async with trio_asyncio.open_loop(), database_dsn(settings.database_url, settings.data_dir) as dsn:
        applied = await migrate_database(dsn, settings)
        print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaf_errors(sub)]
    return [exc]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if args.command == "demo":
        overrides = {"host": "127.0.0.1", "log_format": "console"}
    try:
        settings = Settings.from_env(None, **overrides)
    except ConfigError as exc:
        print(f"campaignsvc: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)

    if args.command == "serve":
        job = partial(_serve, settings, migrate_first=args.migrate)
    elif args.command == "migrate":
        job = partial(_migrate, settings)
    elif args.command == "sandbox":
        job = partial(sandbox_cli.run, args, settings)
    else:
        job = partial(demo_cli.run, args, settings)

    try:
        trio.run(job)
    except BaseException as exc:
        leaves = _leaf_errors(exc)
        known = [e for e in leaves if isinstance(e, CampaignsvcError)]
        if known and len(known) == len(leaves):
            for error in known:
                print(f"campaignsvc: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
        if all(isinstance(e, KeyboardInterrupt) for e in leaves):
            return 130
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
