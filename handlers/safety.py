"""What every listener can rely on, whatever a signed payload holds.

- `install(app, runtime)` adds a global middleware: `ack()` redacts what it answers, and
  `respond()` answers through `response_url` only when that URL points at Slack
  (`https://hooks.slack.com/`, or the host of a non-default `SLACK_API_URL`: tests, GovSlack);
  otherwise, or when there is none, it answers with `chat.postEphemeral` to the person in the
  channel, and when that is not possible it says so in the log. Either way it redacts.
- `user_id()`, `release_id()`, `field()`, `mapping()` read payload fields of any shape without
  raising: a field of the wrong type reads as missing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.chat.slack import redacting
from bot.config import Settings
from bot.redact import Redactor

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
SLACK_HOOKS = "https://hooks.slack.com/"
# Release ids are SQLite integers; anything longer than this cannot name one.
MAX_RELEASE_ID = 10**15
USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


def allowed_response_url(url: object, settings: Settings) -> bool:
    """Whether `url` is one of Slack's response URLs (never an arbitrary host)."""
    if not isinstance(url, str) or len(url) > 2000:
        return False
    if settings.SLACK_API_URL == DEFAULT_API_URL:
        return url.startswith(SLACK_HOOKS)
    api = urlsplit(settings.SLACK_API_URL)
    try:
        given = urlsplit(url)
        hosts = {api.netloc}
        if api.hostname == "slack-gov.com":
            hosts.add("hooks.slack-gov.com")
        return given.scheme == api.scheme and given.netloc in hosts
    except ValueError:
        return False


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def field(container: Any, key: str) -> str:
    """A string field of a JSON object ('' when missing or not a string)."""
    value = mapping(container).get(key)
    return value if isinstance(value, str) else ""


def user_id(body: Any) -> str:
    """The acting user's id in an interaction or command payload ('' when absent)."""
    body = mapping(body)
    return field(body.get("user"), "id") or field(body, "user_id")


def mention(user: str) -> str:
    """`<@U…>` for a Slack user id; anything else is not turned into a mention."""
    return f"<@{user}>" if USER_ID.fullmatch(user) else "someone"


def release_id(value: Any) -> int | None:
    """A release id from a button value or JSON field: a positive integer of sane size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 15:
        number = int(value.strip())
    else:
        return None
    return number if 0 < number < MAX_RELEASE_ID else None


class RedactingAck(AsyncAck):
    """`ack()` whose text, blocks and form errors pass through the redactor."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    async def __call__(  # type: ignore[override]
            self, text: str | dict[str, Any] = "", blocks: Any = None, **kwargs: Any,
    ) -> BoltResponse:
        if isinstance(text, str):
            text = self.redact(text)
        if kwargs.get("errors"):
            kwargs["errors"] = {key: self.redact(str(value))
                                for key, value in kwargs["errors"].items()}
        if blocks:
            blocks = self.redact.data([b if isinstance(b, dict) else b.to_dict() for b in blocks])
        return await super().__call__(text, blocks, **kwargs)


class Sessions:
    """One HTTP session (keep-alive connections) for every `respond()` of this process, per event
    loop; closed when the bot stops."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session, self._loop = aiohttp.ClientSession(), loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class SafeRespond(AsyncRespond):
    """`respond()` that only ever posts to Slack, redacted, and never raises. Where it may post
    is worked out when it is called: most requests are answered by `ack()` and never use it."""

    def __init__(self, context: AsyncBoltContext, settings: Settings, redact: Redactor,
                 sessions: Sessions) -> None:
        super().__init__(response_url=None)
        self.context = context
        self.settings = settings
        self.redact = redact
        self.sessions = sessions

    async def __call__(  # type: ignore[override]
            self, text: str = "", blocks: Any = None, response_type: str | None = None,
            replace_original: bool | None = None, **_: Any) -> Any:
        text = self.redact(text)
        if blocks:
            blocks = self.redact.data([b if isinstance(b, dict) else b.to_dict() for b in blocks])
        url = self.context.response_url
        trusted = url if allowed_response_url(url, self.settings) else None
        if url and trusted is None:
            log.warning("ignored a response URL that does not point at Slack")
        try:
            if trusted is not None:
                client = AsyncWebhookClient(trusted, session=self.sessions.get())
                return await client.send(text=text, blocks=blocks, response_type=response_type,
                                         replace_original=replace_original)
            await self._ephemeral(text, blocks)
        except Exception as exc:  # an expired response_url, Slack down: the reply is lost, not the bot
            log.warning("could not answer the requester: %s", self.redact(str(exc))[:300])
        return None

    async def _ephemeral(self, text: str, blocks: list[dict[str, Any]] | None) -> None:
        """Without a Slack response URL: an ephemeral message to the person in the channel."""
        channel, user = self.context.channel_id, self.context.user_id
        if not channel or not user:
            log.warning("a reply was dropped: no Slack response URL and no channel to use")
            return
        await redacting(self.context.client, self.redact).chat_postEphemeral(
            channel=channel, user=user, text=text, blocks=blocks)


class SafeReplies(AsyncMiddleware):
    """Every request's `ack()` and `respond()` made safe (and its Web API client redacting, for
    the listeners that call it). A middleware class, not a function: Bolt hands it the request
    directly instead of building keyword arguments for it on every request."""

    def __init__(self, settings: Settings, redact: Redactor) -> None:
        self.settings = settings
        self.redact = redact
        self.sessions = Sessions()

    async def async_process(self, *, req: AsyncBoltRequest, resp: BoltResponse,
                            next: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse | None:
        context, redact = req.context, self.redact
        if not isinstance(req.body.get("command"), str):  # the /release listener never uses it
            context["client"] = redacting(context.client, redact)  # listeners' Web API calls
        context["respond"] = SafeRespond(context, self.settings, redact, self.sessions)
        context["ack"] = RedactingAck(redact)
        return await next()


def install(app: AsyncApp, settings: Settings, redact: Redactor) -> Callable[[], Awaitable[None]]:
    """Add the middleware that makes `ack()` and `respond()` safe for every listener; returns what
    closes its HTTP session when the bot stops."""
    middleware = SafeReplies(settings, redact)
    app.middleware(middleware)
    return middleware.sessions.close
