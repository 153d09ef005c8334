"""The release log's connection: one SQLite database, migrated on opening, and its transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from bot.store.schema import migrations

# A release's row (columns and compressed body) takes about 2.5 KB: one fits in a 4 KB page with
# the rest of the page wasted, six fill a 16 KB one (a 100k-release log: 431 MB against 257).
# SQLite sets it when it creates a file; an existing log keeps the size it was made with.
PAGE_SIZE = 16384


class Database:
    """One SQLite database (a path, or ':memory:'), migrated to the current schema."""

    VERSION_RECHECK = 0.05  # seconds: how stale another process's write may look to `version()`

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(str(path))
            # wait for a lock held by another process (Litestream checkpointing, a console)
            # before the first statement, not only after it
            self.db.conn.execute("PRAGMA busy_timeout=5000")
            self.db.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only: see PAGE_SIZE
            self.db.execute("PRAGMA journal_mode=WAL")
        else:
            self.db = sqlite_utils.Database(memory=True)
        self.db.conn.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.RLock()
        self._writes = 0
        self._others: tuple[float, int] | None = None  # (when read, data_version)
        migrations.apply(self.db)

    def version(self) -> tuple[int, int]:
        """A value that changes whenever the log changes: this process's committed write
        transactions (at once), and SQLite's `data_version`, which moves on a commit by any
        other connection to the file (read at most every `VERSION_RECHECK` seconds: asking
        costs more than the answers it guards when many people ask at once). Equal versions
        mean an answer read from the log is still the answer (`bot.memo`)."""
        now = time.monotonic()
        if self._others is None or now - self._others[0] >= self.VERSION_RECHECK:
            self._others = (now, self.db.conn.execute("pragma data_version").fetchone()[0])
        return self._writes, self._others[1]

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One transaction: sqlite-utils' own writes inside it become savepoints, so a release
        and its steps are committed together (once), or not at all."""
        with self._lock:
            with self.db.atomic():
                yield
            self._writes += 1

    @contextmanager
    def _immediate(self) -> Iterator[None]:
        """A write transaction taken before its first read (BEGIN IMMEDIATE): a check and the
        write it decides are one step for every process sharing the file. Leaving the block
        early commits nothing written, which is the same as rolling back."""
        with self._lock:
            self.db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.db.conn.execute("COMMIT")
            except BaseException:
                if self.db.conn.in_transaction:  # the block failed, or the commit itself did
                    self.db.conn.execute("ROLLBACK")
                raise
            self._writes += 1
