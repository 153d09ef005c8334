"""The arguments of `release-bot rollback`, apart from the rollback itself, so that every other
command starts without importing it (and Redis, httpx and Slack's SDK with it)."""

from __future__ import annotations

import argparse
from typing import Any

from bot.config import Settings


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of `release-bot rollback` (bot/rollback_cli.py)."""
    from bot.rollback_cli import cmd_rollback as run

    return run(args, settings)


def add_parser(subparsers: Any) -> None:
    """Add `rollback` to `release-bot`'s subcommands (the rollback code loads only when it runs)."""
    parser = subparsers.add_parser(
        "rollback", help="revert a release: deployment, schema, backup, cache; announce it")
    parser.add_argument("release_id", nargs="?", type=int,
                        help="release to roll back (default: the newest on ENVIRONMENT)")
    parser.add_argument("--reason", default="", help="why (required; asked for when omitted)")
    parser.add_argument("--ticket", action="append", default=[], metavar="ID_OR_URL",
                        help="ticket ID or URL (repeat, or separate with commas)")
    parser.add_argument("--no-deployment", action="store_true",
                        help="do not revert the deployment (it is reverted by default)")
    parser.add_argument("--schema", action="store_true",
                        help="revert the migrations this release applied (resets data)")
    parser.add_argument("--backup", action="store_true",
                        help="restore the database to just before the release (PITR)")
    parser.add_argument("--confirm-ref", default=None, metavar="REF",
                        help="the Supabase project ref, typed to confirm --backup")
    parser.add_argument("--cache", action="store_true", help="FLUSHALL ASYNC on STAGING_REDIS_URL")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--user", default=None, help="who is rolling back (default: $USER)")
    parser.set_defaults(handler=cmd_rollback)
