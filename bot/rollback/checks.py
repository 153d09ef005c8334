"""The checks after a deployment revert: the smoke and health steps, re-run against staging
through the engine's one step runner (skip reason, timeout, a crash as a failure, redaction)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.runbook.model import Release, StepResult
from bot.runbook.runner import StepRunner


async def run_checks(names: Iterable[str], release: Release,
                     runner: StepRunner) -> tuple[list[tuple[str, StepResult]], dict[str, str]]:
    """Run each named step the catalog has: ([(name, result)], {name: title})."""
    results: list[tuple[str, StepResult]] = []
    titles: dict[str, str] = {}
    for name in names:
        sdef = runner.steps.get(name)
        if sdef is None:
            continue
        titles[name] = sdef.title
        results.append((name, await runner.check(release, name)))
    return results, titles
