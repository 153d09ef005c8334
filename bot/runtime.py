"""The runtime: everything a front end (Slack, the console, the CLI) needs to run releases.

`bot.app.build_runtime` assembles it; front ends and the scheduler receive it. It lives apart from
`bot.app` so that what receives a runtime never imports the module that builds the Slack app.
"""

from __future__ import annotations

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
        """Stop the engine's tasks, flush the chat, close what was opened for the front end."""
        await self.engine.shutdown()
        await self.reporter.flush()
        for close in self.on_shutdown:
            await close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
    listeners: list[Any] = field(default_factory=list)  # the watch, the Manual Tests prompt
