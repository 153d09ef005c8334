"""The console chat: the same handlers as Slack; no text crashes them; buttons become commands."""

from __future__ import annotations

import asyncio
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import build_runtime
from bot.chat.console import ConsoleChat
from bot.console import ConsoleSession
from tests.helpers import make_settings


def session(**values: object) -> tuple[ConsoleSession, ConsoleChat]:
    chat = ConsoleChat(out=io.StringIO())
    runtime = build_runtime(make_settings(DATABASE_PATH=":memory:", **values), chat)
    return ConsoleSession(runtime, chat, user="U1"), chat


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200).filter(lambda t: not t.strip().lower().startswith("start")))
def test_no_release_text_crashes_the_handlers(text: str) -> None:
    async def go() -> None:
        s, chat = session()
        await s.say("/release " + text)
        assert chat.messages, "every line gets an answer"
        assert chat.messages[-1].kind == "ephemeral"
        assert s.runtime.store.list_releases() == []  # nothing but `start` writes the log
    asyncio.run(go())


async def test_start_status_and_press_without_a_question() -> None:
    s, chat = session(RUNBOOK_PATH=None)
    await s.say("/release start --dry-run")
    assert "Dry run" in chat.messages[-1].message.text
    await s.say("press apply")
    assert "No question is open" in chat.messages[-1].message.text
    await s.say("what now")
    assert "I don't understand" in chat.messages[-1].message.text


async def test_console_chat_masks_the_settings_secrets_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The terminal is one way out: a ConsoleChat built without a redactor uses the process-wide
    one (taught the settings' secrets), so a direct answer cannot print a secret."""
    from bot.chat import blocks
    from bot.redact import MASK, default_redactor

    redactor = default_redactor()
    monkeypatch.setattr(redactor, "_secrets", list(redactor._secrets))
    redactor.add(["hunter22-secret"])
    out = io.StringIO()
    await ConsoleChat(out=out).ephemeral("console", "U1", blocks.note_message("pw hunter22-secret"))
    assert "hunter22-secret" not in out.getvalue() and f"pw {MASK}" in out.getvalue()
