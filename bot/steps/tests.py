"""The `tests` step: the guide's "Run `npm run test`", on the release's own code.

APP_WORKSPACE is brought to the release ref first (`bot.steps.workspace`) and the tested SHA is
recorded. Test counts come from the runner's own summary (`bot.providers.test_output`), never
guessed at; the exit code decides.
"""

from __future__ import annotations

from bot.providers.shell import CommandResult
from bot.providers.test_output import TestRun, parse_test_output
from bot.providers.tools import resolve_tool
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.workspace import npm_script, with_leftovers

LISTED_FAILURES = 20


def _failures_text(run: TestRun) -> str:
    lines = ["*Failing tests*"] if run.failures else []
    for failure in run.failures[:LISTED_FAILURES]:
        lines.append(f"• {failure.name}")
        if failure.error:
            lines.append(f"    `{failure.error.replace('`', chr(39))}`")
    if len(run.failures) > LISTED_FAILURES:
        lines.append(f"… and {len(run.failures) - LISTED_FAILURES} more")
    return "\n".join(lines)


def _test_data(run: TestRun, data: dict[str, str]) -> dict[str, object]:
    return {**data, "runner": run.runner, "failed": run.failed, "passed": run.passed,
            "skipped": run.skipped, "total": run.total,
            "failing": [f.name for f in run.failures],
            "failures": [{"name": f.name, "error": f.error} for f in run.failures[:50]]}


def _failed_tests(result: CommandResult, run: TestRun, sha: str) -> str:
    if run.has_totals:
        counted = run.counts()
        first = run.failures[0] if run.failures else None
        lead = f": {first.name} — {first.error}" if first and first.error and run.failed == 1 else ""
        return f"npm run test failed at {sha} ({counted}){lead}"
    named = f"; {len(run.failures)} failing test(s) named in the output" if run.failures else ""
    return (f"npm run test failed at {sha} (exit {result.returncode}, no test summary in the "
            f"output{named})")


async def run_tests(ctx: StepContext) -> StepResult:
    """`npm run test` on the release's code; the exit code decides, the runner's summary counts."""
    ran = await npm_script(ctx, "test")
    if isinstance(ran, StepResult):
        return ran
    result, data, leftovers = ran
    sha = data["tested_sha"][:8]
    run = parse_test_output(result.stdout + "\n" + result.stderr)
    if not result.ok:
        return with_leftovers(StepResult.fail(
            _failed_tests(result, run, sha), details=_failures_text(run),
            output_tail=result.tail(25), data=_test_data(run, data)), leftovers)
    counted = f" ({run.counts()})" if run.has_totals else ""
    fields = {"Automated Checks": f"npm run test passed at {sha}{counted}"}
    return with_leftovers(StepResult.ok(f"npm run test passed at {sha}{counted}",
                                        data=_test_data(run, data), fields=fields), leftovers)


STEP = StepDef(
    name="tests",
    title="Tests (npm run test)",
    requires=("APP_WORKSPACE",),
    tools=("git", "npm"),
    timeout=None,
    describe="Check out the release ref in APP_WORKSPACE and run `npm run test`.",
    find_tool=resolve_tool,
    run=run_tests,
)
