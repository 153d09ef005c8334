"""The guide's "Run `npm run test` and `npm run lint`", on the release's own code.

Before running either, `APP_WORKSPACE` is brought to the release ref: `git fetch`, then a
detached checkout of the ref (refused when the workspace has local changes), and `npm ci`
when the lockfile changed since the last install. The tested SHA is recorded.

The runners' output is read, not guessed at: test counts come from the runner's own summary
(`bot.providers.test_output`), lint problems from ESLint's or `next lint`'s listing
(`bot.providers.eslint_output`). Children run with colour off, report their elapsed time while
they run, and what they write into the checkout is tidied (`bot.providers.workspace_files`).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from bot.config import Settings
from bot.providers.eslint_output import LintReport, parse_lint_output
from bot.providers.npm_output import install_script_failure
from bot.providers.shell import CommandResult, child_env, elapsed_progress, run_command
from bot.providers.test_output import TestRun, parse_test_output
from bot.providers.workspace_files import TOOL_OUTPUT_DIRS, LeftoverGuard, leave_as_found
from bot.redact import Redactor
from bot.runbook.model import Outcome, StepResult
from bot.runbook.registry import StepContext, step

INSTALL_STAMP = ".release-bot-lock-hash"
LISTED_PROBLEMS = 30
LISTED_FAILURES = 20
# For the app's scripts: no watch mode or prompts (CI), no telemetry notice from Next.js.
SCRIPT_ENV = {"CI": "true", "NEXT_TELEMETRY_DISABLED": "1"}


class WorkspaceError(Exception):
    """The workspace cannot be brought to the release ref; the message says why."""


async def _git(args: list[str], cwd: Path, settings: Settings, redact: Redactor) -> CommandResult:
    env = child_env({"GIT_TERMINAL_PROMPT": "0"})
    return await run_command(["git", *args], cwd=cwd, env=env,
                             timeout=settings.COMMAND_TIMEOUT_SECONDS, redact=redact)


async def prepare_workspace(ctx: StepContext, *, install: bool = True) -> dict[str, str | bool]:
    """Fetch and check out the release ref in APP_WORKSPACE; install deps if the lockfile changed.

    With `install=False` (reading files only: the migration review) `npm ci` is left for a later
    step. Idempotent: a second call for the same release finds the work done and returns the record.
    """
    done = ctx.release.data.get("workspace")
    workspace = Path(ctx.settings.APP_WORKSPACE or "")
    if isinstance(done, dict) and done.get("ref") == ctx.release.ref:
        head = await _git(["rev-parse", "HEAD"], workspace, ctx.settings, ctx.redact)
        if head.ok and head.stdout.strip() == done.get("sha"):
            if install and not done.get("deps"):
                done["installed"] = await _install_if_lock_changed(workspace, ctx)
                done["deps"] = True
            return done
    if not (workspace / ".git").exists():
        raise WorkspaceError(f"APP_WORKSPACE {workspace} is not a git checkout")
    status = await _git(["status", "--porcelain", "--untracked-files=normal"], workspace,
                        ctx.settings, ctx.redact)
    if not status.ok:
        raise WorkspaceError(f"git status failed: {status.tail(5)}")
    if status.stdout.strip():
        raise WorkspaceError(_local_changes(status.stdout))
    await ctx.progress("git fetch")
    fetch = await _git(["fetch", "--prune", "--tags", "origin"], workspace, ctx.settings, ctx.redact)
    if not fetch.ok:
        raise WorkspaceError(f"git fetch failed: {fetch.tail(5)}")
    sha = await _resolve(ctx.release.ref, workspace, ctx)
    checkout = await _git(["checkout", "--detach", "--quiet", sha], workspace, ctx.settings, ctx.redact)
    if not checkout.ok:
        raise WorkspaceError(f"git checkout {sha[:12]} failed: {checkout.tail(5)}")
    installed = await _install_if_lock_changed(workspace, ctx) if install else False
    record: dict[str, str | bool] = {"ref": ctx.release.ref, "sha": sha, "installed": installed,
                                     "deps": install}
    ctx.release.data["workspace"] = record
    return record


def _local_changes(porcelain: str) -> str:
    """Why the workspace is refused, with a hint when only tool output is in the way."""
    entries = porcelain.splitlines()
    changed = ", ".join(line[3:] for line in entries[:5])
    text = f"APP_WORKSPACE has local changes ({changed}); commit or discard them first"
    tops = {line[3:].split("/", 1)[0] for line in entries}
    if all(line.startswith("?? ") for line in entries) and tops <= TOOL_OUTPUT_DIRS:
        text += (" (this is test-tool output, e.g. from a Playwright run by hand: delete it, or add "
                 "it to the app's .gitignore)")
    return text


async def _resolve(ref: str, workspace: Path, ctx: StepContext) -> str:
    if ref.startswith("-"):
        raise WorkspaceError(f"ref {ref!r} is not a valid git ref")
    for candidate in (f"origin/{ref}", ref):
        found = await _git(["rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], workspace,
                           ctx.settings, ctx.redact)
        if found.ok and found.stdout.strip():
            return found.stdout.strip()
    raise WorkspaceError(f"ref {ref!r} was not found in origin (branch, tag or SHA)")


async def _install_if_lock_changed(workspace: Path, ctx: StepContext) -> bool:
    lock = workspace / "package-lock.json"
    if not lock.exists():
        return False
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = workspace / "node_modules" / INSTALL_STAMP
    if stamp.exists() and stamp.read_text().strip() == digest:
        return False
    args = ["npm", "ci", "--no-audit", "--no-fund", *ctx.settings.NPM_CI_ARGS]
    async with elapsed_progress(ctx.progress, "npm ci (lockfile changed)"):
        result = await run_command(args, cwd=workspace, env=child_env(),
                                   timeout=ctx.settings.COMMAND_TIMEOUT_SECONDS, redact=ctx.redact)
    if result.timed_out:
        raise WorkspaceError(f"npm ci did not finish within {ctx.settings.COMMAND_TIMEOUT_SECONDS:g}s: "
                             f"{result.tail(8)}")
    if not result.ok:
        raise WorkspaceError(npm_ci_failure(result, ctx.settings.NPM_CI_ARGS))
    stamp.parent.mkdir(exist_ok=True)
    stamp.write_text(digest)
    return True


def npm_ci_failure(result: CommandResult, ci_args: list[str]) -> str:
    """Why `npm ci` failed, naming the install script that broke and what NPM_CI_ARGS can do."""
    failure = install_script_failure(result.stdout + "\n" + result.stderr)
    if failure is None:
        return f"npm ci failed (exit {result.returncode}): {result.tail(8)}"
    text = (f"npm ci failed: the install script of `{failure.package}` "
            f"(`{failure.script}`) exited with an error")
    if failure.reason:
        text += f": {failure.reason}"
    if "--ignore-scripts" not in ci_args:
        need = "needs the network, which this machine may not reach" if failure.network else "failed"
        text += (f". The script {need}; set NPM_CI_ARGS=--ignore-scripts to install without "
                 "install scripts (the Supabase CLI and Playwright come from .tools/ and settings)")
    return text


async def _npm_script(ctx: StepContext, script: str
                      ) -> tuple[CommandResult, dict[str, str], LeftoverGuard] | StepResult:
    """Run `npm run <script>` at the release ref: (result, data, leftovers), or the failure."""
    try:
        workspace = await prepare_workspace(ctx)
    except WorkspaceError as exc:
        return StepResult.fail(str(exc))
    cwd = Path(ctx.settings.APP_WORKSPACE or "")
    label = f"npm run {script} at {str(workspace['sha'])[:8]}"
    async with leave_as_found(cwd) as leftovers, elapsed_progress(ctx.progress, label):
        result = await run_command(["npm", "run", script], cwd=cwd, env=child_env(SCRIPT_ENV),
                                   timeout=ctx.settings.COMMAND_TIMEOUT_SECONDS, redact=ctx.redact)
    data = {"tested_sha": str(workspace.get("sha", ""))}
    ctx.release.git_sha = ctx.release.git_sha or data["tested_sha"] or None
    if result.timed_out:
        return StepResult.fail(
            f"npm run {script} timed out after {ctx.settings.COMMAND_TIMEOUT_SECONDS:g}s",
            output_tail=result.tail(), data=data)
    return result, data, leftovers


def with_leftovers(result: StepResult, leftovers: LeftoverGuard) -> StepResult:
    """`result` with a note on what the run left in the workspace; a pass becomes a warning
    when the run left files the bot would not delete (the next release would be refused)."""
    note = leftovers.note()
    if not note:
        return result
    details = f"{result.details}\n{note}".strip()
    data = {**result.data, "removed_from_workspace": leftovers.removed,
            "left_in_workspace": leftovers.kept}
    outcome = Outcome.WARN if leftovers.kept and result.outcome == Outcome.OK else result.outcome
    return result.model_copy(update={"details": details, "data": data, "outcome": outcome})


# --- tests -------------------------------------------------------------------------------------


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


@step("tests", title="Tests (npm run test)", phase="prepare", requires=("APP_WORKSPACE",),
      tools=("git", "npm"), timeout=None,
      describe="Check out the release ref in APP_WORKSPACE and run `npm run test`.")
async def run_tests(ctx: StepContext) -> StepResult:
    """`npm run test` on the release's code; the exit code decides, the runner's summary counts."""
    ran = await _npm_script(ctx, "test")
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
    fields = {"Manual Tests": f"npm run test passed at {sha}{counted}"}
    return with_leftovers(StepResult.ok(f"npm run test passed at {sha}{counted}",
                                        data=_test_data(run, data), fields=fields), leftovers)


# --- lint --------------------------------------------------------------------------------------


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


@step("lint", title="Lint (npm run lint)", phase="prepare", requires=("APP_WORKSPACE",),
      tools=("git", "npm"), timeout=None,
      describe="Run `npm run lint` in APP_WORKSPACE at the release ref.")
async def run_lint(ctx: StepContext) -> StepResult:
    """`npm run lint` on the release's code; the exit code decides, ESLint's listing explains."""
    ran = await _npm_script(ctx, "lint")
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
                                        fields={"Manual Tests": f"npm run lint passed at {sha}"}),
                          leftovers)
