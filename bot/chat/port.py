"""The Chat port: what the bot needs from a chat system (Slack or the console)."""

from __future__ import annotations

from typing import Protocol

from bot.chat.blocks import Message


class Chat(Protocol):
    """Post, update and whisper messages; `post` returns the message's ts."""

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str: ...

    async def update(self, channel: str, ts: str, message: Message) -> None: ...

    async def ephemeral(self, channel: str, user: str, message: Message) -> None: ...
