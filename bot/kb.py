"""The knowledge base keeps the table: each finished release, and each rollback, as a markdown file
in a git repository (`KB_REPOSITORY`, under `KB_PATH`), committed and pushed by the bot.

`KnowledgeBase` is a Reporter (it sits beside the chat reporter in `Reporters`): when a release
finishes it writes the guide's `| Field | Notes |` table and the steps (the same text as
`release-bot log show`), commits with a message naming the release and pushes, in a background
task, so git never delays or fails a release. A push that fails leaves the commit in the bot's
local clone (`KB_CHECKOUT`); the next release, the next rollback or the scheduler's retry job
pushes it. `export()` writes the same from the command line (`release-bot log export`).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import re
import weakref
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import BaseScheduler

from bot.config import Settings
from bot.listener import Listener
from bot.providers.shell import CommandResult, child_env, run_command
from bot.redact import Redactor, default_redactor
from bot.report import release_json, release_table, step_details
from bot.runbook.model import TEMPLATE_FIELDS, Release
from bot.store import Store

log = logging.getLogger(__name__)
GIT_TIMEOUT = 120.0
RETRY_MINUTES = 10
AUTHOR = {"GIT_AUTHOR_NAME": "release-bot", "GIT_AUTHOR_EMAIL": "release-bot@users.noreply.invalid",
          "GIT_COMMITTER_NAME": "release-bot",
          "GIT_COMMITTER_EMAIL": "release-bot@users.noreply.invalid"}
FORMATS = ("markdown", "csv", "json")
_BY_STORE: weakref.WeakKeyDictionary[Store, KnowledgeBase] = weakref.WeakKeyDictionary()


class KbError(Exception):
    """A git command of the knowledge base failed; the message is one redacted line."""


# --- what is written ---------------------------------------------------------------------------
def release_markdown(release: Release) -> str:
    """The release as a markdown document: heading, the guide's table, steps, any rollback, then
    each step's whole result (what `release-bot log show` prints)."""
    title, _, rest = release_table(release).partition("\n")
    return f"# {title}\n\n{rest.lstrip()}{step_details(release)}\n"


def file_name(release: Release) -> str:
    """`2026-12-06-staging-release-42.md`: stable for a release, so a rollback rewrites it."""
    env = re.sub(r"[^A-Za-z0-9_.-]+", "-", release.environment).strip("-.") or "env"
    return f"{release.started_at:%Y-%m-%d}-{env}-release-{release.id}.md"


def commit_message(release: Release, rollback: bool = False) -> str:
    """`Release #42 of main (abc12345) to staging: succeeded`, or the rollback's line."""
    sha = f" ({release.git_sha[:8]})" if release.git_sha else ""
    if rollback:
        info = release.data.get("rollback")
        by = f" by {info.get('by')}" if isinstance(info, dict) and info.get("by") else ""
        return (f"Rollback of release #{release.id} of {release.ref}{sha} on "
                f"{release.environment}{by}: {release.status.value}")
    return f"Release #{release.id} of {release.ref}{sha} to {release.environment}: {release.status.value}"


def to_csv(releases: Iterable[Release]) -> str:
    """One row per release: its facts, the guide's fields, and its steps as `name=state`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = ["id", "status", "environment", "ref", "git_sha", "started_by", "started_at",
            "finished_at", "duration_seconds"]
    writer.writerow([*head, *TEMPLATE_FIELDS, "Steps"])
    for release in releases:
        row = release_json(release, full=True)
        writer.writerow([row[name] if row[name] is not None else "" for name in head]
                        + [row["fields"].get(name, "") for name in TEMPLATE_FIELDS]
                        + ["; ".join(f"{s['name']}={s['state']}" for s in row["steps"])])
    return out.getvalue()


def export(releases: list[Release], fmt: str) -> str:
    """The releases (oldest first) as markdown, CSV or JSON."""
    ordered = sorted(releases, key=lambda r: r.id or 0)
    if fmt == "csv":
        return to_csv(ordered)
    if fmt == "json":
        return json.dumps([release_json(r, full=True) for r in ordered], indent=2) + "\n"
    if fmt == "markdown":
        return "\n---\n\n".join(release_markdown(r) for r in ordered)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def parse_since(text: str) -> datetime:
    """`2026-12-01` or an ISO 8601 time (UTC when no zone is given); ValueError when neither."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- the git repository ------------------------------------------------------------------------
class KnowledgeBase(Listener):
    """A local clone of `KB_REPOSITORY` the bot writes release files into, commits and pushes."""

    def __init__(self, settings: Settings, redactor: Redactor, checkout: Path) -> None:
        self.settings = settings
        self.redact = redactor
        self.checkout = checkout
        self.url = settings.secret("KB_REPOSITORY")
        self.folder = _folder(settings.KB_PATH)
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, store: Store | None = None,
                      redactor: Redactor | None = None) -> KnowledgeBase | None:
        """The knowledge base of `settings`, or None when KB_REPOSITORY is unset.

        With `store`, it is remembered as that store's knowledge base, for rollbacks and the
        scheduler's retry job (`for_store`).
        """
        if not settings.secret("KB_REPOSITORY"):
            return None
        if redactor is None:
            redactor = default_redactor()
            redactor.add(settings.secret_values())
        checkout = Path(settings.KB_CHECKOUT) if settings.KB_CHECKOUT else \
            Path(settings.DATABASE_PATH).resolve().parent / "kb-checkout"
        kb = cls(settings, redactor, checkout)
        if store is not None:
            _BY_STORE[store] = kb
        return kb

    # -- publishing --
    async def publish(self, release: Release, message: str) -> bool:
        """Write, commit and push the release's file; True when the remote has it. Never raises."""
        async with self._lock:
            try:
                await self._ensure_checkout()
                await self._sync()
                await self._write_and_commit(release, message)
                await self._push()
            except KbError as exc:
                self.last_error = str(exc)
                log.warning("knowledge base: %s (kept in %s; pushed on the next try)", exc,
                            self.checkout)
                return False
            except Exception as exc:  # the knowledge base must never break a release
                self.last_error = f"{type(exc).__name__}: {self.redact(str(exc))}"
                log.exception("knowledge base: publishing release #%s crashed", release.id)
                return False
        self.last_error = None
        return True

    async def retry(self) -> bool:
        """Push commits a failed push left behind (the scheduler's job); True when none are left."""
        async with self._lock:
            if not (self.checkout / ".git").is_dir():
                return True
            try:
                if await self.pending() == 0:
                    return True
                await self._sync()
                await self._push()
            except KbError as exc:
                self.last_error = str(exc)
                log.warning("knowledge base: retry failed: %s", exc)
                return False
        self.last_error = None
        return True

    def schedule(self, release: Release, message: str) -> asyncio.Task[bool]:
        """Publish in the background; the task is kept until done (see `drain`)."""
        task = asyncio.get_running_loop().create_task(self.publish(release, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait for the background publications (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def pending(self) -> int:
        """Commits of the local clone the remote does not have."""
        branch = await self._branch()
        if not (await self._git("rev-parse", "--verify", "-q", "HEAD", check=False)).ok:
            return 0
        remote = f"refs/remotes/origin/{branch}"
        has_remote = (await self._git("rev-parse", "--verify", "-q", remote, check=False)).ok
        counted = await self._git("rev-list", "--count", f"{remote}..HEAD" if has_remote else "HEAD")
        return int(counted.stdout.strip() or 0)

    # -- git steps --
    async def _git(self, *args: str, check: bool = True, cwd: Path | None = None) -> CommandResult:
        env = child_env({**AUTHOR, "GIT_TERMINAL_PROMPT": "0"})
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")  # never wait for a passphrase
        result = await run_command(["git", *args], cwd=cwd or self.checkout, env=env,
                                   timeout=GIT_TIMEOUT, redact=self.redact)
        if check and not result.ok:
            why = "timed out" if result.timed_out else _last_line(result)
            raise KbError(f"git {args[0]} failed: {why}")
        return result

    async def _ensure_checkout(self) -> None:
        if (self.checkout / ".git").is_dir():
            await self._git("remote", "set-url", "origin", self.url)
            return
        self.checkout.parent.mkdir(parents=True, exist_ok=True)
        cloned = await self._git("clone", "-q", self.url, str(self.checkout), check=False,
                                 cwd=self.checkout.parent)
        if cloned.ok:
            return
        log.warning("knowledge base: cannot clone (%s); committing locally until it answers",
                    _last_line(cloned))
        self.checkout.mkdir(parents=True, exist_ok=True)
        await self._git("init", "-q", "-b", self.settings.KB_BRANCH or "main")
        await self._git("remote", "add", "origin", self.url)

    async def _branch(self) -> str:
        if self.settings.KB_BRANCH:
            return self.settings.KB_BRANCH
        found = await self._git("symbolic-ref", "--short", "HEAD", check=False)
        return found.stdout.strip() or "main"

    async def _sync(self) -> None:
        """Fetch, then put local commits on top of the remote's branch (best effort offline)."""
        if not (await self._git("fetch", "-q", "origin", check=False)).ok:
            return  # unreachable: commit locally, the push says why
        branch = await self._branch()
        remote = f"refs/remotes/origin/{branch}"
        if not (await self._git("rev-parse", "--verify", "-q", remote, check=False)).ok:
            return
        if not (await self._git("rev-parse", "--verify", "-q", "HEAD", check=False)).ok:
            await self._git("checkout", "-q", "-B", branch, remote)
            return
        rebased = await self._git("rebase", "-q", remote, check=False)
        if not rebased.ok:
            await self._git("rebase", "--abort", check=False)
            raise KbError(f"cannot put the bot's commits on top of origin/{branch}: "
                          f"{_last_line(rebased)}")

    async def _write_and_commit(self, release: Release, message: str) -> None:
        target = self.checkout / self.folder / file_name(release)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.redact(release_markdown(release)), encoding="utf-8")
        relative = str(target.relative_to(self.checkout))
        await self._git("add", "--", relative)
        staged = await self._git("diff", "--cached", "--quiet", "--", relative, check=False)
        if staged.returncode == 0:
            return  # already in the knowledge base as it is now
        await self._git("commit", "-q", "-m", self.redact(message), "--", relative)

    async def _push(self) -> None:
        if not (await self._git("rev-parse", "--verify", "-q", "HEAD", check=False)).ok:
            return
        branch = await self._branch()
        await self._git("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        await self._git("fetch", "-q", "origin", check=False)

    # -- of the Reporter events (Listener answers the rest) only the end of a release matters --
    async def release_finished(self, release: Release) -> None:
        self.schedule(release.model_copy(deep=True), commit_message(release))


def _folder(path: str) -> Path:
    """KB_PATH as a relative folder inside the repository (no absolute path, no `..`)."""
    folder = Path(path.strip() or ".")
    if folder.is_absolute() or ".." in folder.parts:
        raise ValueError(f"KB_PATH must be a folder inside the repository, not {path!r}")
    return folder


def _last_line(result: CommandResult) -> str:
    """git's own reason: its last `fatal:`/`error:` line, else its last line."""
    lines = [line.strip() for line in result.tail(10).splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith(("fatal:", "error:"))] or lines
    return reasons[-1][:300] if reasons else f"exit code {result.returncode}"


# --- hooks for the rest of the bot -------------------------------------------------------------
def for_store(store: Store) -> KnowledgeBase | None:
    """The knowledge base made for `store` by `from_settings`, if any."""
    return _BY_STORE.get(store)


async def drain(store: Store) -> None:
    """Wait until the knowledge base of `store` has written what it was given (before exiting)."""
    kb = for_store(store)
    if kb is not None:
        await kb.drain()


def rollback_recorded(store: Store, release: Release) -> None:
    """Called once a rollback is in the log: rewrite the release's file (in the background)."""
    kb = for_store(store)
    if kb is None:
        return
    try:
        kb.schedule(release.model_copy(deep=True), commit_message(release, rollback=True))
    except RuntimeError:  # no running event loop: nothing to schedule on
        log.warning("knowledge base: rollback of release #%s not written (no event loop)", release.id)


def add_retry_job(scheduler: BaseScheduler, store: Store) -> None:
    """Every RETRY_MINUTES, push what a failed push left behind (in its own memory job store)."""
    kb = for_store(store)
    if kb is None:
        return
    with contextlib.suppress(ValueError):  # already added by an earlier build
        scheduler.add_jobstore(MemoryJobStore(), "kb")
    scheduler.add_job(kb.retry, "interval", minutes=RETRY_MINUTES, id="kb-retry", jobstore="kb",
                      replace_existing=True, coalesce=True, max_instances=1)


def export_command(store: Store, settings: Settings, fmt: str, since: str | None,
                   all_envs: bool) -> str:
    """The text of `release-bot log export`; ValueError for a bad --since or --format."""
    releases = store.list_releases(1_000_000, None if all_envs else settings.ENVIRONMENT)
    if since:
        start = parse_since(since)
        releases = [r for r in releases if r.started_at >= start]
    redactor = default_redactor()
    redactor.add(settings.secret_values())
    return redactor(export(releases, fmt))

