"""`release-bot rollback`: the rollback from a terminal, for when Slack itself is the problem.

Same choices as the form, as flags (defined in `bot/cli.py`): `--no-deployment`, `--schema`,
`--backup`, `--cache`, `--reason`, `--ticket` (repeatable). It prints the plan, asks for
confirmation (`--yes` skips that prompt) and, for a backup restore, asks to type the project ref
(or takes `--confirm-ref`). It calls the same rollback controller as Slack and the console
(`bot/rollback/controller.py`). The announcement is posted to Slack when SLACK_BOT_TOKEN is set
(a failure there is logged, not fatal) and always printed. Exit codes: 0 every chosen action
succeeded, 1 an action failed, 2 bad input or refused confirmation, 3 another rollback of the
release is under way.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from typing import Any

from bot import kb
from bot.app import Runtime, build_redactor, build_runtime
from bot.chat.console import ConsoleChat, plain_text
from bot.chat.rollback import announcement, plan_text
from bot.config import Settings
from bot.redact import Redactor
from bot.report import missing_log
from bot.rollback.model import Choices, RollbackBusy, split_tickets
from bot.runbook.engine import EngineError
from bot.runbook.model import Outcome, Release

BAD_INPUT, BUSY = 2, 3


class Refused(Exception):
    """The rollback stops before it starts; the message says why (for standard error)."""

    def __init__(self, message: str, code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def ask(prompt: str) -> str:
    """Read one answer from the terminal (tests replace this)."""
    return input(prompt)


def interactive() -> bool:
    """Whether a person can answer prompts."""
    return sys.stdin.isatty()


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
    try:
        return asyncio.run(_rollback(args, settings))
    except Refused as exc:
        if str(exc):
            print(f"release-bot: {exc}", file=sys.stderr)
        return exc.code


def choices_from(args: argparse.Namespace) -> Choices:
    """The person's choices from the flags (the reason asked for at a terminal)."""
    reason = args.reason.strip()
    if not reason and not args.yes and interactive():
        reason = ask("Reason for the rollback: ").strip()
    if not reason:
        raise Refused("a rollback needs a reason (--reason \"...\")")
    tickets = [t for raw in args.ticket for t in split_tickets(raw)]
    choices = Choices(reason=reason, tickets=tickets, deployment=not args.no_deployment,
                      schema=args.schema, backup=args.backup, cache=args.cache)
    if not choices.chosen():
        raise Refused("choose at least one action (--no-deployment leaves none)")
    return choices


def _chat(settings: Settings, redactor: Redactor) -> Any:
    """Slack when SLACK_BOT_TOKEN is set; else a console chat whose output is not shown
    (the announcement is printed instead)."""
    if settings.SLACK_BOT_TOKEN is None:
        return ConsoleChat(out=io.StringIO(), redactor=redactor)
    from bot.chat.slack import SlackChat, make_web_client

    return SlackChat(make_web_client(settings))


def _release(runtime: Runtime, args: argparse.Namespace, settings: Settings) -> Release:
    """The release to roll back, when it exists and no other rollback holds it."""
    release = runtime.rollbacks.resolve(args.release_id)
    if release is None or release.id is None:
        what = f"release #{args.release_id} is not in {settings.DATABASE_PATH}" \
            if args.release_id else f"no release on {settings.ENVIRONMENT} in {settings.DATABASE_PATH}"
        raise Refused(what)
    busy = runtime.rollbacks.busy(release.id)
    if busy:
        raise Refused(plain_text(busy), BUSY)
    return release


def _confirm_ref(args: argparse.Namespace, settings: Settings) -> str:
    """The project ref, typed (or given with --confirm-ref) to confirm a backup restore."""
    ref = settings.SUPABASE_PROJECT_REF
    if not ref:
        raise Refused("--backup needs SUPABASE_PROJECT_REF")
    typed = args.confirm_ref
    if typed is None and interactive():
        typed = ask(f"Type the project ref ({ref}) to confirm the backup restore: ")
    if (typed or "").strip() != ref:
        raise Refused(f"the backup restore needs the project ref typed to confirm "
                      f"(--confirm-ref {ref})")
    return ref


def _confirm(args: argparse.Namespace, release_id: int) -> None:
    """Ask "Roll back?" unless --yes; refuse when nobody can answer."""
    if args.yes:
        return
    if not interactive():
        raise Refused("not a terminal; add --yes to roll back without a prompt")
    answer = ask(f"Roll back release #{release_id}? Type yes: ").strip().lower()
    if answer not in ("y", "yes"):
        print("Nothing was changed.", file=sys.stdout)
        raise Refused("", BAD_INPUT)


async def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    choices = choices_from(args)
    if (missing := missing_log(settings)) is not None:
        raise Refused(missing)
    redactor = build_redactor(settings)
    runtime = build_runtime(settings, _chat(settings, redactor))
    release = _release(runtime, args, settings)
    assert release.id is not None
    plan = await runtime.rollbacks.plan(release)
    choices.target_deployment = plan.target.id if plan.target else None
    print(plain_text(redactor(plan_text(plan, choices, settings))), file=sys.stdout)
    if choices.backup:
        choices.confirm_ref = _confirm_ref(args, settings)
    _confirm(args, release.id)
    return await _run(runtime, release.id, choices, _user(args))


async def _run(runtime: Runtime, release_id: int, choices: Choices, user: str) -> int:
    """Run it, print the announcement; 1 when an action failed."""
    try:
        report = await runtime.rollbacks.run(release_id, choices, user)
    except RollbackBusy as exc:
        raise Refused(plain_text(str(exc)), BUSY) from exc
    except EngineError as exc:
        raise Refused(str(exc)) from exc
    finally:
        await runtime.engine.shutdown()
        await kb.drain(runtime.store)
    text = announcement(report, runtime.settings, runtime.redactor).text
    print(plain_text(runtime.redactor(text)), file=sys.stdout)
    failed = any(r.outcome == Outcome.FAIL for r in report.results)
    return 1 if failed else 0
