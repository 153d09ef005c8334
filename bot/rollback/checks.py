"""The checks after a deployment revert: the smoke and health steps, re-run against staging.

`run_checks` is the one door to the step runner here; it keeps the runner's logic of before
(skip reason, timeout, a crash as a failure, results redacted) until the engine's shared step
runner takes its place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from bot.config import Settings
from bot.redact import Redactor
from bot.runbook.model import Decision, Gate, Release, StepResult
from bot.runbook.registry import REGISTRY, StepContext, StepDef, load_steps


async def run_checks(names: Iterable[str], release: Release, settings: Settings,
                     redactor: Redactor) -> tuple[list[tuple[str, StepResult]], dict[str, str]]:
    """Run each named step that exists: ([(name, result)], {name: title})."""
    load_steps()
    results: list[tuple[str, StepResult]] = []
    titles: dict[str, str] = {}
    for name in names:
        sdef = REGISTRY.get(name)
        if sdef is None:
            continue
        titles[name] = sdef.title
        reason = sdef.skip_reason(settings)
        if reason is not None:
            results.append((name, StepResult.skipped(f"Skipped: {reason}")))
            continue
        result = await _run_step(sdef, release, settings, redactor)
        results.append((name, StepResult.model_validate(redactor.data(result.model_dump()))))
    return results, titles


async def _run_step(sdef: StepDef, release: Release, settings: Settings,
                    redactor: Redactor) -> StepResult:
    """One step with its timeout; what it raises becomes its failure."""

    async def progress(text: str) -> None:
        return None

    async def ask(gate: Gate) -> Decision:
        raise RuntimeError("a check asked a question during a rollback")

    ctx = StepContext(settings=settings, release=release, step_name=sdef.name, options={},
                      redact=redactor, progress=progress, ask=ask)
    try:
        if sdef.timeout:
            async with asyncio.timeout(sdef.timeout):
                return await sdef.run(ctx)
        return await sdef.run(ctx)
    except TimeoutError:
        return StepResult.fail(f"Timed out after {sdef.timeout:g}s")
    except Exception as exc:
        return StepResult.fail(f"Crashed: {type(exc).__name__}: {exc}")
