"""`/release log [N]` and `/release show ID`: parsed, answered to the requester alone through the
real Bolt app, with links to the threads (chat.getPermalink) and user text escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.chat.console import plain
from bot.commands import LOG_MAX, Command, ParseError, parse_command
from bot.runbook.model import ReleaseStatus
from sandbox.staging_app import StagingState
from tests.slack_e2e import CHANNEL, SlackHarness
from tests.test_watch import watch_settings


@pytest.mark.parametrize(("text", "expected"), [
    ("log", Command("log", limit=10)),
    ("log 3", Command("log", limit=3)),
    (f"log {LOG_MAX}", Command("log", limit=LOG_MAX)),
    ("show 7", Command("show", release_id=7)),
    ("show #7", Command("show", release_id=7)),
])
def test_log_and_show_parse(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("log 0", "from 1 to 30"),
    (f"log {LOG_MAX + 1}", "from 1 to 30"),
    ("log 99999999999999", "from 1 to 30"),
    ("log many", "`many` is not a number"),
    ("log 2 3", "at most one number"),
    ("show", "needs a release id"),
    ("show <!channel>", "`&lt;!channel&gt;` is not a release id"),
])
def test_log_and_show_refuse_bad_input_clearly(text: str, why: str) -> None:
    parsed = parse_command(text)
    assert isinstance(parsed, ParseError) and why in parsed.message, parsed


async def test_log_and_show_answer_the_requester_alone_with_links_and_escaped_text(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, _ = staging
    settings = watch_settings(tmp_path, url, WATCH_MINUTES=0, RELEASE_OPERATORS="U0ALICE")
    async with SlackHarness(tmp_path, **settings) as slack:
        await slack.command('start release/1.2.0 --notes "<!channel> & <https://evil.example|x>"')
        first = await slack.finished(1)
        assert first.status == ReleaseStatus.SUCCEEDED
        await slack.command("start release/1.3.0")
        await slack.finished(2)
        posted = len(slack.state.calls_to("chat.postMessage"))

        response, key = await slack.command("log", user="U0BOB")  # read-only: anyone may
        assert response.status_code == 200
        answer = await slack.wait_response(key)
        assert answer["response_type"] == "ephemeral"
        text = answer["text"]
        assert text.index("*#2*") < text.index("*#1*")  # newest first
        assert "`release/1.2.0`" in text and "<@U0ALICE>" in text and "took " in text
        link = f"https://sandbox.slack.com/archives/{CHANNEL}/p{first.thread_ts.replace('.', '')}"
        assert f"<{link}|thread>" in text
        assert len(slack.state.calls_to("chat.getPermalink")) == 2

        _, key = await slack.command("log 1", user="U0BOB")
        assert "*#1*" not in (await slack.wait_response(key))["text"]

        _, key = await slack.command("show 1", user="U0BOB")
        shown = await slack.wait_response(key)
        assert shown["response_type"] == "ephemeral"
        assert "| Release Date |" in shown["text"] and "| Manual Tests |" in shown["text"]
        assert "&lt;!channel&gt; &amp; &lt;https://evil.example|x&gt;" in shown["text"]
        assert "<!channel>" not in shown["text"] and "<https://evil" not in str(shown["blocks"])
        assert f"<{link}|thread>" in shown["text"]
        assert len(slack.state.calls_to("chat.postMessage")) == posted  # nothing in the channel

        _, key = await slack.command("show 99", user="U0BOB")
        assert "Release #99 does not exist" in (await slack.wait_response(key))["text"]
        stored = slack.runtime.store.get_release(1)
        assert stored is not None and stored.notes == "<!channel> & <https://evil.example|x>"


def test_the_console_shows_slack_dates_as_their_fallback() -> None:
    text = "started <!date^1780000000^{date_short_pretty} {time}|2026-05-28 20:26 UTC> · <@U0ALICE>"
    assert plain(text) == "started 2026-05-28 20:26 UTC · @U0ALICE"
