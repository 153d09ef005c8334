"""Pace posts per channel, the way Slack asks: about one `chat.postMessage` a second.

Slack allows a channel about one message per second, short bursts aside
(https://api.slack.com/apis/rate-limits#posting-messages). `ChannelPacer.turn(channel)` is a small
queue per channel: callers take their turn in the order they arrived (an `asyncio.Lock` wakes its
waiters first come, first served), and each turn starts at least `interval` seconds after the
previous one in that channel *ended*. Counting from the end of the previous call means Slack
sees two posts at least `interval` apart even when the first one was slow to arrive, so there
are never more than `n` posts in any `n`-second window. Clock and sleep are injectable so tests
can check the order and the spacing without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

# Slack's posting limit for one channel ("1 per second, short bursts allowed").
SLACK_POST_INTERVAL = 1.0


class ChannelPacer:
    """Per-channel turns, at least `interval` seconds apart (0 disables the spacing)."""

    def __init__(self, interval: float = SLACK_POST_INTERVAL, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._locks: dict[str, asyncio.Lock] = {}
        self._ended: dict[str, float] = {}

    @asynccontextmanager
    async def turn(self, channel: str) -> AsyncIterator[None]:
        """Wait for `channel`'s next turn; the spacing counts from when the block ends."""
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            await self._wait(channel)
            try:
                yield
            finally:
                self._ended[channel] = self.clock()

    async def _wait(self, channel: str) -> None:
        last = self._ended.get(channel)
        if last is None or self.interval <= 0:
            return
        wait = last + self.interval - self.clock()
        if wait > 0:
            await self.sleep(wait)

    def waiting(self, channel: str) -> bool:
        """Whether a turn in `channel` is taken (someone is posting or queued)."""
        lock = self._locks.get(channel)
        return lock is not None and lock.locked()
