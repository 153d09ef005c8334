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

from bot.chat.blocks import GATE_ACTION_PREFIX, RETRY_ACTION
from bot.redact import default_redactor
from bot.runbook.engine import EngineError

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)


async def _whisper(respond: AsyncRespond, text: str) -> None:
    await respond(text=default_redactor()(text), response_type="ephemeral", replace_original=False)


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the Retry and gate buttons."""
    engine = runtime.engine
    service = runtime.service

    @app.action(RETRY_ACTION)
    async def retry(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                    respond: AsyncRespond) -> None:
        await ack()
        user = body.get("user", {}).get("id", "")
        if not service.may_operate(user):
            await _whisper(respond, f":no_entry: <@{user}>, only release operators can retry.")
            return
        try:
            release_id = int(action.get("value", ""))
            await engine.retry(release_id, user)
        except ValueError:
            await _whisper(respond, ":warning: That button does not name a release.")
        except EngineError as exc:
            await _whisper(respond, f":warning: {exc}")

    @app.action(re.compile(f"^{re.escape(GATE_ACTION_PREFIX)}"))
    async def gate(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                   respond: AsyncRespond) -> None:
        await ack()
        user = body.get("user", {}).get("id", "")
        try:
            value = json.loads(action.get("value", ""))
            release_id, step, key = int(value["release"]), str(value["step"]), str(value["gate"])
        except (ValueError, KeyError, TypeError):
            await _whisper(respond, ":warning: That button is not one of mine.")
            return
        choice = str(action.get("action_id", "")).removeprefix(GATE_ACTION_PREFIX)
        result = await engine.decide(release_id, step, key, choice, user)
        if not result.accepted:
            await _whisper(respond, f":no_entry: {result.message}")
