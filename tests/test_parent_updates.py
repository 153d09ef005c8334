"""How often the parent message is updated: state changes soon, progress lines alone later.

Slack's `chat.update` costs a call each time; a release of 17 steps with progress lines would
otherwise update its parent several times a second. The reporter coalesces: after a step starts
or finishes the update is due `interval` after the last one, after a progress line alone
`progress_interval` after it, and an update already due sooner covers a later request. The
intervals here are long (a minute, ten minutes) so nothing fires while the test looks: the test
reads when each update is due, never how long anything took.
"""

from __future__ import annotations

import time

import pytest

from bot.chat.blocks import Message
from bot.chat.reporter import PARENT_UPDATE_SECONDS, PROGRESS_UPDATE_SECONDS, ChatReporter
from bot.redact import Redactor
from bot.runbook.model import Release, StepRecord, StepState


class Updates:
    """A chat that counts parent updates."""

    def __init__(self) -> None:
        self.updates: list[str] = []

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        return "2.0"

    async def update(self, channel: str, ts: str, message: Message) -> None:
        self.updates.append(message.text)

    async def ephemeral(self, channel: str, user: str, message: Message) -> None:
        return None


def _release() -> tuple[Release, StepRecord]:
    record = StepRecord(name="tests", title="Tests", phase="prepare", state=StepState.RUNNING)
    release = Release(id=1, environment="staging", ref="main", started_by="U0ALICE",
                      channel="C1", thread_ts="1.0", steps=[record])
    return release, record


async def test_progress_waits_longer_than_a_state_change_and_a_sooner_update_covers_both() -> None:
    chat = Updates()
    reporter = ChatReporter(chat, Redactor(), interval=60, progress_interval=600)
    release, record = _release()
    thread = reporter._thread(release)
    thread.last_update = time.monotonic()  # the parent was just posted

    for n in range(50):
        await reporter.step_progress(release, record, f"{n} of 50 tests")
    progress_due = thread.due
    assert thread.due - thread.last_update == pytest.approx(600)  # one pending update for 50 lines

    await reporter.step_started(release, record)
    assert thread.due - thread.last_update == pytest.approx(60)  # the state change brings it forward
    first = thread.pending
    await reporter.step_progress(release, record, "more")
    assert thread.pending is first and thread.due < progress_due  # not pushed back again
    assert chat.updates == []  # nothing was sent while the test looked

    await reporter.flush()  # what `release_finished` and shutdown do: send it now, once
    assert len(chat.updates) == 1 and thread.pending is None


def test_production_intervals_keep_a_release_to_a_dozen_updates() -> None:
    """The figures the bench's Slack call count rests on (bench/RESULTS.md)."""
    reporter = ChatReporter(Updates(), Redactor())
    assert (reporter.interval, reporter.progress_interval) == (PARENT_UPDATE_SECONDS,
                                                               PROGRESS_UPDATE_SECONDS)
    assert ChatReporter(Updates(), Redactor(), interval=0).progress_interval == 0
