"""One writer per release log: `serve` and `socket` hold an flock'ed file next to the database.

The lock file (`<DATABASE_PATH>.lock`) holds one line naming its holder (pid, host, command),
so a second server process on the same log is refused with a line that says who holds it. The
kernel drops the lock when its holder dies (even by `kill -9`), so a stale file never blocks a
restart. The console and the CLI do not take it: they keep sharing the log as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class WriterBusy(Exception):
    """Another server process holds the release log; the message names it."""


@dataclass
class WriterLock:
    """A held lock; it lasts as long as `handle` stays open (here, or in an exec'd process)."""

    path: Path
    handle: IO[str]

    def release(self) -> None:
        """Give the lock up (a process that exits gives it up anyway)."""
        with contextlib.suppress(OSError):
            self.handle.close()


def lock_path(database_path: str | Path) -> Path:
    """Where the lock of a release log lives: beside it, named after it."""
    path = Path(database_path).resolve()
    return path.with_name(path.name + ".lock")


def holder_line(command: list[str] | None = None) -> str:
    """What the lock file says about this process: pid, host and command."""
    words = command if command is not None else ["release-bot", *sys.argv[1:]]
    return f"pid {os.getpid()} on {socket.gethostname()} ({shlex.join(words)})"


def acquire(database_path: str | Path, command: list[str] | None = None) -> WriterLock:
    """Take the writer lock of `database_path` or raise `WriterBusy` naming its holder."""
    path = lock_path(database_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise WriterBusy(
            f"the release log {Path(database_path).resolve()} is already served by {holder}; "
            "run one serve or socket process per log") from None
    handle.seek(0)
    handle.truncate()
    handle.write(holder_line(command) + "\n")
    handle.flush()
    return WriterLock(path, handle)
