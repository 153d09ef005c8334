"""The `playwright` step (guide section 3): the end-to-end specs against staging.

`npx playwright test <PLAYWRIGHT_SPECS> --reporter=json` in APP_WORKSPACE against STAGING_URL,
with Debian's Chromium; passed and failed tests, and the failures' error lines.
"""

from __future__ import annotations

import tempfile
from typing import Any

from bot.providers.playwright import PlaywrightReport, parse_output, parse_report
from bot.providers.shell import CommandResult, child_env, elapsed_progress, run_command
from bot.providers.tools import resolve_tool
from bot.providers.workspace_files import LeftoverGuard, leave_as_found
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.workspace import with_leftovers
from bot.wording import plural


def _playwright_details(report: PlaywrightReport) -> str:
    lines: list[str] = []
    if report.passed:
        lines.append("*Passed*")
        lines += [f"• {t.title}" + (" (flaky)" if t.status == "flaky" else "") for t in report.passed]
    if report.failed:
        lines.append("*Failed*")
        for test in report.failed:
            lines.append(f"• {test.title}")
            if test.errors:
                lines.append("```\n" + "\n".join(test.errors) + "\n```")
    skipped = [t for t in report.tests if t.status == "skipped"]
    if skipped:
        lines.append("*Skipped*")
        lines += [f"• {t.title}" for t in skipped]
    if report.errors:
        lines.append("*Errors outside the tests*")
        lines.append("```\n" + "\n".join(report.errors) + "\n```")
    return "\n".join(lines)


async def playwright(ctx: StepContext) -> StepResult:
    """Run the PWA spec (and any other configured specs) against staging."""
    settings = ctx.settings
    assert settings.APP_WORKSPACE and settings.STAGING_URL
    npx = resolve_tool("npx", settings) or "npx"
    specs = [str(s) for s in ctx.option("specs", settings.PLAYWRIGHT_SPECS)]
    extra = {"PLAYWRIGHT_BASE_URL": settings.STAGING_URL}
    chromium = settings.PLAYWRIGHT_CHROMIUM_PATH or resolve_tool("chromium", settings)
    if chromium:
        extra["PLAYWRIGHT_CHROMIUM_PATH"] = chromium
    # With CI set, the app's webServer block refuses to reuse a running server.
    env = child_env(extra, drop=("CI",))
    timeout = settings.COMMAND_TIMEOUT_SECONDS
    label = f"Running Playwright ({', '.join(specs) or 'all specs'}) against {settings.STAGING_URL}"
    try:
        result, leftovers = await _run_playwright(ctx, [npx, "playwright", "test", *specs], env,
                                                  label)
    except OSError as exc:
        return StepResult.fail(f"Could not start Playwright in {settings.APP_WORKSPACE}: "
                               f"{exc.strerror or exc}")
    return with_leftovers(_playwright_result(result, specs, timeout), leftovers)


async def _run_playwright(ctx: StepContext, args: list[str], env: dict[str, str], label: str
                          ) -> tuple[CommandResult, LeftoverGuard]:
    """Run Playwright with its output (`test-results/`, reports) in a temporary directory.

    The app's config writes `test-results/` into the checkout by default, which the next
    release would find as local changes; `--output` and the report directories point elsewhere,
    and whatever still lands in the checkout is tidied by `leave_as_found`.
    """
    settings = ctx.settings
    assert settings.APP_WORKSPACE
    with tempfile.TemporaryDirectory(prefix="release-bot-playwright-") as scratch:
        env = {**env, "PLAYWRIGHT_HTML_OUTPUT_DIR": f"{scratch}/html-report",
               "PLAYWRIGHT_HTML_REPORT": f"{scratch}/html-report",
               "PLAYWRIGHT_BLOB_OUTPUT_DIR": f"{scratch}/blob-report"}
        full = [*args, "--reporter=json", f"--output={scratch}/test-results"]
        async with leave_as_found(settings.APP_WORKSPACE) as leftovers, \
                elapsed_progress(ctx.progress, label):
            result = await run_command(full, cwd=settings.APP_WORKSPACE, env=env,
                                       timeout=settings.COMMAND_TIMEOUT_SECONDS, redact=ctx.redact)
    return result, leftovers


def _playwright_result(result: CommandResult, specs: list[str], timeout: float) -> StepResult:
    """The step's verdict from Playwright's exit and JSON report."""
    if result.timed_out:
        return StepResult.fail(f"Playwright did not finish within {timeout:g}s",
                               output_tail=result.tail(30))
    raw = parse_output(result.stdout)
    if raw is None:
        return StepResult.fail(f"Playwright exited {result.returncode} without a JSON report "
                               "(configuration or install problem; see the output)",
                               output_tail=result.tail(30))
    report = parse_report(raw)
    details = _playwright_details(report)
    data: dict[str, Any] = {
        "expected": report.expected,
        "unexpected": report.unexpected,
        "skipped": report.skipped,
        "flaky": report.flaky,
        "passed": [t.title for t in report.passed],
        "failed": [t.title for t in report.failed],
        "specs": specs,
    }
    ran = report.expected + report.unexpected + report.flaky
    counts = f"{report.expected} passed, {report.unexpected} failed"
    if report.flaky:
        counts += f", {report.flaky} flaky"
    if report.skipped:
        counts += f", {report.skipped} skipped"
    if report.unexpected:
        first = report.failed[0] if report.failed else None
        reason = f": {first.title} — {first.errors[0]}" if first and first.errors else ""
        return StepResult.fail(f"Playwright: {report.unexpected} of {plural(ran, 'test')} failed{reason}",
                               details=details, data=data, output_tail=result.tail(20))
    if report.errors:
        return StepResult.fail(f"Playwright reported an error outside the tests: {report.errors[0]}",
                               details=details, data=data, output_tail=result.tail(20))
    if ran == 0:
        return StepResult.fail(f"No Playwright tests ran for {', '.join(specs) or 'the suite'} "
                               f"({counts})", details=details, data=data,
                               output_tail=result.tail(20))
    if not result.ok:
        return StepResult.fail(f"Playwright exited {result.returncode} although {counts}",
                               details=details, data=data, output_tail=result.tail(20))
    manual = f"Playwright {', '.join(specs)}: {counts}"
    if report.flaky:
        return StepResult.warn(f"Playwright: {counts} (flaky tests passed only on retry)",
                               details=details, data=data, fields={"Automated Checks": manual})
    return StepResult.ok(f"Playwright: {counts}", details=details, data=data,
                         fields={"Automated Checks": manual})


STEP = StepDef(
    name="playwright",
    title="Playwright against staging",
    requires=("APP_WORKSPACE", "STAGING_URL"),
    tools=("npx",),
    timeout=None,
    describe="npx playwright test PLAYWRIGHT_SPECS --reporter=json in APP_WORKSPACE with "
             "PLAYWRIGHT_BASE_URL=STAGING_URL and Debian's Chromium; lists passed and failed tests.",
    find_tool=resolve_tool,
    run=playwright,
)
