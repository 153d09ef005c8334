"""Each signed Slack request is acted on once.

Slack signs `v0:<timestamp>:<body>`; a request is valid for five minutes after its timestamp, so
anyone who captured one could send it again in that window (and Slack itself re-sends Events API
deliveries with `X-Slack-Retry-Num`). `ReplayGuard.first_time(keys)` records the keys of a request
and says whether any of them was seen before, across every process that shares the store:
Redis (`SET NX EX`) when `REDIS_URL` is set, else a table in the release log's SQLite file (so a
log restored from its replica on a new machine still knows them).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from bot.slack_request import WINDOW_SECONDS as SIGNATURE_WINDOW

log = logging.getLogger(__name__)

# How long a key is kept: a request is accepted while its timestamp is within the signature
# window of our clock either way (`bot.slack_request`), so one stamped that far ahead stays valid
# for twice the window after it arrives; a little more covers the skew between machines.
WINDOW_SECONDS = 2 * SIGNATURE_WINDOW + 30
# The keys, in the order they were taken: appended to, never looked up (this process answers from
# the keys it holds in memory). A table keyed by the key would put each new key, a random
# signature, on a page of its own in its index: measured, 7-17 µs of CPU a key against 1-2.
TABLE = "slack_request_keys"
CREATE = f"create table if not exists {TABLE} (seen_at real not null, key text not null)"
LEGACY = "slack_requests_seen"  # keyed by key: the keys of a bot before this layout
DELETE_OLD = f"delete from {TABLE} where seen_at < ?"  # noqa: S608
APPEND = f"insert into {TABLE} (seen_at, key) values (?, ?)"  # noqa: S608
# Seconds between taking a key and writing it (with every other key taken meanwhile) to the log.
FLUSH_AFTER = 0.02
# Keys remembered in memory before the expired ones are dropped (and deleted from the file).
PRUNE_ABOVE = 10_000


class SeenStore(Protocol):
    """Records keys; answers whether a key was new."""

    async def add(self, key: str) -> bool:
        """Record `key`; True when it was not already recorded within the window."""
        ...

    async def close(self) -> None:
        """Write down what is only in memory (the bot is stopping)."""
        ...


class SqliteSeen:
    """Seen keys in a table of the release log's SQLite file.

    One process serves a log (`bot.durability`'s writer lock), so it answers from the keys it
    holds in memory (read from the table on first use: a restart, or a log restored from its
    replica, still refuses a replay) and writes the keys it takes `FLUSH_AFTER` seconds later,
    with every other key taken meanwhile, in one transaction, instead of one transaction per
    request (`close()` writes what is left when the bot stops). `beside(conn)` opens its own
    connection to the file `conn` is open on, with `synchronous=NORMAL`: in WAL mode a commit
    then waits for no fsync and the file stays consistent through a power cut (a key lost to
    one costs nothing), while the release log's own connection keeps its durable setting."""

    @classmethod
    def beside(cls, conn: sqlite3.Connection) -> SqliteSeen:
        """A SqliteSeen on the file `conn` is open on (or on `conn` itself when in memory)."""
        path = next((row[2] for row in conn.execute("pragma database_list") if row[1] == "main"),
                    "")
        if not path:
            return cls(conn)
        own = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        own.execute("pragma busy_timeout=5000")
        own.execute("pragma synchronous=NORMAL")
        return cls(own)

    def __init__(self, conn: sqlite3.Connection, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.window = window
        self.clock = clock
        conn.execute(CREATE)
        self._seen: dict[str, float] | None = None  # read from the file on first use
        self._pending: list[tuple[str, float]] = []
        self._prune_above = PRUNE_ABOVE
        self.flush_after = FLUSH_AFTER

    async def add(self, key: str) -> bool:
        now = self.clock()
        seen = self._recent(now)
        earlier = seen.get(key)
        if earlier is not None and earlier >= now - self.window:
            return False
        seen[key] = now
        self._pending.append((key, now))
        if len(self._pending) == 1:  # one transaction for the keys of the next few milliseconds
            asyncio.get_running_loop().call_later(self.flush_after, self.flush)
        return True

    async def close(self) -> None:
        self.flush()

    def flush(self) -> None:
        """Write the keys taken since the last flush (one transaction), and forget old ones."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        now = self.clock()
        with self._transaction():
            self.conn.executemany(APPEND, [(at, key) for key, at in pending])
            if self._seen is not None and len(self._seen) > self._prune_above:
                self.conn.execute(DELETE_OLD, (now - self.window,))
                self._seen = {k: at for k, at in self._seen.items() if at >= now - self.window}
                # what is left is younger than the window: prune again only once it has doubled
                self._prune_above = max(PRUNE_ABOVE, 2 * len(self._seen))

    @contextmanager
    def _transaction(self, begin: str = "begin") -> Iterator[None]:
        if self.conn.isolation_level is not None:  # the module begins and `with` commits
            with self.conn:
                yield
            return
        self.conn.execute(begin)
        try:
            yield
            self.conn.execute("commit")
        except BaseException:
            if self.conn.in_transaction:  # the block failed, or the commit itself did
                self.conn.execute("rollback")
            raise

    def _recent(self, now: float) -> dict[str, float]:
        if self._seen is None:
            # reads before it writes: the write lock first (waiting for it), or a write by another
            # connection in between (Litestream's, at start) would refuse the upgrade at once
            with self._transaction("begin immediate"):
                if self.conn.execute("select 1 from sqlite_master where type = 'table' and name = ?",
                                     [LEGACY]).fetchone():  # the keys a bot before this layout took
                    self.conn.execute(f"insert into {TABLE} (seen_at, key) select seen_at, key "  # noqa: S608
                                      f"from {LEGACY} order by seen_at")
                    self.conn.execute(f"drop table {LEGACY}")
                self.conn.execute(DELETE_OLD, (now - self.window,))
            # in the order taken: a key taken again after its window keeps its latest time
            self._seen = dict(self.conn.execute(f"select key, seen_at from {TABLE} order by rowid"))  # noqa: S608
        return self._seen


class RedisSeen:
    """Seen keys in Redis, expiring with Slack's signature window."""

    def __init__(self, client: object, window: int = WINDOW_SECONDS) -> None:
        self.client = client
        self.window = window

    async def add(self, key: str) -> bool:
        created = await self.client.set(f"release-bot:seen:{key}", "1",  # type: ignore[attr-defined]
                                        nx=True, ex=self.window)
        return bool(created)

    async def close(self) -> None:
        return None


class ReplayGuard:
    """Whether a request is new; Redis first, the SQLite table when Redis does not answer."""

    def __init__(self, primary: SeenStore, fallback: SeenStore | None = None) -> None:
        self.primary = primary
        self.fallback = fallback

    async def close(self) -> None:
        for store in (self.primary, self.fallback):
            if store is not None:
                await store.close()

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
