"""Before serving: does Slack accept the bot's tokens? And Socket Mode logs without tracebacks.

`token_problem()` asks `auth.test` with SLACK_BOT_TOKEN (and, for Socket Mode,
`apps.connections.open` with SLACK_APP_TOKEN) and returns one line when Slack rejects a token,
so `serve` and `socket` stop at once instead of failing on every request or reconnect. A
network failure is not a verdict on the token: it is logged and the bot starts.
`quiet_logger()` is the logger handed to the Socket Mode client: its reconnect errors print as
one line each, never a traceback.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.chat.slack import TOKEN_ERRORS
from bot.config import Settings

log = logging.getLogger(__name__)
APP_TOKEN_ERRORS = TOKEN_ERRORS | {"not_allowed_token_type", "invalid_token_type"}


def _rejected(call: str, setting: str, exc: SlackApiError, known: set[str]) -> str | None:
    code = str(exc.response.get("error", "")) if exc.response is not None else ""
    if code in known:
        return (f"Slack rejected {setting} ({call} answered `{code}`): reinstall the app or "
                f"copy a current token into {setting}.")
    log.warning("%s answered %s; starting anyway", call, code or exc)
    return None


def token_problem(settings: Settings, *, socket_mode: bool = False) -> str | None:
    """One line saying which token Slack rejects, or None (accepted, or Slack unreachable)."""
    client = WebClient(token=settings.secret("SLACK_BOT_TOKEN") or None,
                       base_url=settings.SLACK_API_URL, timeout=int(settings.HTTP_TIMEOUT_SECONDS))
    try:
        client.auth_test()
        if socket_mode:
            try:
                client.apps_connections_open(app_token=settings.secret("SLACK_APP_TOKEN"))
            except SlackApiError as exc:
                return _rejected("apps.connections.open", "SLACK_APP_TOKEN", exc, APP_TOKEN_ERRORS)
    except SlackApiError as exc:
        return _rejected("auth.test", "SLACK_BOT_TOKEN", exc, TOKEN_ERRORS)
    except (SlackClientError, OSError) as exc:
        log.warning("could not reach Slack to check the token (%s); starting anyway",
                    type(exc).__name__)
    return None


class OneLine(logging.Filter):
    """Drops a record's traceback, keeping its message (and the exception's name); with
    LOG_LEVEL=DEBUG the traceback stays, for whoever is debugging the connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        if record.exc_info and record.exc_info[1] is not None and record.exc_info[0] is not None:
            record.msg = f"{record.getMessage()} [{record.exc_info[0].__name__}]"
            record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def quiet_logger(name: str = "bot.socket_mode") -> logging.Logger:
    """A logger whose records never carry a traceback (for the Socket Mode client)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, OneLine) for f in logger.filters):
        logger.addFilter(OneLine())
    return logger
