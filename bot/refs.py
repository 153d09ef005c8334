"""The commit a release ref points at, for the release log's "Git SHA" when no step recorded one.

Tests, lint and merge record the SHA they worked on; when they are skipped the engine asks here:
a full SHA is taken as it is, else `git ls-remote origin <ref>` in APP_WORKSPACE (no fetch, no
checkout: the workspace is left as it is), else GitHub's commit lookup when it is configured.
Best effort: None when nothing can tell.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bot.config import Settings
from bot.providers import github
from bot.providers.http import ProviderError
from bot.providers.shell import child_env, run_command
from bot.redact import Redactor

log = logging.getLogger(__name__)
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
LS_REMOTE_SECONDS = 60.0


def pick_ls_remote(output: str, ref: str) -> str | None:
    """The SHA for `ref` in `git ls-remote` output: a branch, else a tag (peeled when annotated)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, name = line.strip().partition("\t")
        if FULL_SHA.match(sha) and name:
            found[name] = sha
    for name in (f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", ref):
        if name in found:
            return found[name]
    return None


async def _from_workspace(settings: Settings, ref: str, redact: Redactor) -> str | None:
    workspace = Path(settings.APP_WORKSPACE or "")
    if not settings.APP_WORKSPACE or not (workspace / ".git").exists():
        return None
    result = await run_command(
        ["git", "ls-remote", "origin", f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}"],
        cwd=workspace, env=child_env({"GIT_TERMINAL_PROMPT": "0"}),
        timeout=min(settings.COMMAND_TIMEOUT_SECONDS, LS_REMOTE_SECONDS), redact=redact)
    if not result.ok:
        log.info("git ls-remote for %s failed: %s", ref, result.tail(3))
        return None
    return pick_ls_remote(result.stdout, ref)


async def _from_github(settings: Settings, ref: str) -> str | None:
    if not settings.GITHUB_REPOSITORY or settings.GITHUB_TOKEN is None:
        return None
    try:
        async with github.github_client(settings) as client:
            return await github.resolve_ref(client, str(settings.GITHUB_REPOSITORY), ref)
    except ProviderError as exc:
        log.info("GitHub could not resolve %s: %s", ref, exc)
        return None


async def resolve_sha(settings: Settings, ref: str, redact: Redactor) -> str | None:
    """The commit `ref` names now, or None when neither the workspace nor GitHub can tell."""
    if FULL_SHA.match(ref.lower()):
        return ref.lower()
    if ref.startswith("-"):
        return None
    return await _from_workspace(settings, ref, redact) or await _from_github(settings, ref)
