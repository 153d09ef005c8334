"""`release-bot`: serve | socket | console | demo | log | check-config | rollback | doctor.

Every command reads settings through `bot.config.Settings`; a missing or invalid setting stops
the command with one line naming it and what it is for, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from bot import durability
from bot.config import MissingSetting, Settings, describe_setting
from bot.redact import LOG_LIMIT, Redactor, default_redactor
from bot.runbook.loader import RunbookError

Handler = Callable[[argparse.Namespace, Settings], int]


class RedactingFormatter(logging.Formatter):
    """Log formatter that redacts every line: the message bounded (`log_text`), a traceback
    kept to its head and its last lines (where the error is)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        copy = logging.makeLogRecord(record.__dict__)  # other handlers keep the original
        copy.msg, copy.args = self.redactor.log_text(record.getMessage()), None
        return super().format(copy)

    def formatException(self, ei: Any) -> str:
        return self.redactor(_ends(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> str:
        return self.redactor(_ends(super().formatStack(stack_info)))


def _ends(text: str, limit: int = LOG_LIMIT) -> str:
    """`text` whole when short, else its first and last `limit // 2` characters."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters not shown] …\n{text[-half:]}"


def setup_logging(settings: Settings) -> None:
    redactor = default_redactor()
    redactor.add(settings.secret_values())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = settings.LOG_LEVEL.upper() if settings.LOG_LEVEL else "INFO"
    root.setLevel(level)
    if level != "DEBUG":  # libraries that would log request bodies speak only of problems
        for noisy in ("apscheduler", "aiohttp", "httpx", "slack_bolt", "slack_sdk"):
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

    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        if getattr(settings, name) is None:
            raise MissingSetting(name)
    if (problem := _token_problem(settings, socket_mode=False)) is not None:
        print(f"release-bot: {problem}", file=sys.stderr)
        return 2
    app, runtime = build_bolt_app(settings)
    port = args.port or settings.PORT
    print(f"release-bot listening on http://{args.host}:{port} (POST /slack/events, GET /healthz)")
    try:
        web.run_app(create_web_app(app, runtime), host=args.host, port=port, print=None)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"release-bot: cannot listen on {args.host}:{port}: the port is in use (another "
              "release-bot serve?); choose a free one with --port or PORT", file=sys.stderr)
        return 2
    return 0


def cmd_socket(args: argparse.Namespace, settings: Settings) -> int:
    if settings.SLACK_APP_TOKEN is None:
        raise MissingSetting("SLACK_APP_TOKEN")
    durability.start_server(settings)  # one writer per log; re-runs under Litestream when set
    if settings.SLACK_BOT_TOKEN is None:
        raise MissingSetting("SLACK_BOT_TOKEN")
    if (problem := _token_problem(settings, socket_mode=True)) is not None:
        print(f"release-bot: {problem}", file=sys.stderr)
        return 2

    async def main() -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        from bot.app import build_bolt_app
        from bot.scheduler import start_scheduler

        app, runtime = build_bolt_app(settings, socket_mode=True)
        await runtime.engine.recover()
        scheduler = start_scheduler(runtime)
        from bot.chat.slack_auth import quiet_logger

        handler = AsyncSocketModeHandler(app, settings.secret("SLACK_APP_TOKEN"),
                                         logger=quiet_logger())
        try:
            await handler.start_async()
        finally:
            scheduler.shutdown(wait=False)
            await runtime.close()

    asyncio.run(main())
    return 0


def _token_problem(settings: Settings, *, socket_mode: bool) -> str | None:
    """One line when Slack rejects the bot's (or, for Socket Mode, the app's) token."""
    from bot.chat.slack_auth import token_problem

    return token_problem(settings, socket_mode=socket_mode)


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


DEMO_NEEDS_CHECKOUT = ("release-bot: the demo needs a checkout of the repository (its sandbox/ package "
                      "is not part of the bot's install); clone it and run `make demo`")


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the sandbox demo; the sandbox lives in the repository, not in the bot's wheel."""
    try:
        from sandbox.demo import run_demo
    except ModuleNotFoundError as exc:
        if exc.name not in ("sandbox", "sandbox.demo"):
            raise
        print(DEMO_NEEDS_CHECKOUT, file=sys.stderr)
        return 1
    return asyncio.run(run_demo(keep=args.keep, rollback=not args.no_rollback))


def cmd_log(args: argparse.Namespace, settings: Settings) -> int:
    from bot.report import missing_log, release_json, release_table, releases_table, step_details
    from bot.store import Store

    if args.action == "backup":
        return durability.cmd_backup(settings, args.release_id)
    if (missing := missing_log(settings)) is not None:
        print(f"release-bot: {missing}", file=sys.stderr)
        return 1
    store = Store(settings.DATABASE_PATH)
    redactor = default_redactor()
    if args.action == "export":
        return cmd_log_export(args, settings, store)
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
            print(json.dumps(redactor.data(release_json(release, full=True)), indent=2))
        else:
            print(redactor(release_table(release) + step_details(release)))
        return 0
    releases = store.release_summaries(args.limit, None if args.all_envs else settings.ENVIRONMENT)
    if args.json:
        print(json.dumps(redactor.data([release_json(r) for r in releases]), indent=2))
    else:
        print(redactor(releases_table(releases)))
    return 0


def cmd_log_export(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    """`log export`: the release files of the knowledge base, from the command line."""
    from bot.kb import export_command

    try:
        text = export_command(store, settings, args.format, args.since, args.all_envs)
    except ValueError as exc:
        print(f"release-bot: cannot export: {exc} (--since takes a date like 2026-12-01)",
              file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    from bot.report import config_report, runbook_report
    from bot.steps.registry import STEPS

    if args.runbook:
        print(runbook_report(settings, STEPS), end="")
        return 0
    from bot.config_check import check_values

    report = config_report(settings, STEPS).rstrip()
    print(default_redactor()(report + "\n" + durability.config_note(settings)))
    return 1 if any(finding.error for finding in check_values(settings)) else 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from bot.doctor import cmd_doctor as run  # its providers load only when it runs

    return run(args, settings)


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from bot.rollback_cli import cmd_rollback as run  # the rollback loads only when it runs

    return run(args, settings)


def _add_rollback(sub: Any) -> None:
    """`release-bot rollback` and its flags (the same choices as the Slack form)."""
    parser = sub.add_parser(
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
    log = sub.add_parser("log", help="the release log: `log`, `log show ID`, `log export`, "
                         "`log backup PATH`")
    log.add_argument("action", nargs="?", choices=["list", "show", "export", "backup"],
                     default="list")
    log.add_argument("release_id", nargs="?", metavar="ID|PATH",
                     help="release id (show), file (backup)")
    log.add_argument("--json", action="store_true", help="machine-readable output")
    log.add_argument("--limit", type=int, default=20, help="how many releases (default 20)")
    log.add_argument("--all-envs", action="store_true", help="every environment, not just ENVIRONMENT")
    log.add_argument("--format", choices=["markdown", "csv", "json"], default="markdown",
                     help="`log export` format (default markdown, as in the knowledge base)")
    log.add_argument("--since", help="`log export` only releases started on or after DATE")
    log.add_argument("--output", help="`log export` into this file instead of standard output")
    log.set_defaults(handler=cmd_log)
    check = sub.add_parser("check-config", help="effective settings (secrets masked), runnable steps")
    check.add_argument("--runbook", action="store_true",
                       help="print a runbook of what can run now (for RUNBOOK_PATH)")
    check.set_defaults(handler=cmd_check_config)
    sub.add_parser("doctor", help="try every configured credential with a read; one table"
                   ).set_defaults(handler=cmd_doctor)
    _add_rollback(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `release-bot` console script."""
    args = build_parser().parse_args(argv)
    settings = load_settings()
    setup_logging(settings)
    handler: Handler = args.handler
    try:
        code = handler(args, settings)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # `release-bot log | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except MissingSetting as exc:
        print(f"release-bot: {exc.name} is not set: {exc.purpose}", file=sys.stderr)
        return 2
    except RunbookError as exc:
        print(f"release-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except sqlite3.Error as exc:
        print(f"release-bot: cannot use the release log {settings.DATABASE_PATH}: {exc} "
              "(check DATABASE_PATH and the working directory)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"release-bot: {_os_error(exc, settings)}", file=sys.stderr)
        return 2


def _os_error(exc: OSError, settings: Settings) -> str:
    """An OSError in one line, blaming DATABASE_PATH only when the file is the release log's."""
    if not exc.filename:
        return str(exc.strerror or exc)
    where = str(exc.filename)
    line = f"cannot use {where}: {exc.strerror or exc}"
    log = Path(settings.DATABASE_PATH)
    if Path(where) in (log, *log.parents):
        line += " (check DATABASE_PATH and the working directory)"
    return line


def masked(value: Any) -> str:
    """A setting's value for display: secrets masked, lists joined."""
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


if __name__ == "__main__":
    sys.exit(main())
