"""ChatReporter: turns engine events into a parent message and a thread of replies.

The parent message is kept current with `chat.update`, coalesced per release: a step that
starts or finishes shows within `interval` (3 s), a running step's progress line alone within
`progress_interval` (10 s), so a release costs Slack a dozen updates rather than one per event.
Thread replies are posted in the order the steps finish (the Slack chat paces
them, `bot.chat.pacing`), and only what needs its own message gets one: a sequential step's
result, a failure (always, with its details), a gate, a concurrent phase's summary table (its
checks are rows of it, not replies) and the final verdict (one broadcast; the parent shows it
too). A skipped step has no reply: the parent's checklist and the final verdict's "Skipped:"
line name it. Every result stays in the release log and `log show`.
A chat failure is logged and never stops a release: the release log already holds the truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from bot.chat import blocks
from bot.chat.blocks import Message
from bot.chat.port import Chat, ChatRefused
from bot.redact import Redactor
from bot.runbook.model import Decision, Gate, Release, StepRecord, StepState
from bot.runbook.ports import AnnounceRefused

log = logging.getLogger(__name__)


@dataclass
class _Thread:
    release: Release
    progress: dict[str, str] = field(default_factory=dict)
    gate_ts: dict[str, str] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)
    folded: set[str] = field(default_factory=set)  # steps of a concurrent phase running now
    last_update: float = 0.0
    pending: asyncio.Task[None] | None = None
    due: float = 0.0  # when the pending update runs (monotonic)
    order: asyncio.Lock = field(default_factory=asyncio.Lock)


PARENT_UPDATE_SECONDS = 3.0
PROGRESS_UPDATE_SECONDS = 10.0


class ChatReporter:
    """Reporter over a Chat; `interval` is the minimum time between parent updates after a
    step's state changes, `progress_interval` (at least `interval`; by default in proportion)
    after a progress line alone."""

    def __init__(self, chat: Chat, redactor: Redactor, *,
                 default_channel: str | None = None, interval: float = PARENT_UPDATE_SECONDS,
                 progress_interval: float | None = None,
                 rollback_enabled: bool = False) -> None:
        self.chat = chat
        self.redact = redactor
        self.default_channel = default_channel
        self.interval = interval
        # by default progress waits as much longer than state changes as in production
        self.progress_interval = max(interval, progress_interval if progress_interval is not None
                                     else interval * PROGRESS_UPDATE_SECONDS / PARENT_UPDATE_SECONDS)
        self.rollback_enabled = rollback_enabled
        self._threads: dict[int, _Thread] = {}

    # --- engine events ---------------------------------------------------------------------
    async def release_started(self, release: Release) -> None:
        thread = self._thread(release)
        channel = self._channel(release)
        if channel is None:
            log.warning("release #%s has no channel to post to", release.id)
            return
        async with thread.order:
            if release.thread_ts:
                await self._update_parent(thread)
                return
            try:
                ts = await self._post_parent(channel, self._parent(thread))
            except AnnounceRefused:
                self._threads.pop(release.id or 0, None)
                raise
            release.channel = channel  # where it was announced: the engine records it
            release.thread_ts = ts
            thread.last_update = time.monotonic()

    async def _post_parent(self, channel: str, message: Message) -> str:
        """Post a new release's parent message; AnnounceRefused when it cannot be seen."""
        try:
            return await self.chat.post(channel, self._clean(message))
        except ChatRefused as exc:
            raise AnnounceRefused(f":no_entry: Release not started: {exc}") from exc
        except Exception as exc:
            why = self.redact(str(exc)).splitlines()[0][:300] if str(exc) else type(exc).__name__
            log.error("posting the parent message to %s failed: %s", channel, why)
            raise AnnounceRefused(f":no_entry: Release not started: I could not post in "
                                  f"<#{channel}> ({why}), so nobody would see it run. "
                                  "Try again in a moment.") from exc

    async def step_started(self, release: Release, record: StepRecord) -> None:
        self._touch(release)

    async def step_progress(self, release: Release, record: StepRecord, text: str) -> None:
        thread = self._thread(release)
        thread.progress[record.name] = text
        self._touch(release, self.progress_interval)

    async def step_finished(self, release: Release, record: StepRecord) -> None:
        thread = self._thread(release)
        thread.progress.pop(record.name, None)
        if self._own_reply(thread, record):
            await self._reply(release, blocks.step_message(release, record))
        self._touch(release)

    @staticmethod
    def _own_reply(thread: _Thread, record: StepRecord) -> bool:
        """Whether a finished step gets a reply of its own: a failure always; a skipped step
        never (the checklist and the final verdict name it); a concurrent phase's check not
        (its phase summary has a row for it)."""
        if record.state == StepState.FAIL:
            return True
        return record.state != StepState.SKIPPED and record.name not in thread.folded

    async def gate_opened(self, release: Release, record: StepRecord) -> None:
        assert record.gate is not None
        ts = await self._reply(release, blocks.gate_message(release, record, record.gate))
        thread = self._thread(release)
        thread.gates[record.name] = record.gate
        if ts:
            thread.gate_ts[record.name] = ts
        self._touch(release)

    async def gate_closed(self, release: Release, record: StepRecord, decision: Decision) -> None:
        thread = self._thread(release)
        ts = thread.gate_ts.pop(record.name, None)
        gate = thread.gates.pop(record.name, None) or record.gate
        channel = release.channel
        at = decision.at.strftime("%H:%M:%S UTC")
        if ts and channel and gate is not None:
            await self._update(channel, ts, blocks.gate_answered(
                record, gate, decision.action, decision.user, at, decision.reason))
        else:
            await self._reply(release, blocks.note_message(
                f"*{record.title}*: <@{decision.user}> chose `{decision.action}` at {at}"))
        self._touch(release)

    async def phase_started(self, release: Release, phase: str, records: list[StepRecord]) -> None:
        """A concurrent phase begins: its checks are summarized together when it ends."""
        self._thread(release).folded.update(r.name for r in records)

    async def phase_finished(self, release: Release, phase: str, records: list[StepRecord]) -> None:
        self._thread(release).folded.difference_update(r.name for r in records)
        await self._reply(release, blocks.phase_summary(phase, records))

    async def release_finished(self, release: Release) -> None:
        thread = self._thread(release)
        thread.release = release
        if thread.pending is not None:
            thread.pending.cancel()
            thread.pending = None
        await self._update_parent(thread)
        await self._reply(release, blocks.final_message(release, self.rollback_enabled))
        self._threads.pop(release.id or 0, None)

    async def note(self, release: Release, text: str) -> None:
        await self._reply(release, blocks.note_message(text))

    async def flush(self) -> None:
        """Send every pending parent update now (used before exiting)."""
        for thread in list(self._threads.values()):
            if thread.pending is not None:
                thread.pending.cancel()
                thread.pending = None
                await self._update_parent(thread)

    # --- internals -------------------------------------------------------------------------
    def _thread(self, release: Release) -> _Thread:
        key = release.id or 0
        thread = self._threads.get(key)
        if thread is None:
            thread = self._threads[key] = _Thread(release)
        thread.release = release
        return thread

    def _channel(self, release: Release) -> str | None:
        return release.channel or self.default_channel

    def _parent(self, thread: _Thread) -> Message:
        return blocks.parent_message(thread.release, thread.progress, self.rollback_enabled)

    def _touch(self, release: Release, interval: float | None = None) -> None:
        """Schedule a parent update at most `interval` after the last one (default: the state
        change interval); an update already due sooner covers this one."""
        thread = self._thread(release)
        now = time.monotonic()
        due = max(now, thread.last_update + (self.interval if interval is None else interval))
        if thread.pending is not None and not thread.pending.done():
            if thread.due <= due:
                return
            thread.pending.cancel()
        thread.due = due
        thread.pending = asyncio.create_task(self._delayed_update(thread, due - now))

    async def _delayed_update(self, thread: _Thread, wait: float) -> None:
        if wait:
            await asyncio.sleep(wait)
        thread.pending = None
        await self._update_parent(thread)

    async def _update_parent(self, thread: _Thread) -> None:
        release = thread.release
        if not release.thread_ts or not release.channel:
            return
        thread.last_update = time.monotonic()
        await self._update(release.channel, release.thread_ts, self._parent(thread))

    async def _reply(self, release: Release, message: Message) -> str | None:
        channel = release.channel
        if not channel or not release.thread_ts:
            return None
        async with self._thread(release).order:
            return await self._post(channel, message, release.thread_ts)

    def _clean(self, message: Message) -> Message:
        return Message(text=self.redact(message.text), blocks=self.redact.data(message.blocks),
                       summary=self.redact(message.summary), broadcast=message.broadcast)

    async def _post(self, channel: str, message: Message, thread_ts: str | None = None) -> str | None:
        try:
            return await self.chat.post(channel, self._clean(message), thread_ts)
        except Exception as exc:
            log.error("posting to %s failed: %s", channel, self.redact(str(exc)))
            return None

    async def _update(self, channel: str, ts: str, message: Message) -> None:
        try:
            await self.chat.update(channel, ts, self._clean(message))
        except Exception as exc:
            log.error("updating %s %s failed: %s", channel, ts, self.redact(str(exc)))
