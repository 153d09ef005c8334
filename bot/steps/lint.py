"""The `lint` step: the guide's "Run `npm run lint`", on the release's own code.

APP_WORKSPACE is brought to the release ref first (`bot.steps.workspace`). Problems come from
ESLint's or `next lint`'s listing (`bot.providers.eslint_output`); the exit code decides.
"""

from __future__ import annotations

from dataclasses import replace

from bot.providers.eslint_output import LintReport, parse_lint_output
from bot.providers.tools import resolve_tool
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.workspace import npm_script, with_leftovers

LISTED_PROBLEMS = 30


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _lint_counts(report: LintReport) -> str:
    files = len(report.files)
    where = f" in {_plural(files, 'file')}" if files else ""
    return f"{_plural(report.errors, 'error')}, {_plural(report.warnings, 'warning')}{where}"


def _lint_details(report: LintReport) -> str:
    ordered = sorted(report.problems, key=lambda p: p.severity != "error")
    lines = [p.as_text().replace("`", "'") for p in ordered[:LISTED_PROBLEMS]]
    if len(ordered) > LISTED_PROBLEMS:
        lines.append(f"… and {len(ordered) - LISTED_PROBLEMS} more")
    return "```\n" + "\n".join(lines) + "\n```" if lines else ""


def _relative(report: LintReport, workspace: str) -> LintReport:
    """Paths relative to the workspace (plain eslint prints absolute ones)."""
    prefix = workspace.rstrip("/") + "/"
    problems = [replace(p, file=p.file.removeprefix(prefix)) for p in report.problems]
    return LintReport(problems, report.summary_errors, report.summary_warnings)


async def run_lint(ctx: StepContext) -> StepResult:
    """`npm run lint` on the release's code; the exit code decides, ESLint's listing explains."""
    ran = await npm_script(ctx, "lint")
    if isinstance(ran, StepResult):
        return ran
    result, data, leftovers = ran
    sha = data["tested_sha"][:8]
    report = _relative(parse_lint_output(result.stdout + "\n" + result.stderr),
                       ctx.settings.APP_WORKSPACE or "")
    lint_data = {**data, "errors": report.errors, "warnings": report.warnings,
                 "problems": [p.as_data() for p in report.problems[:50]]}
    details = _lint_details(report)
    if not result.ok:
        first = next((p for p in report.problems if p.severity == "error"), None)
        lead = f"; first: {first.file}:{first.line} {first.rule}".rstrip() if first else ""
        summary = (f"npm run lint failed at {sha} ({_lint_counts(report)}{lead})" if report.problems
                   else f"npm run lint failed at {sha} (exit {result.returncode}; no ESLint "
                   "problems in the output, see the tail)")
        return with_leftovers(StepResult.fail(summary, details=details, output_tail=result.tail(25),
                                              data=lint_data), leftovers)
    noted = f" ({_lint_counts(report)})" if report.warnings else ""
    return with_leftovers(StepResult.ok(f"npm run lint passed at {sha}{noted}", details=details,
                                        data=lint_data,
                                        fields={"Automated Checks": f"npm run lint passed at {sha}"}),
                          leftovers)


STEP = StepDef(
    name="lint",
    title="Lint (npm run lint)",
    requires=("APP_WORKSPACE",),
    tools=("git", "npm"),
    timeout=None,
    describe="Run `npm run lint` in APP_WORKSPACE at the release ref.",
    find_tool=resolve_tool,
    run=run_lint,
)
