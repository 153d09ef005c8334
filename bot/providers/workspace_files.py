"""Leaving APP_WORKSPACE as a run found it.

Tools are first pointed outside the checkout (Playwright's `--output`); this module is the guard
behind that. `LeftoverGuard` notes the untracked files before a run (`git status`), and after it
removes only files that are new *and* under a directory tools write by convention
(`test-results/`, `playwright-report/`, `coverage/`, ...). Anything else new is reported, never
deleted: it may be a person's work. Tracked files are never touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.providers.shell import child_env, run_command

TOOL_OUTPUT_DIRS = frozenset({"test-results", "playwright-report", "blob-report", "coverage",
                              ".nyc_output"})
LISTED = 5


async def untracked_files(workspace: Path) -> set[str] | None:
    """Untracked, not ignored files in `workspace` (paths relative to it); None when not a checkout."""
    if not (workspace / ".git").exists():
        return None
    result = await run_command(
        ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"], cwd=workspace,
        env=child_env({"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}), timeout=120)
    if not result.ok:
        return None
    return {entry[3:] for entry in result.stdout.split("\0") if entry.startswith("?? ")}


def _inside(workspace: Path, rel: str) -> Path | None:
    path = workspace / rel
    try:
        path.parent.resolve().relative_to(workspace.resolve())
    except ValueError:
        return None
    return path


def _remove(workspace: Path, rel: str) -> bool:
    """Delete one file (a symlink itself, never its target) and the directories it leaves empty."""
    path = _inside(workspace, rel)
    if path is None:
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    parent = path.parent
    top = workspace / Path(rel).parts[0]
    while parent != workspace and parent.is_relative_to(top):
        with contextlib.suppress(OSError):
            parent.rmdir()  # only succeeds when empty
        parent = parent.parent
    return True


def _listed(paths: list[str]) -> str:
    more = f" and {len(paths) - LISTED} more" if len(paths) > LISTED else ""
    return ", ".join(paths[:LISTED]) + more


@dataclass
class LeftoverGuard:
    """What one run left behind in the workspace: removed tool output, and other new files kept."""

    workspace: Path
    before: set[str] | None = None
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    async def start(self) -> None:
        """Note the untracked files present before the run."""
        self.before = await untracked_files(self.workspace)

    async def finish(self) -> None:
        """Remove new files under tool-output directories; list the other new files."""
        if self.before is None:
            return
        after = await untracked_files(self.workspace)
        for rel in sorted((after or set()) - self.before):
            if Path(rel).parts[0] in TOOL_OUTPUT_DIRS and _remove(self.workspace, rel):
                self.removed.append(rel)
            else:
                self.kept.append(rel)

    def note(self) -> str:
        """A line for the step's details ('' when the run left nothing)."""
        lines = []
        if self.removed:
            lines.append(f"Removed what the run wrote into APP_WORKSPACE: {_listed(self.removed)}")
        if self.kept:
            lines.append(f"The run left new files in APP_WORKSPACE: {_listed(self.kept)} — the next "
                         "release will find local changes until they are removed or ignored "
                         "(.gitignore)")
        return "\n".join(f"_{line}_" for line in lines)


@contextlib.asynccontextmanager
async def leave_as_found(workspace: str | Path) -> AsyncIterator[LeftoverGuard]:
    """Run the block, then tidy what it left in `workspace` (see `LeftoverGuard`)."""
    guard = LeftoverGuard(Path(workspace))
    await guard.start()
    try:
        yield guard
    finally:
        await guard.finish()
