"""Every reporter the engine fans out to hears every event of the engine's Reporter port: a
listener missing one (the knowledge base lacked `phase_started`) stopped a whole release."""

from __future__ import annotations

import inspect

import pytest

from bot.chat.reporter import ChatReporter
from bot.kb import KnowledgeBase
from bot.lead_time import LeadTimes
from bot.manual_tests import ManualTests
from bot.runbook.ports import Reporter
from bot.telemetry import BotTelemetry
from bot.watch import Watcher

EVENTS = sorted(name for name, _ in inspect.getmembers(Reporter, inspect.isfunction)
                if not name.startswith("_"))


@pytest.mark.parametrize("cls", [ChatReporter, KnowledgeBase, LeadTimes, ManualTests, Watcher,
                                 BotTelemetry])
def test_each_reporter_handles_every_engine_event(cls: type) -> None:
    assert EVENTS, "the Reporter port declares its events"
    missing = [name for name in EVENTS if not inspect.iscoroutinefunction(getattr(cls, name, None))]
    assert missing == [], f"{cls.__name__} does not handle {missing}"
