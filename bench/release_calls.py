"""One whole sandbox release through Slack: which Web API calls it makes, and how fast it posts.

The sandbox of `release-bot demo` (sample staging app, emulators of Vercel, GitHub, PostHog and
Supabase's API, a sample workspace, real PostgreSQL/Redis/Chromium when installed) and the real
Bolt app over HTTP (`tests/slack_e2e.py`), pointed at the Slack emulator, with the chat updates
and the posts paced as `release-bot serve` paces them. A signed `/release start release/1.2.0` starts it; the
migration gate is approved with a signed button press, as a person would.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import build_runtime
from bot.chat.blocks import GATE_ACTION_PREFIX
from bot.chat.pacing import SLACK_POST_INTERVAL
from bot.chat.slack import SlackChat
from bot.runbook.model import Release
from sandbox.demo import RELEASE_REF, Sandbox
from tests.slack_e2e import SlackHarness

ONCE_PER_PROCESS = ("auth.test",)


class TimedCalls(list[tuple[str, dict[str, Any]]]):
    """The Slack emulator's call record, with the monotonic time of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: tuple[str, dict[str, Any]]) -> None:
        self.times.append(time.monotonic())
        super().append(item)


@dataclass
class ReleaseCalls:
    """What one release cost in Slack calls."""

    release: Release | None = None
    by_method: Counter[str] = field(default_factory=Counter)
    posts: dict[str, list[float]] = field(default_factory=dict)  # channel -> postMessage times
    seconds: float = 0.0

    @property
    def per_release(self) -> int:
        return sum(n for m, n in self.by_method.items() if m not in ONCE_PER_PROCESS)


def peak(times: list[float], window: float) -> int:
    """Most events within any `window` seconds."""
    ordered, best, start = sorted(times), 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    raw = message.get("blocks") or []
    blocks = json.loads(raw) if isinstance(raw, str) else raw
    return [e for b in blocks if b.get("type") == "actions" for e in b.get("elements", [])]


async def _approve_gates(slack: SlackHarness, release_id: int, pressed: set[str]) -> None:
    """Press *apply* on every gate question of the release not answered yet."""
    release = slack.runtime.store.get_release(release_id)
    if release is None or not release.thread_ts or not release.channel:
        return
    for message in slack.state.thread_replies(release.channel, release.thread_ts):
        for button in _buttons(message):
            if button.get("action_id") == f"{GATE_ACTION_PREFIX}apply" and button["value"] not in pressed:
                pressed.add(button["value"])
                await slack.press(button["action_id"], button["value"], channel=release.channel,
                                  message_ts=message["ts"])


async def _run(slack: SlackHarness, timeout: float) -> int:
    """Start the release and answer its gates; its id once finished."""
    before = slack.runtime.store.latest_release(slack.settings.ENVIRONMENT)
    response, _ = await slack.command(f'start {RELEASE_REF} --notes "Reflections get a mood score"')
    assert response.status_code == 200, response.text

    def started() -> Any:
        found = slack.runtime.store.latest_release(slack.settings.ENVIRONMENT)
        return found if found is not None and (before is None or found.id != before.id) else None

    release = await slack.wait_for(started, 30, "the release to start")
    pressed: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = slack.runtime.store.get_release(release.id)
        if current is None or not current.status.active:
            break
        await _approve_gates(slack, release.id, pressed)
        await asyncio.sleep(0.2)
    await slack.finished(release.id, timeout=max(1.0, deadline - time.monotonic()))
    return int(release.id)


async def sandbox_release(timeout: float = 400.0) -> ReleaseCalls:
    """Run one whole release of the default runbook in the sandbox and count its Slack calls."""
    out = io.StringIO()
    pacing = inspect.signature(build_runtime).parameters["update_interval"].default
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp, ExitStack() as services:
        sandbox = Sandbox(Path(tmp), out)
        await sandbox.prepare(services)
        async with AsyncExitStack() as stack:
            urls = await sandbox.serve_emulators(stack)
            values = sandbox.settings_values(urls, sandbox.runbook())
            slack = SlackHarness(Path(tmp), **values)
            calls = TimedCalls()
            slack.state.calls = calls
            async with slack:
                slack.runtime.reporter.interval = pacing  # as `release-bot serve` builds it
                assert isinstance(slack.runtime.chat, SlackChat)
                slack.runtime.chat.pacer.interval = SLACK_POST_INTERVAL
                started = time.monotonic()
                first = len(calls)
                release_id = await _run(slack, timeout)
                result = ReleaseCalls(release=slack.runtime.store.get_release(release_id),
                                      seconds=time.monotonic() - started)
                for (method, args), at in zip(calls[first:], calls.times[first:], strict=True):
                    result.by_method[method] += 1
                    if method == "chat.postMessage":
                        channel = str(args.get("channel"))
                        channel = slack.state.resolve_channel(channel) or channel
                        result.posts.setdefault(channel, []).append(at)
                return result
