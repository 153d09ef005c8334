"""Answers remembered while what they were computed from has not changed.

`/release status` and `/release start --dry-run` are answered inside the acknowledgement, and
during an incident many people ask at once: recomputing the same answer for each of them keeps
the event loop busy while other acknowledgements wait. `Remembered.get(key, version, compute)`
returns the answer last computed for `key` while `version` (the release log's `Store.version()`)
is unchanged and, when `max_age` is set, for at most that many seconds (for answers that read
the machine, such as which tools are installed). Pure and in-process; no I/O here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Remembered(Generic[T]):
    """The last answer per key (at most `size` keys), with the version it was computed at."""

    def __init__(self, size: int = 64, max_age: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.max_age = max_age
        self.clock = clock
        self._answers: dict[Hashable, tuple[Hashable, float, T]] = {}

    def get(self, key: Hashable, version: Hashable, compute: Callable[[], T]) -> T:
        """The remembered answer for `key` if it is still current, else `compute()` (remembered)."""
        found = self._answers.get(key)
        now = self.clock()
        if found is not None and found[0] == version and not self._too_old(found[1], now):
            return found[2]
        answer = compute()
        if key not in self._answers and len(self._answers) >= self.size:
            self._answers.clear()  # keys come from people's text: never an unbounded map
        self._answers[key] = (version, now, answer)
        return answer

    def _too_old(self, computed_at: float, now: float) -> bool:
        return self.max_age is not None and now - computed_at >= self.max_age
