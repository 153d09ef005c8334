"""The Slack side of the Chat port: slack_sdk's AsyncWebClient pointed at `SLACK_API_URL`.

Rate limits are retried by slack_sdk's `AsyncRateLimitErrorRetryHandler` (it honours
`Retry-After`), connection errors by `AsyncConnectionErrorRetryHandler`.
"""

from __future__ import annotations

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.blocks import Message
from bot.config import Settings


def make_web_client(settings: Settings) -> AsyncWebClient:
    """A Web API client for the bot token and API URL in `settings`."""
    return AsyncWebClient(
        token=settings.secret("SLACK_BOT_TOKEN") or None,
        base_url=settings.SLACK_API_URL,
        timeout=int(settings.HTTP_TIMEOUT_SECONDS),
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


class SlackChat:
    """Chat over the Slack Web API."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        response = await self.client.chat_postMessage(
            channel=channel, text=message.text[:39000], blocks=message.blocks or None,
            thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
        )
        return str(response["ts"])

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self.client.chat_update(
            channel=channel, ts=ts, text=message.text[:39000], blocks=message.blocks or []
        )

    async def ephemeral(self, channel: str, user: str, message: Message) -> None:
        await self.client.chat_postEphemeral(
            channel=channel, user=user, text=message.text[:39000], blocks=message.blocks or None
        )
