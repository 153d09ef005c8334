"""Where a release ref lives, asked before anything is posted: does the ref exist, and which
files does it add relative to the staging branch?

APP_WORKSPACE's origin is asked with git (`git ls-remote`, and `git diff` after a fetch); without
a workspace, GitHub's API when GITHUB_TOKEN and GITHUB_REPOSITORY are set; with neither, the
answers are "cannot tell" (None). Every failure becomes one plain line.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import Settings
from bot.providers.http import ProviderError
from bot.providers.shell import CommandResult, child_env, run_command
from bot.redact import Redactor

HEX_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
GIT_TIMEOUT = 120.0


class GitRefs:
    """Ref lookups against APP_WORKSPACE's origin with the git command line."""

    def __init__(self, workspace: Path, redact: Redactor, timeout: float = GIT_TIMEOUT) -> None:
        self.workspace = workspace
        self.redact = redact
        self.timeout = timeout

    async def _git(self, *args: str) -> CommandResult:
        return await run_command(["git", *args], cwd=self.workspace,
                                 env=child_env({"GIT_TERMINAL_PROMPT": "0"}),
                                 timeout=self.timeout, redact=self.redact)

    def _fault(self, result: CommandResult, what: str) -> str:
        last = (result.tail(1) or f"exit {result.returncode}").strip()
        if result.timed_out:
            last = f"timed out after {self.timeout:g}s"
        return f"{what} in APP_WORKSPACE {self.workspace} failed: {last}"

    async def missing_ref(self, ref: str) -> str | None:
        """None when origin has the branch, tag or commit `ref`; else the one-line reason."""
        if not (self.workspace / ".git").exists():
            return f"APP_WORKSPACE {self.workspace} is not a git checkout"
        listed = await self._git("ls-remote", "origin", f"refs/heads/{ref}", f"refs/tags/{ref}")
        if not listed.ok:
            return self._fault(listed, "git ls-remote origin")
        if listed.stdout.strip():
            return None
        if HEX_SHA.match(ref):
            fetched = await self._git("fetch", "--quiet", "origin")
            if not fetched.ok:
                return self._fault(fetched, "git fetch origin")
            found = await self._git("cat-file", "-e", f"{ref}^{{commit}}")
            if found.ok:
                return None
        return f"`{ref}` is not a branch, tag or commit of APP_WORKSPACE's origin"

    async def added_files(self, ref: str, base: str, prefix: str) -> list[str] | None:
        """Files `ref` adds under `prefix` since it left `base` (origin's); None: cannot tell."""
        fetched = await self._git("fetch", "--quiet", "origin")
        if not fetched.ok:
            return None
        head = await self._resolve(ref)
        if head is None:
            return None
        diff = await self._git("diff", "--name-only", "--diff-filter=A", "-z",
                               f"origin/{base}...{head}", "--", prefix)
        if not diff.ok:
            return None
        return [name for name in diff.stdout.split("\0") if name.startswith(prefix)]

    async def _resolve(self, ref: str) -> str | None:
        for candidate in (f"origin/{ref}", f"refs/tags/{ref}", ref):
            found = await self._git("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}")
            if found.ok and found.stdout.strip():
                return found.stdout.strip()
        return None


class GitHubRefs:
    """Ref lookups through GitHub's REST API (GITHUB_REPOSITORY)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.repo = settings.GITHUB_REPOSITORY or ""

    async def missing_ref(self, ref: str) -> str | None:
        """None when GitHub knows `ref`; else the one-line reason."""
        from bot.providers import github

        async with github.github_client(self.settings) as client:
            try:
                await github.resolve_ref(client, self.repo, ref)
            except ProviderError as exc:
                if exc.status in (404, 422):
                    return f"`{ref}` is not a branch, tag or commit of {self.repo} on GitHub"
                return str(exc)
        return None

    async def added_files(self, ref: str, base: str, prefix: str) -> list[str] | None:
        """Files `ref` adds under `prefix` relative to `base`; None when GitHub cannot tell."""
        from bot.providers import github

        async with github.github_client(self.settings) as client:
            try:
                return await github.added_files(client, self.repo, base, ref, prefix)
            except ProviderError:
                return None


class NoRefs:
    """Nothing to ask: every answer is "cannot tell"."""

    async def missing_ref(self, ref: str) -> str | None:
        return None

    async def added_files(self, ref: str, base: str, prefix: str) -> list[str] | None:
        return None


def ref_source(settings: Settings, redact: Redactor) -> GitRefs | GitHubRefs | NoRefs:
    """The workspace's origin when APP_WORKSPACE is set, else GitHub when configured."""
    if settings.APP_WORKSPACE:
        return GitRefs(Path(settings.APP_WORKSPACE), redact,
                       timeout=min(GIT_TIMEOUT, settings.COMMAND_TIMEOUT_SECONDS))
    if settings.GITHUB_TOKEN is not None and settings.GITHUB_REPOSITORY:
        return GitHubRefs(settings)
    return NoRefs()
