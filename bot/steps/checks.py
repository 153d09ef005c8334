"""The guide's "Run `npm run test` and `npm run lint`", on the release's own code.

Before running either, `APP_WORKSPACE` is brought to the release ref: `git fetch`, then a
detached checkout of the ref (refused when the workspace has local changes), and `npm ci`
when the lockfile changed since the last install. The tested SHA is recorded.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from bot.config import Settings
from bot.providers.shell import CommandResult, child_env, run_command
from bot.redact import Redactor
from bot.runbook.model import StepResult
from bot.runbook.registry import StepContext, step

INSTALL_STAMP = ".release-bot-lock-hash"
FAILING_TEST = re.compile(
    r"^\s*(?:not ok \d+ - (.+)|✖ (.+?)(?: \(\d+(?:\.\d+)?m?s\))?$|FAIL\s+(.+)|●\s+(.+))"
)
LINT_LINE = re.compile(r"^\s*(\S+:\d+:\d+\s+(?:error|warning)\s+.+)$|^\s*(\d+:\d+\s+(?:error|warning)\s+.+)$")


class WorkspaceError(Exception):
    """The workspace cannot be brought to the release ref; the message says why."""


async def _git(args: list[str], cwd: Path, settings: Settings, redact: Redactor) -> CommandResult:
    env = child_env({"GIT_TERMINAL_PROMPT": "0"})
    return await run_command(["git", *args], cwd=cwd, env=env,
                             timeout=settings.COMMAND_TIMEOUT_SECONDS, redact=redact)


async def prepare_workspace(ctx: StepContext) -> dict[str, str | bool]:
    """Fetch and check out the release ref in APP_WORKSPACE; install deps if the lockfile changed.

    Idempotent: a second call for the same release finds the work done and returns the record.
    """
    done = ctx.release.data.get("workspace")
    workspace = Path(ctx.settings.APP_WORKSPACE or "")
    if isinstance(done, dict) and done.get("ref") == ctx.release.ref:
        head = await _git(["rev-parse", "HEAD"], workspace, ctx.settings, ctx.redact)
        if head.ok and head.stdout.strip() == done.get("sha"):
            return done
    if not (workspace / ".git").exists():
        raise WorkspaceError(f"APP_WORKSPACE {workspace} is not a git checkout")
    status = await _git(["status", "--porcelain", "--untracked-files=normal"], workspace,
                        ctx.settings, ctx.redact)
    if not status.ok:
        raise WorkspaceError(f"git status failed: {status.tail(5)}")
    if status.stdout.strip():
        changed = ", ".join(line[3:] for line in status.stdout.splitlines()[:5])
        raise WorkspaceError(
            f"APP_WORKSPACE has local changes ({changed}); commit or discard them first"
        )
    await ctx.progress("git fetch")
    fetch = await _git(["fetch", "--prune", "--tags", "origin"], workspace, ctx.settings, ctx.redact)
    if not fetch.ok:
        raise WorkspaceError(f"git fetch failed: {fetch.tail(5)}")
    sha = await _resolve(ctx.release.ref, workspace, ctx)
    checkout = await _git(["checkout", "--detach", "--quiet", sha], workspace, ctx.settings, ctx.redact)
    if not checkout.ok:
        raise WorkspaceError(f"git checkout {sha[:12]} failed: {checkout.tail(5)}")
    installed = await _install_if_lock_changed(workspace, ctx)
    record: dict[str, str | bool] = {"ref": ctx.release.ref, "sha": sha, "installed": installed}
    ctx.release.data["workspace"] = record
    return record


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
    await ctx.progress("npm ci (lockfile changed)")
    result = await run_command(["npm", "ci", "--no-audit", "--no-fund", *ctx.settings.NPM_CI_ARGS],
                               cwd=workspace, env=child_env(),
                               timeout=ctx.settings.COMMAND_TIMEOUT_SECONDS, redact=ctx.redact)
    if not result.ok:
        raise WorkspaceError(f"npm ci failed (exit {result.returncode}): {result.tail(8)}")
    stamp.parent.mkdir(exist_ok=True)
    stamp.write_text(digest)
    return True


def _captures(output: str, pattern: re.Pattern[str]) -> list[str]:
    """For each line `pattern` matches, its first non-empty group, stripped."""
    found: list[str] = []
    for line in output.splitlines():
        match = pattern.match(line)
        if match:
            found.append(next(g for g in match.groups() if g).strip())
    return found


def failing_tests(output: str) -> list[str]:
    """Names of failing tests in node:test (TAP or spec), Jest or Vitest output."""
    names: list[str] = []
    for name in _captures(output, FAILING_TEST):
        if name not in names and not name.startswith("failing tests"):
            names.append(name)
    return names


def lint_errors(output: str) -> list[str]:
    """ESLint-style `file:line:col  error  message  rule` lines (or stylish `line:col` lines)."""
    return _captures(output, LINT_LINE)


async def _npm_script(ctx: StepContext, script: str) -> tuple[CommandResult, dict[str, str]] | StepResult:
    """Run `npm run <script>` at the release ref: (result, data), or the failure that stopped it."""
    try:
        workspace = await prepare_workspace(ctx)
    except WorkspaceError as exc:
        return StepResult.fail(str(exc))
    await ctx.progress(f"npm run {script} at {str(workspace['sha'])[:8]}")
    env = child_env()
    env.setdefault("CI", "true")  # test runners: no watch mode, no prompts
    result = await run_command(["npm", "run", script], cwd=ctx.settings.APP_WORKSPACE, env=env,
                               timeout=ctx.settings.COMMAND_TIMEOUT_SECONDS, redact=ctx.redact)
    data = {"tested_sha": str(workspace.get("sha", ""))}
    ctx.release.git_sha = ctx.release.git_sha or data["tested_sha"] or None
    if result.timed_out:
        return StepResult.fail(
            f"npm run {script} timed out after {ctx.settings.COMMAND_TIMEOUT_SECONDS:g}s",
            output_tail=result.tail(), data=data)
    return result, data


@step("tests", title="Tests (npm run test)", phase="prepare", requires=("APP_WORKSPACE",),
      tools=("git", "npm"), timeout=None,
      describe="Check out the release ref in APP_WORKSPACE and run `npm run test`.")
async def run_tests(ctx: StepContext) -> StepResult:
    """`npm run test` on the release's code; the exit code decides."""
    ran = await _npm_script(ctx, "test")
    if isinstance(ran, StepResult):
        return ran
    result, data = ran
    sha = data["tested_sha"][:8]
    if not result.ok:
        names = failing_tests(result.stdout + "\n" + result.stderr)
        details = "Failing tests:\n" + "\n".join(f"• {n}" for n in names[:20]) if names else ""
        return StepResult.fail(f"npm run test failed at {sha} (exit {result.returncode}, "
                               f"{len(names)} failing)", details=details,
                               output_tail=result.tail(25), data={**data, "failing": names})
    passed = _count(result.stdout, r"^# pass (\d+)") or _count(result.stdout, r"ℹ pass (\d+)")
    counted = f", {passed} passed" if passed is not None else ""
    fields = {"Automated Checks": f"npm run test passed at {sha}"}
    return StepResult.ok(f"npm run test passed at {sha}{counted}", data=data, fields=fields)


@step("lint", title="Lint (npm run lint)", phase="prepare", requires=("APP_WORKSPACE",),
      tools=("git", "npm"), timeout=None,
      describe="Run `npm run lint` in APP_WORKSPACE at the release ref.")
async def run_lint(ctx: StepContext) -> StepResult:
    """`npm run lint` on the release's code; the exit code decides."""
    ran = await _npm_script(ctx, "lint")
    if isinstance(ran, StepResult):
        return ran
    result, data = ran
    sha = data["tested_sha"][:8]
    errors = lint_errors(result.stdout + "\n" + result.stderr)
    if not result.ok:
        details = "```\n" + "\n".join(errors[:30]) + "\n```" if errors else ""
        return StepResult.fail(f"npm run lint failed at {sha} ({len(errors)} problems)",
                               details=details, output_tail=result.tail(25),
                               data={**data, "problems": errors[:50]})
    return StepResult.ok(f"npm run lint passed at {sha}", data=data,
                         fields={"Automated Checks": f"npm run lint passed at {sha}"})


def _count(text: str, pattern: str) -> int | None:
    match = re.search(pattern, text, re.MULTILINE)
    return int(match.group(1)) if match else None
