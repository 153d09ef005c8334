"""The console side of the Chat port: a terminal chat, like errbot's text backend.

Messages are printed as readable text: the parent message when posted and when the release
ends, thread replies indented under it, ephemeral answers marked as only visible to you.
Every line passes the redactor first. `ConsoleChat.messages` keeps what was said, so tests and
the demo can pop replies like hubot's shell adapter.
"""

from __future__ import annotations

import itertools
import re
import sys
import textwrap
from dataclasses import dataclass
from typing import TextIO

from bot.chat.blocks import Message
from bot.redact import Redactor, default_redactor


@dataclass
class Said:
    """One thing the console chat showed."""

    kind: str  # post | reply | update | ephemeral
    channel: str
    ts: str
    message: Message
    thread_ts: str | None = None


EMOJI = {
    ":white_circle:": "○", ":hourglass_flowing_sand:": "…", ":raised_hand:": "✋",
    ":white_check_mark:": "✔", ":warning:": "⚠", ":x:": "✖", ":fast_forward:": "»",
    ":no_entry_sign:": "⊘", ":no_entry:": "⛔", ":electric_plug:": "⚡", ":rocket:": "🚀",
    ":rewind:": "⏪", ":bell:": "🔔",
}
LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
BARE_LINK = re.compile(r"<(https?://[^|>]+)>")
MENTION = re.compile(r"<[@#]([A-Za-z0-9._-]+)>")


def plain(text: str) -> str:
    """Slack mrkdwn made readable in a terminal: emoji, links, mentions, code fences."""
    for code, symbol in EMOJI.items():
        text = text.replace(code, symbol)
    text = LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    text = BARE_LINK.sub(lambda m: m.group(1), text)
    text = MENTION.sub(lambda m: f"@{m.group(1)}", text)
    text = text.replace("```", "")
    # Slack escapes last, so text people typed reads as they typed it
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
CODE = re.compile(r"`([^`\n]+)`")


def plain_text(text: str) -> str:
    """Slack mrkdwn as plain text for a terminal or a file: `plain()`, then no `*bold*` or
    `code` markers and Slack's `&lt;`/`&gt;`/`&amp;` escapes undone."""
    text = BOLD.sub(r"\1", plain(text))
    text = CODE.sub(r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class ConsoleChat:
    """Chat that prints to a terminal."""

    def __init__(self, out: TextIO | None = None, redactor: Redactor | None = None,
                 show_updates: bool = False) -> None:
        self.out = out or sys.stdout
        self.redact = redactor or default_redactor()
        self.show_updates = show_updates
        self.messages: list[Said] = []
        self._ts = itertools.count(1)
        self._last_update: dict[str, str] = {}

    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.000100"

    def _print(self, text: str, indent: str = "") -> None:
        body = plain(self.redact(text))
        for line in body.splitlines() or [""]:
            print(textwrap.indent(line, indent) if line else indent.rstrip(), file=self.out)
        self.out.flush()

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        ts = self._next_ts()
        self.messages.append(Said("reply" if thread_ts else "post", channel, ts, message, thread_ts))
        if thread_ts:
            self._print(message.text, indent="  │ ")
            print("  │", file=self.out)
        else:
            print("═" * 78, file=self.out)
            self._print(message.text)
            print("═" * 78, file=self.out)
        return ts

    async def update(self, channel: str, ts: str, message: Message) -> None:
        self.messages.append(Said("update", channel, ts, message))
        if self.show_updates and self._last_update.get(ts) != message.summary:
            self._last_update[ts] = message.summary
            self._print(f"↻ {message.summary}", indent="  ")

    async def ephemeral(self, channel: str, user: str, message: Message) -> None:
        self.messages.append(Said("ephemeral", channel, self._next_ts(), message))
        self._print(f"(only visible to you) {message.text}")

    def last_parent(self, ts: str) -> Message | None:
        """The newest text of the message `ts` (posted or updated)."""
        for said in reversed(self.messages):
            if said.ts == ts and said.kind in ("post", "update"):
                return said.message
        return None
