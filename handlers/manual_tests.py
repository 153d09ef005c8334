"""The Record manual tests button, its form (modal) and the submission (bot.manual_tests).

The button opens the form at once with `views.open` (nothing else happens before the trigger
expires). The submission is checked before it is acknowledged: a form that is not ours, a
person who did not start the release, or an empty answer gets an error next to the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.manual_tests import MANUAL_TESTS_ACTION, MAX_TEXT, ManualTests, ManualTestsError
from handlers.safety import field, mapping, mention, release_id, user_id

if TYPE_CHECKING:
    from bot.store import Store

log = logging.getLogger(__name__)

CALLBACK_ID = "release_manual_tests_form"
CHECKED, NOTES, VALUE = "checked", "notes", "value"
MAX_OPTIONS = 10  # Slack's limit for one checkboxes element


def _plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def build_view(release: int, settings: Settings) -> dict[str, Any]:
    """The form: checkboxes from MANUAL_TEST_CHECKLIST and free text."""
    view_blocks: list[dict[str, Any]] = [{
        "type": "section",
        "text": {"type": "mrkdwn", "text": f"What did you test by hand on staging for release "
                                           f"#{release}? It goes into the release log."}}]
    checklist = settings.MANUAL_TEST_CHECKLIST[:MAX_OPTIONS]
    if checklist:
        view_blocks.append({
            "type": "input", "block_id": CHECKED, "optional": True, "label": _plain("I checked"),
            "element": {"type": "checkboxes", "action_id": VALUE,
                        "options": [{"text": _plain(item), "value": str(i)}
                                    for i, item in enumerate(checklist)]}})
    view_blocks.append({
        "type": "input", "block_id": NOTES, "optional": True, "label": _plain("What else you tested"),
        "element": {"type": "plain_text_input", "action_id": VALUE, "multiline": True,
                    "max_length": MAX_TEXT}})
    return {"type": "modal", "callback_id": CALLBACK_ID, "title": _plain("Manual tests", 24),
            "submit": _plain("Save"), "close": _plain("Cancel"),
            "private_metadata": json.dumps({"release": release}), "blocks": view_blocks}


def parse_submission(view: Mapping[str, Any], settings: Settings) -> tuple[int, list[str], str]:
    """(release id, checked items, free text); ValueError when the form is not ours."""
    try:
        meta = mapping(json.loads(field(view, "private_metadata") or "null"))
    except (ValueError, RecursionError) as exc:
        raise ValueError("not a manual tests form") from exc
    found = release_id(meta.get("release"))
    if found is None:
        raise ValueError("not a manual tests form")
    values = mapping(mapping(view.get("state")).get("values"))
    selected = mapping(mapping(values.get(CHECKED)).get(VALUE)).get("selected_options")
    indexes = {field(o, "value") for o in selected} if isinstance(selected, list) else set()
    checklist = settings.MANUAL_TEST_CHECKLIST[:MAX_OPTIONS]
    checked = [item for i, item in enumerate(checklist) if str(i) in indexes]
    text = field(mapping(mapping(values.get(NOTES)).get(VALUE)), "value")
    return found, checked, text


def register(app: AsyncApp, manual: ManualTests, store: Store, settings: Settings) -> None:
    """Register the button, the form and its submission."""

    @app.action(MANUAL_TESTS_ACTION)
    async def pressed(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                      respond: AsyncRespond) -> None:
        await ack()
        user = user_id(body)
        found = release_id(mapping(action).get("value"))
        release = store.get_release(found) if found is not None else None
        if release is None:
            await _whisper(respond, ":warning: That button does not name a release.")
            return
        if not user or not manual.may_answer(release, user):
            await _whisper(respond, f":no_entry: {mention(user)}, only the person who started "
                                    f"release #{found} records its manual tests.")
            return
        trigger = field(body, "trigger_id")
        if not trigger:
            await _whisper(respond, ":warning: Slack sent no form trigger; press the button again.")
            return
        try:
            await app.client.views_open(trigger_id=trigger, view=build_view(found or 0, settings))
        except SlackApiError as exc:
            error = exc.response.get("error", "error") if exc.response else "error"
            await _whisper(respond, f":warning: Slack would not open the form ({error}); "
                                    "press the button again.")

    @app.view(CALLBACK_ID)
    async def submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = user_id(body)
        try:
            found, checked, text = parse_submission(view, settings)
        except ValueError:
            await ack(response_action="errors", errors={NOTES: "This form is not one of mine."})
            return
        release = store.get_release(found)
        if release is None or not user or not manual.may_answer(release, user):
            await ack(response_action="errors",
                      errors={NOTES: "Only the person who started the release answers this."})
            return
        if not checked and not text.strip():
            await ack(response_action="errors", errors={NOTES: "Tick what you tested or describe it."})
            return
        await ack()
        try:
            await manual.record(found, user, checked, text)
        except ManualTestsError as exc:  # checked above; a race (release deleted) lands here
            log.info("manual tests of #%s not recorded: %s", found, exc)


async def _whisper(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)
