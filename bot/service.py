"""What `/release …` does, independent of where it was typed (Slack or the console chat).

Handlers parse and authorize (cheap, before acknowledging), then call `ReleaseService.run()`
with a `reply` callable that answers the requester alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.chat import blocks
from bot.chat.blocks import Message
from bot.commands import USAGE, Command
from bot.config import Settings
from bot.providers.refs import ref_source
from bot.runbook import readiness
from bot.runbook.engine import Engine, EngineError
from bot.runbook.model import Release
from bot.store import Store

log = logging.getLogger(__name__)

Reply = Callable[[Message], Awaitable[None]]
# Set by the rollback module when it is wired: (command, user, channel, reply, trigger_id)
RollbackHandler = Callable[[Command, str, str, Reply, str | None], Awaitable[None]]


class ReleaseService:
    """Runs parsed commands against the engine and the release log."""

    def __init__(self, settings: Settings, engine: Engine, store: Store) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.rollback: RollbackHandler | None = None

    def authorize(self, command: Command, user: str) -> str | None:
        """A refusal message when `user` may not run `command`, else None. No I/O."""
        if command.name in ("help", "status"):
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

    async def run(self, command: Command, *, user: str, channel: str, reply: Reply,
                  trigger_id: str | None = None) -> None:
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
            elif command.name == "rollback":
                if self.rollback is None:
                    await reply(blocks.note_message(":warning: Rollback is not available here."))
                else:
                    await self.rollback(command, user, channel, reply, trigger_id)
        except EngineError as exc:
            await reply(blocks.note_message(f":warning: {exc}"))

    async def _start(self, command: Command, user: str, channel: str, reply: Reply) -> None:
        ref = command.ref or self.settings.DEFAULT_REF
        if command.dry_run:
            await reply(plan_message(self.engine, ref))
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

    async def _status(self, command: Command, reply: Reply) -> None:
        release = self._target(command.release_id)
        if release is None:
            await reply(blocks.note_message("No release has run yet."))
            return
        await reply(blocks.parent_message(release))

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


def plan_message(engine: Engine, ref: str) -> Message:
    """The dry-run plan: every step, what it would do, and what would be skipped."""
    lines = [f"*Dry run: release of `{ref}` to {engine.settings.ENVIRONMENT}* (nothing was changed)"]
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
    return blocks.note_message("\n".join(lines))
