"""The Slack side of the Chat port: slack_sdk's AsyncWebClient pointed at `SLACK_API_URL`.

Rate limits are retried by slack_sdk's `AsyncRateLimitErrorRetryHandler` (it honours
`Retry-After`), connection errors by `AsyncConnectionErrorRetryHandler`.

Every Web API call (chat.*, views.open/update/publish, ...) goes through
`RedactingWebClient.api_call`, the one place where what the bot sends Slack is redacted: the
readable text of the arguments is masked, while ids, timestamps and button payloads (`value`,
`action_id`, `block_id`, `private_metadata`) pass unchanged, so every button still answers.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.chat.blocks import Message
from bot.chat.pacing import SLACK_POST_INTERVAL, ChannelPacer
from bot.chat.port import ChatRefused
from bot.config import Settings
from bot.redact import Redactor, default_redactor, is_id_key

# Arguments Slack needs exactly as given: credentials sent on purpose.
_CREDENTIALS = frozenset({"token", "client_id", "client_secret", "code", "refresh_token"})
# Arguments that may arrive as JSON text rather than as structures.
_JSON_TEXT = frozenset({"blocks", "attachments", "view", "metadata"})

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


class RedactingWebClient(AsyncWebClient):
    """An AsyncWebClient that redacts the arguments of every call before sending them."""

    def __init__(self, *args: Any, redactor: Redactor | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redactor = redactor or default_redactor()

    async def api_call(self, api_method: str, *, http_verb: str = "POST",
                       files: dict[str, Any] | None = None, data: Any = None,
                       params: dict[str, Any] | None = None, json: dict[str, Any] | None = None,
                       headers: dict[str, Any] | None = None,
                       auth: dict[str, Any] | None = None) -> AsyncSlackResponse:
        """Send the call with its arguments' readable text redacted."""
        return await super().api_call(
            api_method, http_verb=http_verb, files=files,
            data=self.clean(data) if isinstance(data, dict) else data,
            params=self.clean(params), json=self.clean(json), headers=headers, auth=auth,
        )

    def clean(self, arguments: dict[str, Any] | None) -> dict[str, Any] | None:
        """The arguments of a call with their readable text redacted."""
        if not arguments:
            return arguments
        return {key: value if key in _CREDENTIALS or is_id_key(key) else self._value(key, value)
                for key, value in arguments.items()}

    def _value(self, key: str, value: Any) -> Any:
        if key in _JSON_TEXT and isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                parsed = json.loads(value)
            except ValueError:
                return self.redactor(value)
            return json.dumps(self.redactor.data(parsed))
        return self.redactor.data(value)


def redacting(client: AsyncWebClient, redactor: Redactor | None = None) -> RedactingWebClient:
    """A redacting copy of `client` (for example Bolt's per-request `context.client`)."""
    if isinstance(client, RedactingWebClient):
        return client
    return RedactingWebClient(
        token=client.token, base_url=client.base_url, timeout=client.timeout, ssl=client.ssl,
        proxy=client.proxy, session=client.session, trust_env_in_session=client.trust_env_in_session,
        headers=client.headers, team_id=client.default_params.get("team_id"), logger=client.logger,
        retry_handlers=list(client.retry_handlers) if client.retry_handlers else None,
        redactor=redactor,
    )


def make_web_client(settings: Settings) -> RedactingWebClient:
    """A redacting Web API client for the bot token and API URL in `settings`."""
    return RedactingWebClient(
        token=settings.secret("SLACK_BOT_TOKEN") or None,
        base_url=settings.SLACK_API_URL,
        timeout=int(settings.HTTP_TIMEOUT_SECONDS),
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


class SlackChat:
    """Chat over the Slack Web API. Posts are paced per channel (`pacer`: about one a second,
    Slack's limit for a channel), in the order they were asked for; updates and ephemeral
    answers are not posts and pass at once."""

    def __init__(self, client: AsyncWebClient, pacer: ChannelPacer | None = None) -> None:
        self.client = client
        self.pacer = pacer or ChannelPacer(SLACK_POST_INTERVAL)

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        """Post; ChatRefused when Slack refuses the bot access (see `refusal_advice`)."""
        try:
            async with self.pacer.turn(channel):
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
