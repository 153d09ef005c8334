"""Property: whatever reaches `POST /slack/events` (random bodies, headers and payloads, signed or
not), the real Bolt app behind aiohttp never answers 500, never logs a traceback, and changes
nothing unless the request was signed and well formed.

The bot runs on its own event loop in a thread for the whole test; hypothesis sends requests from
the test's thread, one at a time, and reads the release log and the Slack emulator afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.chat.blocks import GATE_ACTION_PREFIX, RETRY_ACTION, ROLLBACK_ACTION
from bot.slack_request import Verifier
from handlers.rollback import CALLBACK_ID
from tests.slack_e2e import CHANNEL, SIGNING_SECRET, SlackHarness

RUNBOOK = "name: none\nphases:\n  - name: report\n    steps:\n      - name: monitoring_links\n"


class Records(logging.Handler):
    """Every log record of the bot process, for the no-traceback property."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.bad.append(f"{record.name}: {record.getMessage()[:300]}")


class Bot:
    """A SlackHarness served from a background event loop."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        runbook = tmp_path / "none.yml"
        runbook.write_text(RUNBOOK)
        self.slack = SlackHarness(tmp_path, RUNBOOK_PATH=str(runbook),
                                  STAGING_URL="https://staging.pocket.test",
                                  RELEASE_OPERATORS="U0OPERATOR")
        self.run(self.slack.__aenter__())

    def run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=120)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async def send() -> tuple[int, str]:
            response = await self.slack.http.post("/slack/events", content=body, headers=headers)
            return response.status_code, response.text
        return self.run(send())

    def counts(self) -> tuple[int, int]:
        """(releases in the log, Slack Web API calls made), read on the bot's own thread."""
        async def count() -> tuple[int, int]:
            return (len(self.slack.runtime.store.list_releases()), len(self.slack.state.calls))
        return self.run(count())

    def close(self) -> None:
        self.run(self.slack.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bot, Records]]:
    records = Records()
    logging.getLogger().addHandler(records)
    bot = Bot(tmp_path_factory.mktemp("fuzz"))
    try:
        yield bot, records
    finally:
        bot.close()
        logging.getLogger().removeHandler(records)


def json_values(depth: int = 3) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**40, max_value=10**40),
                       st.floats(allow_nan=False), st.text(max_size=40),
                       st.sampled_from(["1", "9" * 30, "", "U0OPERATOR", "<!channel>"]))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
        max_leaves=12)


def payloads() -> st.SearchStrategy[dict[str, Any]]:
    """Interaction payloads shaped like ours, with any field replaced by anything."""
    action = st.fixed_dictionaries({
        "action_id": st.one_of(st.sampled_from([RETRY_ACTION, ROLLBACK_ACTION,
                                                f"{GATE_ACTION_PREFIX}apply"]), json_values()),
        "value": st.one_of(st.sampled_from(['{"release": 1e999, "step": "s", "gate": "g"}',
                                            "1", "9" * 30]), json_values()),
    })
    return st.fixed_dictionaries({
        "type": st.one_of(st.sampled_from(["block_actions", "view_submission"]), json_values()),
        "user": st.one_of(st.just({"id": "U0OPERATOR"}), json_values()),
        "actions": st.one_of(st.lists(action, max_size=2), json_values()),
        "view": st.one_of(st.fixed_dictionaries({
            "callback_id": st.just(CALLBACK_ID),
            "private_metadata": st.one_of(st.just('{"release": 1}'), st.text(max_size=30)),
            "state": json_values()}), json_values()),
        "response_url": st.one_of(st.just("https://evil.example/hook"), json_values()),
        "trigger_id": json_values(),
    })


def commands() -> st.SearchStrategy[dict[str, str]]:
    words = st.sampled_from(["start", "status", "cancel", "rollback", "help", "--notes",
                             "--dry-run", "9" * 30, "<!channel>", "main", "#1", "'", '"'])
    return st.fixed_dictionaries({
        "command": st.sampled_from(["/release", "/other", ""]),
        "text": st.one_of(st.lists(words, max_size=4).map(" ".join), st.text(max_size=60)),
        "user_id": st.sampled_from(["U0OPERATOR", "U0MALLORY", ""]),
        "channel_id": st.sampled_from([CHANNEL, ""]),
        "response_url": st.sampled_from(["https://evil.example/x", "", "not a url"]),
    })


def bodies() -> st.SearchStrategy[tuple[bytes, str]]:
    form = st.one_of(
        commands().map(urlencode),
        payloads().map(lambda p: urlencode({"payload": json.dumps(p)})),
        json_values().map(lambda v: urlencode({"payload": json.dumps(v)})),
        st.text(max_size=200),
    ).map(lambda text: (text.encode(), "application/x-www-form-urlencoded"))
    raw = st.tuples(st.binary(max_size=300),
                    st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                     "text/plain", ""]))
    as_json = json_values().map(lambda v: (json.dumps(v).encode(), "application/json"))
    return st.one_of(form, raw, as_json)


def headers_for(body: bytes, content_type: str, how: str, junk: str) -> dict[str, str]:
    ts = str(int(time.time()))
    headers = {"Content-Type": content_type} if content_type else {}
    if how == "signed":
        headers.update({"X-Slack-Request-Timestamp": ts,
                        "X-Slack-Signature": Verifier(SIGNING_SECRET).signature(ts, body)})
    elif how == "wrong-secret":
        headers.update({"X-Slack-Request-Timestamp": ts,
                        "X-Slack-Signature": Verifier("other-secret").signature(ts, body)})
    elif how == "stale":
        old = str(int(time.time()) - 600)
        headers.update({"X-Slack-Request-Timestamp": old,
                        "X-Slack-Signature": Verifier(SIGNING_SECRET).signature(old, body)})
    elif how == "junk-headers":
        headers.update({"X-Slack-Request-Timestamp": junk, "X-Slack-Signature": junk})
    return headers


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies(), how=st.sampled_from(["signed", "wrong-secret", "stale", "junk-headers",
                                           "none"]),
       junk=st.one_of(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                              max_size=80), st.just("v0=" + "a" * 8000), st.just("1" * 30)),
       retry=st.booleans())
def test_nothing_sent_to_the_bot_makes_it_fail_or_act_unsigned(
        bot: tuple[Bot, Records], body: tuple[bytes, str], how: str, junk: str,
        retry: bool) -> None:
    harness, records = bot
    raw, content_type = body
    headers = headers_for(raw, content_type, how, junk)
    if retry:
        headers["X-Slack-Retry-Num"] = "1"
    before = harness.counts()
    status, _ = harness.post(raw, headers)
    event(f"{how}: {status}")
    assert status != 500 and status < 500
    if how != "signed":
        assert status == 401
        assert harness.counts() == before
    assert records.bad == []
