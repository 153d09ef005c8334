"""Each signed Slack request is acted on once.

Slack signs `v0:<timestamp>:<body>`; a request is valid for five minutes after its timestamp, so
anyone who captured one could send it again in that window (and Slack itself re-sends Events API
deliveries with `X-Slack-Retry-Num`). `ReplayGuard.first_time(keys)` records the keys of a request
and says whether any of them was seen before, across every process that shares the store:
Redis (`SET NX EX`) when `REDIS_URL` is set, else a small table in the release log's SQLite file.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Protocol

log = logging.getLogger(__name__)

# Slack's signature window is 5 minutes; a little more covers clock skew between machines.
WINDOW_SECONDS = 330
DELETE_OLD = "delete from slack_requests_seen where seen_at < ?"
SELECT = "select seen_at from slack_requests_seen where key = ?"
UPSERT = "insert or replace into slack_requests_seen (key, seen_at) values (?, ?)"


class SeenStore(Protocol):
    """Records keys; answers whether a key was new."""

    async def add(self, key: str) -> bool:
        """Record `key`; True when it was not already recorded within the window."""
        ...


class SqliteSeen:
    """Seen keys in the release log's database (shared by every process using the file)."""

    def __init__(self, conn: sqlite3.Connection, window: float = WINDOW_SECONDS) -> None:
        self.conn = conn
        self.window = window
        self._added = 0
        with conn:
            conn.execute("create table if not exists slack_requests_seen "
                         "(key text primary key, seen_at real not null)")

    async def add(self, key: str) -> bool:
        now = time.time()
        with self.conn:
            if self._added % 100 == 0:
                self.conn.execute(DELETE_OLD, (now - self.window,))
            self._added += 1
            row = self.conn.execute(SELECT, (key,)).fetchone()
            if row is not None and row[0] >= now - self.window:
                return False
            self.conn.execute(UPSERT, (key, now))
        return True


class RedisSeen:
    """Seen keys in Redis, expiring with Slack's signature window."""

    def __init__(self, client: object, window: int = WINDOW_SECONDS) -> None:
        self.client = client
        self.window = window

    async def add(self, key: str) -> bool:
        created = await self.client.set(f"release-bot:seen:{key}", "1",  # type: ignore[attr-defined]
                                        nx=True, ex=self.window)
        return bool(created)


class ReplayGuard:
    """Whether a request is new; Redis first, the SQLite table when Redis does not answer."""

    def __init__(self, primary: SeenStore, fallback: SeenStore | None = None) -> None:
        self.primary = primary
        self.fallback = fallback

    async def first_time(self, keys: list[str]) -> bool:
        """Record every key; False when any of them was seen before."""
        fresh = True
        for key in keys:
            fresh = await self._add(key) and fresh
        return fresh

    async def _add(self, key: str) -> bool:
        try:
            return await self.primary.add(key)
        except Exception as exc:  # Redis down during an incident: keep serving on SQLite
            if self.fallback is None:
                raise
            log.warning("replay guard: %s; using the release log instead", type(exc).__name__)
            return await self.fallback.add(key)
