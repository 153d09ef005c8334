"""The bot's own usage events in PostHog (release started, step failed, release finished).

Off unless `BOT_POSTHOG_API_KEY` is set. Uses the official `posthog` library, which batches and
sends from its own thread, so a slow or unreachable PostHog never delays a release. Events carry
ids, names, outcomes and durations — never step details, URLs or anything secret.
"""

from __future__ import annotations

import logging
from typing import Any

from posthog import Posthog

from bot.config import Settings
from bot.redact import default_redactor
from bot.runbook.model import Decision, Release, StepRecord, StepState

log = logging.getLogger(__name__)
DISTINCT_ID = "release-bot"


class BotTelemetry:
    """A Reporter that sends the bot's own events to PostHog."""

    def __init__(self, client: Posthog) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> BotTelemetry | None:
        """Telemetry for `settings`, or None when BOT_POSTHOG_API_KEY is unset."""
        key = settings.secret("BOT_POSTHOG_API_KEY")
        if not key:
            return None
        return cls(Posthog(key, host=settings.BOT_POSTHOG_HOST, max_retries=2, timeout=5, **options))

    def _capture(self, event: str, release: Release, **properties: Any) -> None:
        props = {"release_id": release.id, "environment": release.environment,
                 "status": release.status.value, **properties}
        try:
            self.client.capture(event, distinct_id=DISTINCT_ID, properties=props)
        except Exception as exc:  # telemetry must never break a release
            log.warning("bot telemetry failed: %s", type(exc).__name__)

    async def release_started(self, release: Release) -> None:
        self._capture("release_started", release, steps=len(release.steps))

    async def step_started(self, release: Release, record: StepRecord) -> None:
        return None

    async def step_progress(self, release: Release, record: StepRecord, text: str) -> None:
        return None

    async def step_finished(self, release: Release, record: StepRecord) -> None:
        if record.state in (StepState.FAIL, StepState.SKIPPED):
            seconds = None
            if record.started_at and record.finished_at:
                seconds = (record.finished_at - record.started_at).total_seconds()
            self._capture(f"release_step_{record.state.value}", release, step=record.name,
                          seconds=seconds)

    async def gate_opened(self, release: Release, record: StepRecord) -> None:
        self._capture("release_gate_opened", release, step=record.name)

    async def gate_closed(self, release: Release, record: StepRecord, decision: Decision) -> None:
        self._capture("release_gate_answered", release, step=record.name, choice=decision.action)

    async def phase_started(self, release: Release, phase: str, records: list[StepRecord]) -> None:
        return None

    async def phase_finished(self, release: Release, phase: str, records: list[StepRecord]) -> None:
        return None

    async def release_finished(self, release: Release) -> None:
        counts = release.counts()
        self._capture("release_finished", release, seconds=release.duration_seconds,
                      skipped=counts.get("skipped", 0), failed=counts.get("fail", 0))

    async def note(self, release: Release, text: str) -> None:
        return None

    def shutdown(self) -> None:
        """Send what is queued (called when the bot stops)."""
        self.client.shutdown()


class Reporters:
    """Fan engine events out to the chat reporter and the listeners after it (telemetry, the
    knowledge base, the post-deploy watch).

    Every reporter hears every event even when an earlier one raised (Slack being down must not
    keep the release out of the knowledge base). The first reporter is the chat: its error is
    raised afterwards, as the engine must hear it (a parent message that cannot be posted stops
    the release before it runs). A listener's error is logged and goes no further: a knowledge
    base that cannot be written or a PostHog outage never changes a release's outcome.
    """

    def __init__(self, *reporters: Any) -> None:
        self.reporters = reporters

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # only engine events are forwarded, never Python's probes
            raise AttributeError(name)

        async def forward(*args: Any) -> None:
            first: Exception | None = None
            for index, reporter in enumerate(self.reporters):
                try:
                    await getattr(reporter, name)(*args)
                except Exception as exc:
                    if index == 0:
                        first = exc
                    else:
                        log.error("%s failed on %s: %s", type(reporter).__name__, name,
                                  default_redactor().log_text(f"{type(exc).__name__}: {exc}"))
            if first is not None:
                raise first

        return forward
