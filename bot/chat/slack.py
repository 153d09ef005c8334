"""The Slack side of the Chat port: slack_sdk's AsyncWebClient pointed at `SLACK_API_URL`.

Rate limits are retried by slack_sdk's `AsyncRateLimitErrorRetryHandler` (it honours
`Retry-After`), connection errors by `AsyncConnectionErrorRetryHandler`.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.blocks import Message
from bot.chat.port import ChatRefused
from bot.config import Settings

BOT_HANDLE = "@release-bot"  # manifest.yml's display_name
TOKEN_ERRORS = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}


def refusal_advice(code: str, channel: str) -> str | None:
    """What a person should do when Slack answers `code` to a post in `channel`, or None when
    the error is not about the bot's access (a bad message, a rate limit)."""
    where = f"<#{channel}>" if channel[:1] in "CG" else f"`{channel}`"
    if code == "not_in_channel":
        return (f"I am not a member of {where}, so nobody would see this release: invite "
                f"{BOT_HANDLE} to {where} (`/invite {BOT_HANDLE}`) and start it again.")
    if code == "channel_not_found":
        return (f"I cannot find the channel {where} (it does not exist, or it is private and I "
                f"am not in it): invite {BOT_HANDLE} to it, or check RELEASE_CHANNEL.")
    if code == "is_archived":
        return f"{where} is archived: unarchive it or set RELEASE_CHANNEL to another channel."
    if code in TOKEN_ERRORS:
        return (f"Slack rejected my token (`{code}`): reinstall the app to the workspace and "
                "update SLACK_BOT_TOKEN.")
    if code in ("missing_scope", "restricted_action", "ekm_access_denied"):
        return (f"Slack does not let me post in {where} (`{code}`): reinstall the app from "
                "manifest.yml (scope chat:write) or ask a workspace admin.")
    return None


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
        """Post; ChatRefused when Slack refuses the bot access (see `refusal_advice`)."""
        try:
            return await self._post(channel, message, thread_ts)
        except SlackApiError as exc:
            code = str(exc.response.get("error", "")) if exc.response is not None else ""
            advice = refusal_advice(code, channel)
            if advice is None:
                raise
            raise ChatRefused(code, advice) from exc

    async def _post(self, channel: str, message: Message, thread_ts: str | None) -> str:
        response = await self.client.chat_postMessage(
            channel=channel, text=message.text[:39000], blocks=message.blocks or None,
            thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
            reply_broadcast=True if thread_ts and message.broadcast else None,
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
