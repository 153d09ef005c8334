"""End-to-end harness: the real Bolt app served over HTTP, signed requests, the Slack emulator.

`SlackHarness` starts the Slack Web API emulator, builds the bot (settings pointing
`SLACK_API_URL` at the emulator), serves `bot.server.create_web_app` on loopback, and sends
slash commands, button presses and view submissions the way Slack does: form-encoded, with
`X-Slack-Signature` and `X-Slack-Request-Timestamp`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot.app import Runtime, build_bolt_app
from bot.chat.slack import SlackChat
from bot.config import Settings
from bot.server import create_web_app
from sandbox.server import serve
from tests.helpers import make_settings
from tests.mock_slack_api import SlackState, create_slack_app, response_url_for

SIGNING_SECRET = "sandbox-signing-secret-0123456789"
BOT_TOKEN = "xoxb-sandbox-token"
CHANNEL = "C0RELEASES"
POST_INTERVAL = 0.01  # seconds between two posts in a channel (Slack: 1)


class SlackHarness:
    """A bot under test, reachable only the way Slack reaches it."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.tmp_path = tmp_path
        self.overrides = settings
        self.state = SlackState(token=BOT_TOKEN)
        self.state.accept_any_channel = True
        self._stack = AsyncExitStack()
        self.slack_url = ""
        self.bot_url = ""
        self.runtime: Runtime
        self.settings: Settings
        self.http: httpx.AsyncClient

    async def __aenter__(self) -> SlackHarness:
        self.slack_url = await self._stack.enter_async_context(serve(create_slack_app(self.state)))
        await self.start_bot(**self.overrides)
        return self

    async def start_bot(self, **overrides: Any) -> None:
        """(Re)start the bot on the same release log (a restart keeps DATABASE_PATH)."""
        values: dict[str, Any] = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{self.slack_url}/api/",
            "DATABASE_PATH": str(self.tmp_path / "release-log.db"),
            "HTTP_TIMEOUT_SECONDS": 5,
        }
        values.update(overrides)
        self.settings = make_settings(**values)
        app, self.runtime = build_bolt_app(self.settings)
        self.runtime.reporter.interval = 0.05
        assert isinstance(self.runtime.chat, SlackChat)
        self.runtime.chat.pacer.interval = POST_INTERVAL  # paced as Slack asks, only quicker
        self._bot_stack = AsyncExitStack()
        self.web_app: web.Application = create_web_app(app, self.runtime)
        self.bot_url = await self._bot_stack.enter_async_context(serve(self.web_app))
        self.http = httpx.AsyncClient(base_url=self.bot_url, timeout=10)

    async def stop_bot(self) -> None:
        await self.http.aclose()
        await self._bot_stack.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_bot()
        await self._stack.aclose()

    # --- requests as Slack sends them -----------------------------------------------------------
    def signed_headers(self, body: str, *, timestamp: int | None = None,
                       secret: str = SIGNING_SECRET) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        }

    async def post_form(self, fields: dict[str, str], **sign: Any) -> httpx.Response:
        body = urlencode(fields)
        return await self.http.post("/slack/events", content=body,
                                    headers=self.signed_headers(body, **sign))

    async def command(self, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL,
                      **sign: Any) -> tuple[httpx.Response, str]:
        """Send `/release <text>`; returns the HTTP response and the response_url key."""
        key = uuid.uuid4().hex[:12]
        fields = {
            "token": "legacy-verification-token",
            "team_id": self.state.team_id,
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": "releases",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/release",
            "text": text,
            "api_app_id": "A0RELEASEBOT",
            "response_url": response_url_for(self.slack_url, key),
            "trigger_id": f"trigger-{key}",
        }
        return await self.post_form(fields, **sign), key

    async def interact(self, payload: dict[str, Any], **sign: Any) -> httpx.Response:
        return await self.post_form({"payload": json.dumps(payload)}, **sign)

    async def press(self, action_id: str, value: str, *, user: str = "U0ALICE",
                    channel: str = CHANNEL, message_ts: str = "",
                    state: dict[str, Any] | None = None) -> tuple[httpx.Response, str]:
        """Press a button of a message; returns the response and its response_url key.
        `state` is what the message's input boxes held (Slack's `state.values`)."""
        key = uuid.uuid4().hex[:12]
        payload = {
            "type": "block_actions",
            "team": {"id": self.state.team_id, "domain": "sandbox"},
            "user": {"id": user, "username": user.lower(), "team_id": self.state.team_id},
            "api_app_id": "A0RELEASEBOT",
            "token": "legacy-verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "trigger_id": f"trigger-{key}",
            "channel": {"id": channel, "name": "releases"},
            "message": {"ts": message_ts, "text": ""},
            "response_url": response_url_for(self.slack_url, key),
            "actions": [{"action_id": action_id, "block_id": "b", "value": value,
                         "type": "button", "action_ts": f"{time.time():.6f}"}],
        }
        if state is not None:
            payload["state"] = {"values": state}
        return await self.interact(payload), key

    # --- reading what the bot said ---------------------------------------------------------------
    def responses(self, key: str) -> list[dict[str, Any]]:
        return self.state.responses.get(key, [])

    async def wait_for(self, predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
        """Poll `predicate()` until it returns something truthy."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def answer(self, response: httpx.Response, key: str,
                     timeout: float = 10.0) -> dict[str, Any]:
        """The answer to a command: in its acknowledgement (help, status, dry runs, refusals), or
        else the last message posted to its response_url."""
        if response.content and response.headers.get("content-type", "").startswith(
                "application/json") and response.json().get("text"):
            return dict(response.json())
        return await self.wait_response(key, timeout)

    async def wait_response(self, key: str, timeout: float = 10.0) -> dict[str, Any]:
        found = await self.wait_for(lambda: self.responses(key), timeout, f"response {key}")
        return found[-1]

    def parent_posts(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return [a for a in self.state.calls_to("chat.postMessage")
                if a.get("channel") == channel and not a.get("thread_ts")]

    def thread(self, ts: str, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return [a for a in self.state.calls_to("chat.postMessage")
                if a.get("channel") == channel and a.get("thread_ts") == ts]

    def updates(self, ts: str) -> list[dict[str, Any]]:
        return [a for a in self.state.calls_to("chat.update") if a.get("ts") == ts]

    async def finished(self, release_id: int, timeout: float = 60.0) -> Any:
        """The release once it exists and is no longer running or waiting."""
        def done() -> Any:
            release = self.runtime.store.get_release(release_id)
            return release if release is not None and not release.status.active else None

        await self.wait_for(done, timeout, f"release #{release_id} to finish")
        await self.runtime.engine.wait(release_id)
        await self.runtime.reporter.flush()
        return self.runtime.store.get_release(release_id)


def blocks_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The blocks of a message or call the Slack emulator recorded (sent as JSON text or a list)."""
    raw = message.get("blocks") or []
    found: list[dict[str, Any]] = json.loads(raw) if isinstance(raw, str) else raw
    return found


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Every element of the message's actions blocks."""
    return [e for b in blocks_of(message) if b.get("type") == "actions" for e in b.get("elements", [])]
