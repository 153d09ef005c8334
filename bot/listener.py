"""A base for engine listeners beside the chat reporter (the watch, the Manual Tests prompt).

The engine calls its reporter for every event (`bot.telemetry.Reporters` fans them out). A
listener overrides the events it cares about; `guarded()` runs its work so that whatever it
raises is logged and never reaches the engine (a listener must not fail a release).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from bot.runbook.model import Decision, Release, StepRecord

log = logging.getLogger(__name__)


async def guarded(work: Awaitable[object], what: str) -> None:
    """Await `work`; log (without details) instead of raising."""
    try:
        await work
    except Exception as exc:
        log.error("%s failed: %s", what, type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))


class Listener:
    """Every reporter event, doing nothing."""

    async def release_started(self, release: Release) -> None:
        return None

    async def step_started(self, release: Release, record: StepRecord) -> None:
        return None

    async def step_progress(self, release: Release, record: StepRecord, text: str) -> None:
        return None

    async def step_finished(self, release: Release, record: StepRecord) -> None:
        return None

    async def gate_opened(self, release: Release, record: StepRecord) -> None:
        return None

    async def gate_closed(self, release: Release, record: StepRecord, decision: Decision) -> None:
        return None

    async def phase_started(self, release: Release, phase: str, records: list[StepRecord]) -> None:
        return None

    async def phase_finished(self, release: Release, phase: str, records: list[StepRecord]) -> None:
        return None

    async def release_finished(self, release: Release) -> None:
        return None

    async def note(self, release: Release, text: str) -> None:
        return None
