"""`release-bot`: serve | socket | console | demo | log | check-config | rollback.

Every command reads settings through `bot.config.Settings`; a missing or invalid setting stops
the command with one line naming it and what it is for, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any

from pydantic import SecretStr, ValidationError

from bot import durability
from bot.config import MissingSetting, Settings, describe_setting
from bot.redact import Redactor, default_redactor
from bot.runbook.loader import RunbookError

Handler = Callable[[argparse.Namespace, Settings], int]


class RedactingFormatter(logging.Formatter):
    """Log formatter that passes every line through the redactor."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(super().format(record))


def setup_logging(settings: Settings) -> None:
    redactor = default_redactor()
    redactor.add(settings.secret_values())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.LOG_LEVEL.upper() if settings.LOG_LEVEL else "INFO")
    for noisy in ("apscheduler", "aiohttp.access", "httpx", "slack_bolt", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load_settings() -> Settings:
    """Settings from the environment; a bad value is reported by name (SystemExit 2)."""
    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            print(f"release-bot: setting {name} is invalid: {err['msg']} "
                  f"({describe_setting(name)})", file=sys.stderr)
        raise SystemExit(2) from None


# --- commands ----------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    durability.start_server(settings)  # one writer per log; re-runs under Litestream when set

    from bot.app import build_bolt_app
    from bot.server import create_web_app

    app, runtime = build_bolt_app(settings)
    port = args.port or settings.PORT
    print(f"release-bot listening on http://{args.host}:{port} (POST /slack/events, GET /healthz)")
    web.run_app(create_web_app(app, runtime), host=args.host, port=port, print=None)
    return 0


def cmd_socket(args: argparse.Namespace, settings: Settings) -> int:
    if settings.SLACK_APP_TOKEN is None:
        raise MissingSetting("SLACK_APP_TOKEN")
    durability.start_server(settings)  # one writer per log; re-runs under Litestream when set

    async def main() -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        from bot.app import build_bolt_app
        from bot.scheduler import build_scheduler

        app, runtime = build_bolt_app(settings, socket_mode=True)
        await runtime.engine.recover()
        scheduler = build_scheduler(runtime.store, runtime.reporter, runtime.lock)
        scheduler.start()
        handler = AsyncSocketModeHandler(app, settings.secret("SLACK_APP_TOKEN"))
        try:
            await handler.start_async()
        finally:
            scheduler.shutdown(wait=False)
            await runtime.engine.shutdown()

    asyncio.run(main())
    return 0


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_runtime
    from bot.chat.console import ConsoleChat
    from bot.console import ConsoleSession, interactive

    async def main() -> None:
        chat = ConsoleChat(redactor=default_redactor(), show_updates=True)
        runtime = build_runtime(settings, chat)
        session = ConsoleSession(runtime, chat, user=args.user, channel=settings.RELEASE_CHANNEL
                                 or "console")
        await interactive(session)

    asyncio.run(main())
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.sandbox.demo import run_demo

    return asyncio.run(run_demo(keep=args.keep, rollback=not args.no_rollback))


def cmd_log(args: argparse.Namespace, settings: Settings) -> int:
    from bot.report import release_json, release_table, releases_table
    from bot.store import Store

    if args.action == "backup":
        return durability.cmd_backup(settings, args.release_id)
    store = Store(settings.DATABASE_PATH)
    redactor = default_redactor()
    if args.action == "show":
        if not (args.release_id or "").isdigit():
            print("release-bot: `log show` needs a release id", file=sys.stderr)
            return 2
        release = store.get_release(int(args.release_id))
        if release is None:
            print(f"release-bot: release #{args.release_id} is not in {settings.DATABASE_PATH}",
                  file=sys.stderr)
            return 1
        if args.json:
            print(redactor(json.dumps(release_json(release, full=True), indent=2)))
        else:
            print(redactor(release_table(release)))
        return 0
    releases = store.list_releases(args.limit, None if args.all_envs else settings.ENVIRONMENT)
    if args.json:
        print(redactor(json.dumps([release_json(r) for r in releases], indent=2)))
    else:
        print(redactor(releases_table(releases)))
    return 0


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    from bot.report import config_report

    print(default_redactor()(config_report(settings) + durability.config_note(settings)))
    return 0


def _extra_commands() -> list[Any]:
    """Modules that add subcommands (rollback) with `add_parser(subparsers)`."""
    found = []
    for name in ("bot.rollback_cli",):
        try:
            found.append(import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="release-bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="HTTP mode: POST /slack/events, GET /healthz")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")  # noqa: S104
    serve.add_argument("--port", type=int, default=None, help="port (default $PORT or 3000)")
    serve.set_defaults(handler=cmd_serve)
    sub.add_parser("socket", help="Socket Mode (needs SLACK_APP_TOKEN)").set_defaults(handler=cmd_socket)
    console = sub.add_parser("console", help="terminal chat: type /release start")
    console.add_argument("--user", default="console", help="your user name in the chat")
    console.set_defaults(handler=cmd_console)
    demo = sub.add_parser("demo", help="run a whole release against a local sandbox")
    demo.add_argument("--keep", action="store_true", help="keep the sandbox's temporary files")
    demo.add_argument("--no-rollback", action="store_true", help="skip the closing rollback")
    demo.set_defaults(handler=cmd_demo)
    log = sub.add_parser("log", help="the release log: `log`, `log show ID`, `log backup PATH`")
    log.add_argument("action", nargs="?", choices=["list", "show", "backup"], default="list")
    log.add_argument("release_id", nargs="?", metavar="ID|PATH", help="release id (show), file (backup)")
    log.add_argument("--json", action="store_true", help="machine-readable output")
    log.add_argument("--limit", type=int, default=20, help="how many releases (default 20)")
    log.add_argument("--all-envs", action="store_true", help="every environment, not just ENVIRONMENT")
    log.set_defaults(handler=cmd_log)
    check = sub.add_parser("check-config", help="effective settings (secrets masked), runnable steps")
    check.set_defaults(handler=cmd_check_config)
    for module in _extra_commands():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `release-bot` console script."""
    args = build_parser().parse_args(argv)
    settings = load_settings()
    setup_logging(settings)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except MissingSetting as exc:
        print(f"release-bot: {exc.name} is not set: {exc.purpose}", file=sys.stderr)
        return 2
    except RunbookError as exc:
        print(f"release-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (OSError, sqlite3.Error) as exc:
        where = getattr(exc, "filename", None) or settings.DATABASE_PATH
        print(f"release-bot: cannot use {where}: {exc.strerror if isinstance(exc, OSError) else exc} "
              "(check DATABASE_PATH and the working directory)", file=sys.stderr)
        return 2


def masked(value: Any) -> str:
    """A setting's value for display: secrets masked, lists joined."""
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


if __name__ == "__main__":
    sys.exit(main())
