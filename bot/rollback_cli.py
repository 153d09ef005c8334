"""`release-bot rollback`: the rollback from a terminal, for when Slack itself is the problem.

Same choices as the form, as flags: `--no-deployment`, `--schema`, `--backup`, `--cache`,
`--reason`, `--ticket` (repeatable). It prints the plan, asks for confirmation (`--yes` skips
that prompt) and, for a backup restore, asks to type the project ref (or takes `--confirm-ref`).
The announcement is posted to Slack when SLACK_BOT_TOKEN is set (a failure there is logged, not
fatal) and always printed. Exit codes: 0 every chosen action succeeded, 1 an action failed,
2 bad input or refused confirmation, 3 another rollback of the release is under way.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from typing import Any

from bot.chat.console import ConsoleChat, plain_text
from bot.config import Settings
from bot.redact import default_redactor
from bot.report import missing_log
from bot.rollback import (
    ACTIONS,
    BACKUP,
    DEPLOYMENT,
    SCHEMA,
    TITLES,
    Choices,
    Plan,
    RollbackBusy,
    controller,
    split_tickets,
)
from bot.runbook.engine import EngineError
from bot.runbook.model import Outcome


def ask(prompt: str) -> str:
    """Read one answer from the terminal (tests replace this)."""
    return input(prompt)


def interactive() -> bool:
    """Whether a person can answer prompts."""
    return sys.stdin.isatty()


def add_parser(subparsers: Any) -> None:
    """Add `rollback` to `release-bot`'s subcommands."""
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


def describe_plan(plan: Plan, choices: Choices, settings: Settings) -> str:
    """The plan as plain text: the release, and what each chosen action will do."""
    release = plan.release
    lines = [f"Rollback of release #{release.id} ({release.ref} to {release.environment}, "
             f"{release.status.value})"]
    if release.status.active:
        lines.append("  It is still running: it will be cancelled first.")
    if plan.current is not None:
        lines.append(f"  Its deployment: {plan.current.id} {plan.current.url or ''}".rstrip())
    for name in ACTIONS:
        mark = "x" if getattr(choices, name) else " "
        lines.append(f"  [{mark}] {TITLES[name]}: {_what(name, plan, settings)}")
    return "\n".join(lines)


def _what(name: str, plan: Plan, settings: Settings) -> str:
    if name == DEPLOYMENT:
        if plan.target is None:
            return f"no target found ({plan.target_problem or 'unknown'})"
        where = ("production rollback" if settings.VERCEL_TARGET == "production"
                 else f"point {settings.staging_domain or '(no STAGING_DOMAIN)'}")
        return f"{where} at {plan.target.id} ({plan.target.source}) {plan.target.url or ''}".rstrip()
    if name == SCHEMA:
        if not plan.migrations:
            return "nothing recorded to revert"
        return (f"{plan.schema_command.strip('`')} for {', '.join(plan.migrations)} "
                "(resets data in the affected schemas)")
    if name == BACKUP:
        return f"project {plan.project_ref or '(unset)'}: {plan.backups_text}"
    return f"FLUSHALL ASYNC, {plan.redis_text}"


def _user(args: argparse.Namespace) -> str:
    import getpass

    if args.user:
        return str(args.user)
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of `release-bot rollback`."""
    return asyncio.run(_rollback(args, settings))


async def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_runtime

    out = sys.stdout
    reason = args.reason.strip()
    if not reason and not args.yes and interactive():
        reason = ask("Reason for the rollback: ").strip()
    if not reason:
        print("release-bot: a rollback needs a reason (--reason \"...\")", file=sys.stderr)
        return 2
    tickets = [t for raw in args.ticket for t in split_tickets(raw)]
    choices = Choices(reason=reason, tickets=tickets, deployment=not args.no_deployment,
                      schema=args.schema, backup=args.backup, cache=args.cache)
    if not choices.chosen():
        print("release-bot: choose at least one action (--no-deployment leaves none)",
              file=sys.stderr)
        return 2
    if (missing := missing_log(settings)) is not None:
        print(f"release-bot: {missing}", file=sys.stderr)
        return 2
    redactor = default_redactor()
    redactor.add(settings.secret_values())
    chat: Any
    if settings.SLACK_BOT_TOKEN is not None:
        from bot.chat.slack import SlackChat, make_web_client

        chat = SlackChat(make_web_client(settings))
    else:
        chat = ConsoleChat(out=io.StringIO(), redactor=redactor)  # the announcement is printed below
    runtime = build_runtime(settings, chat)
    rollbacks = controller(runtime)
    release = rollbacks.resolve(args.release_id)
    if release is None or release.id is None:
        what = f"release #{args.release_id} is not in {settings.DATABASE_PATH}" \
            if args.release_id else f"no release on {settings.ENVIRONMENT} in {settings.DATABASE_PATH}"
        print(f"release-bot: {what}", file=sys.stderr)
        return 2
    busy = rollbacks.busy(release.id)
    if busy:
        print(f"release-bot: {plain_text(busy)}", file=sys.stderr)
        return 3
    plan = await rollbacks.plan(release)
    choices.target_deployment = plan.target.id if plan.target else None
    print(plain_text(redactor(describe_plan(plan, choices, settings))), file=out)
    if choices.backup:
        ref = settings.SUPABASE_PROJECT_REF
        if not ref:
            print("release-bot: --backup needs SUPABASE_PROJECT_REF", file=sys.stderr)
            return 2
        typed = args.confirm_ref
        if typed is None and interactive():
            typed = ask(f"Type the project ref ({ref}) to confirm the backup restore: ")
        if (typed or "").strip() != ref:
            print(f"release-bot: the backup restore needs the project ref typed to confirm "
                  f"(--confirm-ref {ref})", file=sys.stderr)
            return 2
        choices.confirm_ref = ref
    if not args.yes:
        if not interactive():
            print("release-bot: not a terminal; add --yes to roll back without a prompt",
                  file=sys.stderr)
            return 2
        answer = ask(f"Roll back release #{release.id}? Type yes: ").strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing was changed.", file=out)
            return 2
    try:
        report = await rollbacks.run(release.id, choices, _user(args))
    except RollbackBusy as exc:
        print(f"release-bot: {plain_text(str(exc))}", file=sys.stderr)
        return 3
    except EngineError as exc:
        print(f"release-bot: {exc}", file=sys.stderr)
        return 2
    finally:
        await runtime.engine.shutdown()
    print(plain_text(redactor(rollbacks.announcement(report).text)), file=out)
    failed = any(r.outcome == Outcome.FAIL for r in report.results)
    return 1 if failed else 0
