"""The `/release` slash command: parse and authorize, acknowledge, then work in the background.

Acknowledgement happens before any network work, well inside Slack's 3 seconds. Errors in the
text, a refused user, `help`, `status` and `start --dry-run` are answered in the acknowledgement
itself, ephemerally (`status` is one indexed read of the release log). The rest runs after
`ack()` (Bolt keeps running the listener) and answers through `respond()`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.chat.blocks import Message
from bot.commands import USAGE, ParseError, parse_command
from handlers.rollback import RollbackForm
from handlers.safety import field

if TYPE_CHECKING:
    from bot.service import ReleaseService

log = logging.getLogger(__name__)


def ephemeral(respond: AsyncRespond) -> Any:
    """A reply callable answering the requester alone (`respond` is the safe one of
    handlers.safety: Slack's response URL or an ephemeral message, redacted)."""

    async def reply(message: Message) -> None:
        await respond(text=message.text, blocks=message.blocks or None,
                      response_type="ephemeral", replace_original=False)

    return reply


def register(app: AsyncApp, service: ReleaseService, form: RollbackForm) -> None:
    """Register `/release`; `/release rollback` opens the rollback form (handlers/rollback.py)."""

    @app.command("/release")
    async def release_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond,
                              ) -> None:
        parsed = parse_command(field(command, "text"))
        user = field(command, "user_id")
        channel = field(command, "channel_id")
        if not user or not channel:
            await ack(response_type="ephemeral", text=":warning: That command came without a user "
                      "or a channel, so I did nothing.")
            return
        if isinstance(parsed, ParseError):
            await ack(response_type="ephemeral", text=parsed.message)
            return
        if parsed.name == "help":
            await ack(response_type="ephemeral", text=USAGE)
            return
        refusal = service.authorize(parsed, user)
        if refusal:
            await ack(response_type="ephemeral", text=refusal)
            return
        now = service.answer_now(parsed)  # status and dry runs fit inside Slack's 3 seconds
        if now is not None:
            await ack(response_type="ephemeral", text=now.text, blocks=now.blocks or None)
            return
        await ack()
        if parsed.name == "rollback":  # in Slack the form confirms a rollback
            await form.command(parsed, channel, field(command, "trigger_id") or None,
                               ephemeral(respond))
            return
        await service.run(parsed, user=user, channel=channel, reply=ephemeral(respond))
