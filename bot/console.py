"""The console chat: type `/release …` in a terminal and watch the thread, like hubot's shell.

Lines go through the same parser, authorization and service as Slack's slash command. Buttons
become commands: `press <choice>` answers the open question (e.g. `press apply`), `retry [id]`
presses Retry step. `ConsoleSession.say()` is what tests and the demo push lines into.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncGenerator
from typing import TextIO

from bot.app import Runtime
from bot.chat import blocks
from bot.chat.console import ConsoleChat
from bot.commands import ParseError, parse_command
from bot.runbook.engine import EngineError
from bot.runbook.model import StepState

HELP = """Type `/release start [ref]`, `/release status`, `/release cancel`, `/release help`,
`press <choice>` to answer an open question (e.g. `press apply`), `retry [id]`, or `quit`."""


class ConsoleSession:
    """One person at the terminal, talking to the bot."""

    def __init__(self, runtime: Runtime, chat: ConsoleChat, *, user: str = "console",
                 channel: str = "console") -> None:
        self.runtime = runtime
        self.chat = chat
        self.user = user
        self.channel = channel

    async def reply(self, message: blocks.Message) -> None:
        await self.chat.ephemeral(self.channel, self.user, message)

    async def say(self, line: str) -> None:
        """Handle one typed line."""
        line = line.strip()
        if not line:
            return
        words = line.split()
        if words[0] == "/release":
            await self._release(line.removeprefix("/release"))
        elif words[0] == "press" and len(words) >= 2:
            await self.press(words[1], int(words[2]) if len(words) > 2 and words[2].isdigit() else None)
        elif words[0] == "retry":
            await self._retry(words[1] if len(words) > 1 else None)
        elif words[0] in ("help", "?"):
            await self.reply(blocks.note_message(HELP))
        else:
            await self.reply(blocks.note_message(f"I don't understand `{line[:60]}`.\n{HELP}"))

    async def _release(self, text: str) -> None:
        parsed = parse_command(text)
        if isinstance(parsed, ParseError):
            await self.reply(blocks.note_message(parsed.message))
            return
        refusal = self.runtime.service.authorize(parsed, self.user)
        if refusal:
            await self.reply(blocks.note_message(refusal))
            return
        await self.runtime.service.run(parsed, user=self.user, channel=self.channel,
                                       reply=self.reply)

    async def press(self, choice: str, release_id: int | None = None) -> bool:
        """Answer the open question of a release (the newest waiting one by default)."""
        store = self.runtime.store
        release = (store.get_release(release_id) if release_id
                   else store.active_release(self.runtime.settings.ENVIRONMENT))
        waiting = [r for r in release.steps if r.state == StepState.WAITING] if release else []
        if release is None or release.id is None or not waiting or waiting[0].gate is None:
            await self.reply(blocks.note_message("No question is open right now."))
            return False
        record = waiting[0]
        assert record.gate is not None
        result = await self.runtime.engine.decide(release.id, record.name, record.gate.key,
                                                  choice, self.user)
        if not result.accepted:
            choices = ", ".join(a.id for a in record.gate.actions)
            await self.reply(blocks.note_message(f"{result.message} (choices: {choices})"))
        return result.accepted

    async def _retry(self, word: str | None) -> None:
        store = self.runtime.store
        release = (store.get_release(int(word)) if word and word.isdigit()
                   else store.latest_release(self.runtime.settings.ENVIRONMENT))
        if release is None or release.id is None:
            await self.reply(blocks.note_message("No release to retry."))
            return
        try:
            await self.runtime.engine.retry(release.id, self.user)
        except EngineError as exc:
            await self.reply(blocks.note_message(f":warning: {exc}"))


async def interactive(session: ConsoleSession, stdin: TextIO | None = None) -> None:
    """Read lines until EOF or `quit`, handling each while releases run in the background.

    Lines are read by the event loop itself, never by a thread blocked in `readline`, so Ctrl-C
    (which cancels this coroutine) leaves at once instead of waiting for one more Enter.
    """
    stdin = stdin or sys.stdin
    print(HELP, file=session.chat.out)
    await session.runtime.engine.recover()
    lines = read_lines(stdin)
    try:
        while True:
            print(f"{session.user}> ", end="", file=session.chat.out, flush=True)
            line = await anext(lines, "")
            if not line or line.strip() in ("quit", "exit"):
                break
            await session.say(line)
            await asyncio.sleep(0)
    finally:
        await lines.aclose()
    # Releases still running stay in the release log as they are; the next start resumes them.
    await session.runtime.engine.shutdown()
    await session.runtime.reporter.flush()


async def read_lines(stdin: TextIO) -> AsyncGenerator[str, None]:
    """The lines of `stdin` as they arrive. A pipe or terminal is watched by the event loop
    (`add_reader`); what cannot be watched (a file, a StringIO) never blocks, so it is read
    directly."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()
    try:
        fd = stdin.fileno()
        loop.add_reader(fd, _read_ready, fd, chunks)
    except (AttributeError, OSError, ValueError, NotImplementedError):
        while typed := stdin.readline():
            yield typed
        return
    try:
        pending = b""
        while chunk := await chunks.get():
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                yield line.decode(errors="replace") + "\n"
        if pending:
            yield pending.decode(errors="replace")
    finally:
        loop.remove_reader(fd)


def _read_ready(fd: int, chunks: asyncio.Queue[bytes]) -> None:
    try:
        chunks.put_nowait(os.read(fd, 65536))
    except BlockingIOError:
        return
    except OSError:
        chunks.put_nowait(b"")  # a closed terminal reads as the end
