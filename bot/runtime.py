"""The runtime: everything a front end (Slack, the console, the CLI) needs to run releases.

`bot.app.build_runtime` assembles it; front ends and the scheduler receive it. It lives apart from
`bot.app` so that what receives a runtime never imports the module that builds the Slack app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.chat.port import Chat
    from bot.chat.reporter import ChatReporter
    from bot.config import Settings
    from bot.locks import RedisLock
    from bot.redact import Redactor
    from bot.rollback.controller import Rollbacks
    from bot.runbook.engine import Engine
    from bot.service import ReleaseService
    from bot.store import Store
    from bot.telemetry import BotTelemetry

log = logging.getLogger(__name__)


# How long a stopping bot waits for knowledge-base pages still being written and pushed.
KB_DRAIN_SECONDS = 20.0


async def finish_publishing(store: Store) -> None:
    """Wait for the knowledge base's background publications of `store`, at most KB_DRAIN_SECONDS."""
    from bot import kb

    try:
        await asyncio.wait_for(kb.drain(store), KB_DRAIN_SECONDS)
    except TimeoutError:
        log.warning("knowledge base: still publishing after %.0f s at shutdown; a page committed "
                    "but not pushed is pushed by the retry job after the restart", KB_DRAIN_SECONDS)


@dataclass
class Runtime:
    """Everything a front end needs to run releases."""

    settings: Settings
    store: Store
    engine: Engine
    reporter: ChatReporter
    service: ReleaseService
    chat: Chat
    redactor: Redactor
    rollbacks: Rollbacks
    lock: RedisLock | None = None
    telemetry: BotTelemetry | None = None
    # What front ends close when the bot stops (HTTP sessions and the like), in order.
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        """Stop the engine's tasks, flush the chat, let the knowledge base finish the pages it was
        given (bounded: a platform stops a process soon after asking), close what was opened for
        the front end."""
        await self.engine.shutdown()
        await self.reporter.flush()
        await finish_publishing(self.store)
        for close in self.on_shutdown:
            await close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
    listeners: list[Any] = field(default_factory=list)  # the watch, the Manual Tests prompt
