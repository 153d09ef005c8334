"""The Chat port: what the bot needs from a chat system (Slack or the console)."""

from __future__ import annotations

from typing import Protocol

from bot.chat.blocks import Message


class ChatRefused(Exception):
    """The chat system will not take the bot's messages here (not a member of the channel, no
    such channel, a revoked token); the message says what a person should do about it."""

    def __init__(self, code: str, advice: str) -> None:
        self.code = code
        super().__init__(advice)


class Chat(Protocol):
    """Post, update and whisper messages; `post` returns the message's ts."""

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str: ...

    async def update(self, channel: str, ts: str, message: Message) -> None: ...

    async def ephemeral(self, channel: str, user: str, message: Message) -> None: ...
