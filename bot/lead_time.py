"""When the first commit of each release was made, for DORA's lead time for changes.

After a release goes live, GitHub's compare (`previous release's SHA...this release's SHA`)
lists the commits it brought; the oldest author date is kept in the `lead_times` table. The base
is the SHA the merge step compared against, else the SHA of the last successful release before.
Without GitHub settings, a SHA or a base, nothing is kept and the lead time says it is unknown.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlite_utils
from sqlite_utils.migrations import Migrations

from bot.config import Settings
from bot.dora import live_at
from bot.listener import Listener, guarded
from bot.providers import github
from bot.providers.http import ProviderError
from bot.runbook.model import Release
from bot.store import Store

log = logging.getLogger(__name__)
migrations = Migrations("release_bot_lead_time")


@migrations()
def m001_lead_times(db: sqlite_utils.Database) -> None:
    """The first commit of each live release."""
    db.table("lead_times").create(
        {"release_id": int, "first_commit_at": str, "commits": int, "base": str, "head": str},
        pk="release_id",
    )


def first_commits(store: Store) -> dict[int, datetime]:
    """Release id -> when its first commit was made."""
    migrations.apply(store.db)
    return {row["release_id"]: datetime.fromisoformat(row["first_commit_at"])
            for row in store.db.query("select * from lead_times")}


def _parse(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeadTimes(Listener):
    """Records the first commit of each release that went live."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        migrations.apply(store.db)

    async def release_finished(self, release: Release) -> None:
        if live_at(release) is not None:
            await guarded(self.record(release), "recording the lead time")

    def base_of(self, release: Release) -> str | None:
        """The SHA staging had before this release."""
        merge = release.data.get("steps", {}).get("merge") or {}
        previous = merge.get("previous_sha") if isinstance(merge, dict) else None
        if isinstance(previous, str) and previous:
            return previous
        before = self.store.last_successful_before(release.environment, release.id or 0)
        return before.git_sha if before is not None else None

    async def record(self, release: Release) -> datetime | None:
        """Ask GitHub for the release's commits and keep the oldest one's date."""
        repo = self.settings.GITHUB_REPOSITORY
        base, head = self.base_of(release), release.git_sha
        if not repo or not self.settings.GITHUB_TOKEN or not base or not head or base == head:
            return None
        try:
            async with github.github_client(self.settings) as client:
                comparison = await github.compare(client, repo, base, head)
        except ProviderError as exc:
            log.info("lead time of release #%s unknown: %s", release.id, exc)
            return None
        dates = [d for d in (_parse(v) for v in comparison.dates.values()) if d is not None]
        if not dates:
            return None
        first = min(dates)
        with self.store._tx():
            self.store.db.table("lead_times").upsert(
                {"release_id": release.id, "first_commit_at": first.isoformat(),
                 "commits": len(comparison.commits), "base": base, "head": head}, pk="release_id")
        return first
