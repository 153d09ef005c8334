"""Buttons: Retry step on a failed release, and the choices of a gate (e.g. migrations).

Each press is acknowledged at once; a refusal (not allowed, already answered, a newer release
exists) is answered ephemerally to the presser and changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.chat.blocks import (
    GATE_ACTION_PREFIX,
    GATE_REASON_BLOCK,
    GATE_REASON_INPUT,
    REASON_LIMIT,
    RETRY_ACTION,
)
from bot.runbook.engine import EngineError
from handlers.safety import field, mapping, mention, release_id, user_id

if TYPE_CHECKING:
    from bot.runbook.engine import Engine
    from bot.service import ReleaseService

log = logging.getLogger(__name__)


async def _whisper(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)


def register(app: AsyncApp, engine: Engine, service: ReleaseService) -> None:
    """Register the Retry and gate buttons."""

    @app.action(RETRY_ACTION)
    async def retry(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                    respond: AsyncRespond) -> None:
        await ack()
        user = user_id(body)
        if not user or not service.may_operate(user):
            await _whisper(respond, f":no_entry: {mention(user)}, only release operators can retry.")
            return
        release = release_id(mapping(action).get("value"))
        if release is None:
            await _whisper(respond, ":warning: That button does not name a release.")
            return
        try:
            await engine.retry(release, user)
        except EngineError as exc:
            await _whisper(respond, f":warning: {exc}")

    @app.action(re.compile(f"^{re.escape(GATE_ACTION_PREFIX)}"))
    async def gate(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                   respond: AsyncRespond) -> None:
        await ack()
        user = user_id(body)
        try:
            value = mapping(json.loads(field(action, "value")))
        except (ValueError, RecursionError):
            value = {}
        release, step, key = release_id(value.get("release")), value.get("step"), value.get("gate")
        if not user or release is None or not isinstance(step, str) or not isinstance(key, str):
            await _whisper(respond, ":warning: That button is not one of mine.")
            return
        choice = field(action, "action_id").removeprefix(GATE_ACTION_PREFIX)
        result = await engine.decide(release, step, key, choice, user, gate_reason(body))
        if not result.accepted:
            await _whisper(respond, f":no_entry: {result.message}")


def gate_reason(body: dict[str, Any]) -> str:
    """What the person typed in the gate's "why" box, sent with the press (`state.values`), as
    typed (bounded); "" when the box is empty, absent or malformed."""
    values = mapping(mapping(body.get("state")).get("values"))
    return field(mapping(values.get(GATE_REASON_BLOCK)).get(GATE_REASON_INPUT), "value")[:REASON_LIMIT]
