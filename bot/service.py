"""What `/release …` does, independent of where it was typed (Slack or the console chat).

Handlers parse and authorize (cheap, before acknowledging), then call `ReleaseService.run()`
with a `reply` callable that answers the requester alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.chat import blocks
from bot.chat.blocks import Message
from bot.chat.links import thread_link, thread_links
from bot.chat.rollback import busy_note, needs_reason_note, preflight, starting_note
from bot.commands import LOG_DEFAULT, USAGE, Command
from bot.config import Settings
from bot.memo import Remembered
from bot.providers.refs import ref_source
from bot.report import release_table
from bot.rollback.model import Choices, RollbackBusy
from bot.runbook import readiness
from bot.runbook.engine import Engine, EngineError
from bot.runbook.model import Release
from bot.store import Store

if TYPE_CHECKING:
    from bot.rollback.controller import Rollbacks

log = logging.getLogger(__name__)

# Which tools a step finds can change while the bot runs (someone installs one): a dry-run plan
# is recomputed at least this often. Everything else it reads is fixed for the process.
PLAN_MAX_AGE = 5.0

Reply = Callable[[Message], Awaitable[None]]


class ReleaseService:
    """Runs parsed commands against the engine and the release log."""

    def __init__(self, settings: Settings, engine: Engine, store: Store, chat: Any = None,
                 rollback: Rollbacks | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.chat = chat  # for links to threads (chat.getPermalink) when it is Slack
        self.rollback = rollback  # the rollback controller (bot/rollback/controller.py)
        # answers given inside the acknowledgement, recomputed only when the log changed
        self._statuses: Remembered[Message] = Remembered()
        self._plan: Remembered[list[str]] = Remembered(size=1, max_age=PLAN_MAX_AGE)

    def authorize(self, command: Command, user: str) -> str | None:
        """A refusal message when `user` may not run `command`, else None. No I/O."""
        if command.name in ("help", "status", "log", "show"):
            return None
        if command.dry_run:
            return None
        operators = self.settings.RELEASE_OPERATORS
        if operators and user not in operators:
            return (f":no_entry: <@{user}>, you are not a release operator, so you cannot "
                    f"`{command.name}` a release. Operators: "
                    + ", ".join(f"<@{u}>" for u in operators) + ".")
        return None

    def may_operate(self, user: str) -> bool:
        operators = self.settings.RELEASE_OPERATORS
        return not operators or user in operators

    async def run(self, command: Command, *, user: str, channel: str, reply: Reply) -> None:
        """Carry out an authorized command; every outcome is answered through `reply`."""
        try:
            if command.name == "help":
                await reply(blocks.note_message(USAGE))
            elif command.name == "start":
                await self._start(command, user, channel, reply)
            elif command.name == "status":
                await self._status(command, reply)
            elif command.name == "cancel":
                await self._cancel(command, user, reply)
            elif command.name == "log":
                await self._log(command, reply)
            elif command.name == "show":
                await self._show(command, reply)
            elif command.name == "doctor":
                await self._doctor(reply)
            elif command.name == "rollback":
                await self._rollback(command, user, channel, reply)
        except EngineError as exc:
            await reply(blocks.note_message(f":warning: {exc}"))

    async def _rollback(self, command: Command, user: str, channel: str, reply: Reply) -> None:
        """`/release rollback [id] reason` where no form confirms it (the console chat): the
        deployment only, once a reason is typed. Slack opens the form instead (handlers/rollback.py)."""
        if self.rollback is None:
            await reply(blocks.note_message(":warning: Rollback is not available here."))
            return
        release = preflight(self.rollback, command.release_id)
        if isinstance(release, Message):
            await reply(release)
            return
        assert release.id is not None
        if not command.reason:
            await reply(needs_reason_note(release.id))
            return
        await reply(starting_note(release.id))
        try:
            await self.rollback.run(release.id, Choices(reason=command.reason), user, channel)
        except RollbackBusy as exc:
            await reply(busy_note(str(exc)))

    async def _start(self, command: Command, user: str, channel: str, reply: Reply) -> None:
        ref = command.ref or self.settings.DEFAULT_REF
        if command.dry_run:
            await reply(self.plan_message(ref))
            return
        active = self.store.active_release(self.settings.ENVIRONMENT)
        if active is not None:  # before asking git: the running release may be fetching there
            raise EngineError(f"Release #{active.id} ({active.ref}) is still {active.status.value} "
                              f"on {active.environment}; cancel it or wait for it to finish.")
        verdict = await self.readiness(ref)
        if not verdict.ok:
            await reply(blocks.note_message(readiness.refusal(verdict, self.settings.ENVIRONMENT)))
            return
        target = self.settings.RELEASE_CHANNEL or channel
        release = await self.engine.start(ref=ref, user=user, channel=target, notes=command.notes,
                                          required=verdict.required)
        where = f" in <#{target}>" if target != channel else ""
        await reply(blocks.note_message(
            f":rocket: Release #{release.id} of `{ref}` to {release.environment} started{where}."))

    async def readiness(self, ref: str) -> readiness.Readiness:
        """Whether a release of `ref` can do the work its runbook requires (no side effects
        beyond asking git or GitHub about the ref)."""
        return await readiness.assess(self.engine.runbook, self.engine.registry, self.settings,
                                      ref, ref_source(self.settings, self.engine.redact))

    def answer_now(self, command: Command) -> Message | None:
        """The answer to a read-only command small enough for the acknowledgement itself
        (`status`, `start --dry-run`): one indexed read of the log or the runbook, no network.
        None for every other command."""
        if command.name == "status":
            return self.status_message(command)
        if command.name == "start" and command.dry_run:
            return self.plan_message(command.ref or self.settings.DEFAULT_REF)
        return None

    def plan_message(self, ref: str) -> Message:
        """The dry-run plan of a release of `ref` (the steps' plan is remembered for a few seconds)."""
        lines = self._plan.get("plan", None, lambda: plan_lines(self.engine))
        return blocks.note_message("\n".join([plan_heading(self.engine, ref), *lines]))

    async def _doctor(self, reply: Reply) -> None:
        from bot.doctor import doctor_message, run_doctor

        await reply(doctor_message(await run_doctor(self.settings)))

    def status_message(self, command: Command) -> Message:
        """Where the named release, the running one or the last one stands (the same answer
        until the release log changes, in this process or any other)."""
        return self._statuses.get(command.release_id, self.store.version(),
                                  lambda: self._status_now(command))

    def _status_now(self, command: Command) -> Message:
        release = self._target(command.release_id)
        if release is None:
            missing = (f"There is no release #{command.release_id}."
                       if command.release_id is not None else "No release has run yet.")
            return blocks.note_message(missing)
        return blocks.parent_message(release)

    async def _status(self, command: Command, reply: Reply) -> None:
        await reply(self.status_message(command))

    async def _log(self, command: Command, reply: Reply) -> None:
        environment = self.settings.ENVIRONMENT
        releases = self.store.release_summaries(command.limit or LOG_DEFAULT, environment)
        links = await thread_links(self.chat, releases)
        await reply(blocks.release_log_message(releases, links, environment))

    async def _show(self, command: Command, reply: Reply) -> None:
        release = self.store.get_release(command.release_id or 0)
        if release is None:
            await reply(blocks.note_message(f"Release #{command.release_id} does not exist."))
            return
        link = await thread_link(self.chat, release)
        await reply(blocks.release_show_message(release, release_table(release), link))

    async def _cancel(self, command: Command, user: str, reply: Reply) -> None:
        if command.release_id is not None:
            release = self.store.get_release(command.release_id)
        else:
            release = self.store.active_release(self.settings.ENVIRONMENT)
        if release is None or release.id is None:
            await reply(blocks.note_message("Nothing to cancel: no release is running."))
            return
        cancelled = await self.engine.cancel(release.id, user, command.reason)
        await reply(blocks.note_message(f":no_entry_sign: Release #{cancelled.id} is "
                                        f"{cancelled.status.value}."))

    def _target(self, release_id: int | None) -> Release | None:
        if release_id is not None:
            return self.store.get_release(release_id)
        return (self.store.active_release(self.settings.ENVIRONMENT)
                or self.store.latest_release(self.settings.ENVIRONMENT))


def plan_heading(engine: Engine, ref: str) -> str:
    return f"*Dry run: release of `{ref}` to {engine.settings.ENVIRONMENT}* (nothing was changed)"


def plan_lines(engine: Engine) -> list[str]:
    """The dry-run plan after its heading: every step, what it would do, what would be skipped,
    and the tally."""
    lines: list[str] = []
    phase = None
    skipped = refused = 0
    plan = engine.plan()
    for planned in plan:
        if planned.phase != phase:
            phase = planned.phase
            together = " (these run at the same time)" if planned.concurrent else ""
            lines.append(f"*{phase.capitalize()}*{together}")
        spec = engine.runbook.spec(planned.name)
        required = spec is not None and spec.always_required
        if planned.skip_reason and required:
            refused += 1
            lines.append(f"{blocks.ICONS[blocks.StepState.FAIL]} {planned.title}: required, "
                         f"cannot run ({planned.skip_reason})")
        elif planned.skip_reason:
            skipped += 1
            lines.append(f"{blocks.ICONS[blocks.StepState.SKIPPED]} {planned.title}: would be "
                         f"skipped ({planned.skip_reason})")
        else:
            lines.append(f"{blocks.ICONS[blocks.StepState.PENDING]} {planned.title}: "
                         f"{planned.description}")
    runs = len(plan) - skipped - refused
    lines.append(f"{runs} would run, {skipped} would be skipped.")
    if refused:
        lines.append(f":no_entry: {refused} required step(s) cannot run, so `/release start` "
                     "would be refused. " + readiness.RUNBOOK_HINT)
    return lines
