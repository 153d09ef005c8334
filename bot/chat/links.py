"""Links to a release's Slack thread: `chat.getPermalink` when the chat is Slack."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.runbook.model import Release

log = logging.getLogger(__name__)


async def thread_link(chat: Any, release: Release) -> str | None:
    """The permalink of the release's parent message, or None (no thread, not Slack, an error)."""
    client = getattr(chat, "client", None)
    if client is None or not hasattr(client, "chat_getPermalink"):
        return None
    if not release.channel or not release.thread_ts:
        return None
    try:
        response = await client.chat_getPermalink(channel=release.channel,
                                                  message_ts=release.thread_ts)
    except Exception as exc:  # a deleted message, a channel the bot left: no link, not an error
        log.info("no permalink for release #%s: %s", release.id, type(exc).__name__)
        return None
    link = response.get("permalink")
    return link if isinstance(link, str) and link.startswith("https://") else None


async def thread_links(chat: Any, releases: list[Release]) -> dict[int, str]:
    """Permalinks of several releases' threads, asked at the same time."""
    found = await asyncio.gather(*(thread_link(chat, r) for r in releases))
    return {r.id: link for r, link in zip(releases, found, strict=True) if r.id and link}
