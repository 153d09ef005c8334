"""The fan-out of engine events: a listener's failure never changes a release, the chat's does.

The chat reporter comes first; telemetry, the knowledge base and the watch listen after it. A
listener that raises on every event (a knowledge base whose disk is full, a PostHog outage) is
logged, and the release runs to the same verdict. The chat's own refusal still reaches the
engine, after every listener has heard the event.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from bot.chat.console import ConsoleChat
from bot.chat.reporter import ChatReporter
from bot.locks import SqliteLock
from bot.redact import Redactor, default_redactor
from bot.runbook.engine import Engine
from bot.runbook.loader import parse_runbook
from bot.runbook.model import Release, ReleaseStatus, StepResult, StepState
from bot.runbook.ports import AnnounceRefused
from bot.runbook.step import StepContext, StepDef
from bot.store import Store
from bot.telemetry import Reporters
from tests.helpers import make_settings

SECRET = "kb-token-0123456789abcdef"


class Broken:
    """A listener that fails on every event, its message holding a secret."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: Any) -> None:
            self.heard.append(name)
            raise OSError(f"disk full writing with {SECRET}")

        return fail


async def _ok(ctx: StepContext) -> StepResult:
    return StepResult.ok("done")


async def test_a_failing_listener_neither_fails_the_release_nor_leaks_its_message(
        caplog: pytest.LogCaptureFixture) -> None:
    default_redactor().add([SECRET])
    registry = {name: StepDef(name=name, title=name.title(), run=_ok, describe=name)
                for name in ("tests", "deploy")}
    runbook = parse_runbook("name: r\nphases:\n  - name: all\n    steps: [{name: tests}, {name: deploy}]\n",
                            registry)
    store = Store(":memory:")
    chat = ConsoleChat(out=io.StringIO(), redactor=Redactor())
    listener = Broken()
    reporter = Reporters(ChatReporter(chat, Redactor(), default_channel="C1", interval=0),
                         listener)
    engine = Engine(settings=make_settings(), store=store, reporter=reporter, runbook=runbook,
                    registry=registry, redactor=Redactor(), lock=SqliteLock(store))
    with caplog.at_level(logging.ERROR, logger="bot.telemetry"):
        release = await engine.start(ref="main", user="U0ALICE", channel="C1")
        assert release.id is not None
        done = await engine.wait(release.id)
    assert done.status == ReleaseStatus.SUCCEEDED
    assert [s.state for s in done.steps] == [StepState.OK, StepState.OK]
    assert {"release_started", "step_finished", "release_finished"} <= set(listener.heard)
    assert any("Succeeded" in said.message.text for said in chat.messages)  # the chat heard all
    failures = [r.getMessage() for r in caplog.records if "Broken failed on" in r.getMessage()]
    assert failures and all("disk full" in line and SECRET not in line for line in failures)


async def test_the_chats_refusal_still_reaches_the_engine_after_every_listener() -> None:
    class Refusing:
        async def release_started(self, release: Release) -> None:
            raise AnnounceRefused("not in the channel")

    listener = Broken()
    release = Release(id=1, environment="staging", ref="main", started_by="U1")
    with pytest.raises(AnnounceRefused):
        await Reporters(Refusing(), listener).release_started(release)
    assert listener.heard == ["release_started"]
