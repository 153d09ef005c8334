"""The release's code in APP_WORKSPACE, for the steps that run it (tests, lint, playwright) or
read it (the migration steps).

`prepare_workspace` brings APP_WORKSPACE to the release ref: `git fetch`, then a detached checkout
of the ref (refused when the workspace has local changes), and `npm ci` when the lockfile changed
since the last install. `npm_script` runs `npm run <script>` there with colour off, reporting its
elapsed time; `with_leftovers` notes what a run left in the checkout
(`bot.providers.workspace_files`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bot.config import Settings
from bot.providers.npm_output import install_script_failure
from bot.providers.shell import CommandResult, child_env, elapsed_progress, run_command
from bot.providers.workspace_files import TOOL_OUTPUT_DIRS, LeftoverGuard, leave_as_found
from bot.redact import Redactor
from bot.runbook.model import Outcome, StepResult
from bot.runbook.step import StepContext

INSTALL_STAMP = ".release-bot-lock-hash"


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


async def npm_script(ctx: StepContext, script: str
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
