"""The one step runner: look a step up in the catalog, run it with a timeout, and turn whatever
happens into a redacted `StepResult`.

The engine runs a release's steps through it; `check()` runs a single named step against a
release outside a release run (the rollback's smoke and health checks after a revert).
A step that raises `StopRelease` (the engine's "stop now" signals) or is cancelled is not
turned into a result: that exception goes on to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.config import Settings
from bot.redact import Redactor
from bot.runbook.model import Decision, Gate, Release, StepResult
from bot.runbook.step import StepContext, StepDef

log = logging.getLogger(__name__)
Progress = Callable[[str], Awaitable[None]]
Ask = Callable[[Gate], Awaitable[Decision]]


class StopRelease(Exception):
    """Raised through a running step to stop its release; never turned into a step result."""


async def _no_progress(text: str) -> None:
    return None


class StepRunner:
    """Runs steps of the catalog `steps` with `settings`, masking secrets with `redactor`."""

    def __init__(self, *, settings: Settings, steps: Mapping[str, StepDef],
                 redactor: Redactor) -> None:
        self.settings = settings
        self.steps = steps
        self.redact = redactor

    def skip_reason(self, name: str, skip: str | None = None) -> str | None:
        """Why step `name` cannot run here (`skip`: the runbook's own reason wins), or None."""
        return skip or self.steps[name].skip_reason(self.settings)

    async def run(self, release: Release, name: str, *, options: dict[str, Any] | None = None,
                  timeout: float | None = None, progress: Progress = _no_progress,
                  ask: Ask | None = None) -> StepResult:
        """Run step `name` of `release` (its own timeout unless `timeout` is given): the step's
        result, a failure for a timeout or a crash; redacted."""
        sdef = self.steps[name]
        ctx = StepContext(settings=self.settings, release=release, step_name=name,
                          options=options or {}, redact=self.redact, progress=progress,
                          ask=ask or _refuse_questions(name))
        limit = timeout if timeout is not None else sdef.timeout
        try:
            async with asyncio.timeout(limit):
                result = await sdef.run(ctx)
            if not isinstance(result, StepResult):
                raise TypeError(f"step returned {type(result).__name__}, not a StepResult")
        except TimeoutError:
            result = StepResult.fail(f"Timed out after {limit:g}s")
        except (asyncio.CancelledError, StopRelease):
            raise
        except Exception as exc:  # a crashing step fails its release, never the bot
            log.exception("step %s crashed", name)
            tail = "".join(traceback.format_exception(exc)[-3:])
            result = StepResult.fail(f"Crashed: {type(exc).__name__}: {exc}", output_tail=tail)
        return self.redacted(result)

    async def check(self, release: Release, name: str) -> StepResult:
        """Run step `name` against `release` outside a release run (no runbook options, no
        questions): skipped, with the reason, when it cannot run here."""
        reason = self.skip_reason(name)
        if reason is not None:
            return self.redacted(StepResult.skipped(f"Skipped: {reason}"))
        return await self.run(release, name)

    def redacted(self, result: StepResult) -> StepResult:
        """`result` with every secret value and token shape masked."""
        return StepResult.model_validate(self.redact.data(result.model_dump()))


def _refuse_questions(name: str) -> Ask:
    async def ask(gate: Gate) -> Decision:
        raise RuntimeError(f"step {name} asked a question outside a release run")

    return ask
