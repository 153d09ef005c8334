"""What reaches Bolt from the public internet: only well-formed requests signed by Slack.

`check(headers, body, verifier)` looks at a raw `POST /slack/events` and either rejects it (401
for anything about the signature, 400 for a body Slack would never send) or accepts it with its
decoded text and the keys that identify it for the replay guard. The signature is checked first,
on the raw bytes, before any decoding or parsing; the headers it needs are checked for shape
before any hashing, so an oversized or malformed header costs nothing. Pure: no I/O, no logging
of the body.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.logger.messages import warning_unhandled_request
from slack_bolt.request import payload_utils
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
TIMESTAMP = re.compile(r"[0-9]{1,12}")
FORM = "application/x-www-form-urlencoded"
WINDOW_SECONDS = 5 * 60  # Slack: reject requests more than five minutes old


class Verifier:
    """Slack's `v0` request signature over the raw bytes (slack_sdk's verifier decodes the body
    as UTF-8 first and raises on anything else, so it cannot be handed a hostile body)."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.key = secret.encode()
        self.clock = clock

    def signature(self, timestamp: str, body: bytes) -> str:
        digest = hmac.new(self.key, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
        return "v0=" + digest.hexdigest()

    def is_valid(self, body: bytes, timestamp: str, signature: str) -> bool:
        if abs(self.clock() - int(timestamp)) > WINDOW_SECONDS:
            return False
        return hmac.compare_digest(self.signature(timestamp, body), signature)


@dataclass(frozen=True)
class Rejected:
    """A request refused before Bolt sees it."""

    status: int
    reason: str


@dataclass(frozen=True)
class Accepted:
    """A signed, well-formed request: its text for Bolt, and its identity for the replay guard."""

    text: str
    body: dict[str, Any]
    keys: list[str] = field(default_factory=list)
    retry: bool = False


def check(headers: Mapping[str, str], raw: bytes, verifier: Verifier) -> Accepted | Rejected:
    """Accept a request Slack signed and could have sent; reject anything else. The only
    signature check a request gets (Bolt's own is off: `bot.app`), so it has no way around."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not TIMESTAMP.fullmatch(timestamp) or not SIGNATURE.fullmatch(signature):
        return Rejected(401, "missing or malformed signature headers")
    if not verifier.is_valid(raw, timestamp, signature):
        return Rejected(401, "invalid or expired signature")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected(400, "body is not UTF-8")
    body = parse_body(text, headers.get("Content-Type", ""))
    if body is None:
        return Rejected(400, "body is not a Slack payload")
    if not bolt_can_read(body):
        return Rejected(200, "signed, but not a payload shape Slack sends; nothing done")
    keys = [f"sig:{timestamp}:{signature}"]
    event_id = body.get("event_id")
    if isinstance(event_id, str) and event_id:
        keys.append(f"event:{event_id[:100]}")
    return Accepted(text=text, body=body, keys=keys, retry="X-Slack-Retry-Num" in headers)


def bolt_request(accepted: Accepted, query: str, headers: Mapping[str, str]) -> AsyncBoltRequest:
    """The Bolt request of an accepted one, carrying the body `check` parsed (Bolt would parse
    the same text again; `parse_body` reads it as Bolt does)."""
    request = AsyncBoltRequest(body="", query=query, headers=dict(headers))
    request.raw_body = accepted.text
    request.body = accepted.body
    request.context = build_async_context(AsyncBoltContext({}), accepted.body)
    return request


def _one_argument(function: Any) -> bool:
    required = [p for p in inspect.signature(function).parameters.values()
                if p.default is inspect.Parameter.empty]
    return len(required) == 1


EXTRACTORS = [function for name, function in inspect.getmembers(payload_utils, inspect.isfunction)
              if name.startswith(("to_", "is_")) and _one_argument(function)]


def bolt_can_read(body: dict[str, Any]) -> bool:
    """Whether Bolt can take this payload apart: its own extractors and context builder run on
    it without raising, and what our listeners match on (action ids, callback ids) are strings.
    A signed payload that fails this is acknowledged and dropped, never half-processed.

    A slash command (a form with a string `command` and no `type`) takes the short road: every
    field of a form is a string, and without `type` no extractor or matcher reads deeper."""
    if "type" not in body and isinstance(body.get("command"), str) and \
            all(isinstance(value, str) for value in body.values()):
        return True
    try:
        for extract in EXTRACTORS:
            found = extract(body)
            if found is not None and not isinstance(found, (bool, dict)):
                return False
        build_async_context(AsyncBoltContext({}), body)
        # Bolt describes a request no listener matched (a log line); that too reads the payload.
        warning_unhandled_request(AsyncBoltRequest(body=body, mode="socket_mode"))
    except Exception:  # Bolt's extractors index into the payload without checking its shape
        return False
    return all(_text(container, key) for container, key in _matched_fields(body))


def _matched_fields(body: dict[str, Any]) -> list[tuple[Any, str]]:
    """The (object, key) pairs Bolt's listener matchers index without checking, for this body."""
    fields: list[tuple[Any, str]] = []
    if payload_utils.is_slash_command(body):
        fields.append((body, "command"))
    if (action := payload_utils.to_action(body)) is not None:
        fields.append((action, "action_id"))
    if (view := payload_utils.to_view(body)) is not None:
        fields.append((view, "callback_id"))
    if (event := payload_utils.to_event(body)) is not None:
        fields.append((event, "type"))
    if any(check(body) for check in (payload_utils.is_shortcut, payload_utils.is_attachment_action,
                                     payload_utils.is_dialog_submission,
                                     payload_utils.is_dialog_cancellation,
                                     payload_utils.is_workflow_step_edit)):
        fields.append((body, "callback_id"))
    if payload_utils.is_block_suggestion(body):
        fields.append((body, "action_id"))
    return fields


def _text(container: Any, key: str) -> bool:
    return isinstance(container, dict) and isinstance(container.get(key), str)


def parse_body(text: str, content_type: str) -> dict[str, Any] | None:
    """The payload as Bolt will read it, or None when it is not a JSON object or a form.

    Mirrors `slack_bolt.request.payload_utils`: JSON when the content type says so or the body
    starts with `{`; a form otherwise, whose `payload` field (when present) must hold a JSON
    object."""
    if not text:
        return {}
    if content_type.split(";")[0].strip().lower() == "application/json" or text.startswith("{"):
        return _json_object(text)
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in text:
        payload = form.get("payload")
        return _json_object(payload) if payload is not None else {}
    return form


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
