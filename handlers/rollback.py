"""The Roll back button, `/release rollback` from Slack, the rollback form (modal) and its
submission.

In Slack the form is the confirmation: the button and `/release rollback` open it with
`views.open` at once, from what the release log knows (no network before the trigger_id's three
seconds run out), then refresh it with `views.update` once Vercel, Supabase and Redis have
answered (each with a short timeout). A command without a trigger_id opens nothing and rolls
nothing back: it says how to open the form. The submission is checked (reason, typed project ref
for a backup restore, a rollback already under way) before it is acknowledged; errors show next
to the field. The submission then calls the rollback controller, which runs the rollback and
has it announced in the channel and the release's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import blocks
from bot.chat.blocks import ROLLBACK_ACTION
from bot.chat.port import Chat
from bot.chat.rollback import busy_note, no_trigger_note, preflight
from bot.chat.rollback_form import (
    CALLBACK_ID,
    CHOSEN,
    CONFIRM,
    REASON,
    TICKETS,
    VALUE,
    build_view,
    read_metadata,
)
from bot.commands import Command
from bot.config import Settings
from bot.rollback.controller import Rollbacks
from bot.rollback.model import BACKUP, CACHE, DEPLOYMENT, SCHEMA, Choices, RollbackBusy, split_tickets
from bot.runbook.engine import EngineError
from bot.runbook.model import Release
from handlers.safety import field, mapping, mention, user_id
from handlers.safety import release_id as safe_release_id

if TYPE_CHECKING:
    from bot.service import Reply

log = logging.getLogger(__name__)

__all__ = ["CALLBACK_ID", "CHOSEN", "CONFIRM", "REASON", "TICKETS", "RollbackForm", "register"]


def _value(values: Mapping[str, Any], block: str) -> Mapping[str, Any]:
    return mapping(mapping(values.get(block)).get(VALUE))


def _selected(values: Mapping[str, Any], block: str) -> set[str]:
    options = _value(values, block).get("selected_options")
    return {field(o, "value") for o in options} if isinstance(options, list) else set()


def parse_submission(view: Mapping[str, Any]) -> tuple[int, str, Choices]:
    """(release id, channel, choices) from a submitted form; ValueError when it is not ours."""
    release_id, channel, target = read_metadata(field(view, "private_metadata"))
    values = mapping(mapping(view.get("state")).get("values"))
    chosen = _selected(values, CHOSEN)
    choices = Choices(
        reason=field(_value(values, REASON), "value").strip(),
        tickets=split_tickets(field(_value(values, TICKETS), "value")),
        deployment=DEPLOYMENT in chosen,
        schema=SCHEMA in chosen,
        backup=BACKUP in chosen,
        cache=CACHE in chosen,
        confirm_ref=field(_value(values, CONFIRM), "value").strip(),
        target_deployment=target,
    )
    return release_id, channel, choices


def form_errors(choices: Choices, settings: Settings) -> dict[str, str]:
    """Errors to show next to the form's fields (empty when it may be submitted)."""
    errors: dict[str, str] = {}
    if not choices.reason:
        errors[REASON] = "Say why you are rolling back."
    if not choices.chosen():
        errors[CHOSEN] = "Choose at least one action."
    if choices.backup:
        ref = settings.SUPABASE_PROJECT_REF
        if not ref:
            errors[CHOSEN] = "SUPABASE_PROJECT_REF is not set, so no backup can be restored."
        elif choices.confirm_ref != ref:
            errors[CONFIRM] = f"Type {ref} to confirm the restore."
    return errors


class RollbackForm:
    """Opens the rollback form in Slack; its submission is handled by `register`'s listener."""

    def __init__(self, client: AsyncWebClient, rollbacks: Rollbacks, settings: Settings) -> None:
        self.client = client
        self.rollbacks = rollbacks
        self.settings = settings

    async def command(self, command: Command, channel: str, trigger_id: str | None,
                      reply: Reply) -> None:
        """`/release rollback [id] [reason]` from Slack: open the form, never roll back here."""
        release = preflight(self.rollbacks, command.release_id)
        if isinstance(release, blocks.Message):
            await reply(release)
            return
        if not trigger_id:
            await reply(no_trigger_note(release.id or 0))
            return
        await self.open(release, channel, trigger_id, command.reason, reply)

    async def open(self, release: Release, channel: str, trigger_id: str, reason: str,
                   reply: Reply) -> None:
        """Open the form from the release log at once, then refresh it with the full plan."""
        plan = await self.rollbacks.plan(release, quick=True)
        try:
            opened = await self.client.views_open(
                trigger_id=trigger_id, view=build_view(plan, channel, self.settings, reason))
        except SlackApiError as exc:
            error = exc.response.get("error", "error") if exc.response else "error"
            await reply(blocks.note_message(
                f":warning: Slack would not open the rollback form ({error}); press Roll back "
                f"again, or run `release-bot rollback {release.id}` on a terminal."))
            return
        view = opened.get("view") or {}
        full = await self.rollbacks.plan(release)
        try:
            await self.client.views_update(view_id=view.get("id"), hash=view.get("hash"),
                                           view=build_view(full, channel, self.settings, reason))
        except SlackApiError as exc:  # submitted or closed meanwhile: nothing to refresh
            log.info("rollback form not refreshed: %s", exc.response.get("error") if exc.response
                     else exc)


def register(app: AsyncApp, form: RollbackForm, may_operate: Callable[[str], bool],
             chat: Chat) -> None:
    """Register the Roll back button and the form's submission (`may_operate`: who may)."""

    @app.action(ROLLBACK_ACTION)
    async def pressed(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                      respond: AsyncRespond) -> None:
        await ack()

        async def reply(message: blocks.Message) -> None:
            await respond(text=message.text, response_type="ephemeral", replace_original=False)

        await button_pressed(form, may_operate, body, action, reply)

    @app.view(CALLBACK_ID)
    async def submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = user_id(body)
        found = checked_submission(form, may_operate, user, view)
        if isinstance(found, dict):
            await ack(response_action="errors", errors=found)
            return
        await ack()
        release_id, channel, choices = found
        await run_submitted(form.rollbacks, chat, release_id, choices, user, channel)


async def button_pressed(form: RollbackForm, may_operate: Callable[[str], bool],
                         body: Mapping[str, Any], action: Mapping[str, Any], reply: Reply) -> None:
    """The Roll back button: open the form for the release it names, or say why not."""
    user = user_id(body)
    if not user or not may_operate(user):
        await reply(blocks.note_message(
            f":no_entry: {mention(user)}, only release operators can roll back."))
        return
    release_id = safe_release_id(mapping(action).get("value"))
    if release_id is None:
        await reply(blocks.note_message(":warning: That button does not name a release."))
        return
    release = preflight(form.rollbacks, release_id)
    if isinstance(release, blocks.Message):
        await reply(release)
        return
    trigger = field(body, "trigger_id")
    if not trigger:
        await reply(no_trigger_note(release_id))
        return
    channel = field(body.get("channel"), "id") or field(body.get("container"), "channel_id")
    await form.open(release, channel, trigger, "", reply)


def checked_submission(form: RollbackForm, may_operate: Callable[[str], bool], user: str,
                       view: Mapping[str, Any]) -> tuple[int, str, Choices] | dict[str, str]:
    """(release id, channel, choices) of a submission that may run, else the form's errors."""
    try:
        release_id, channel, choices = parse_submission(view)
    except ValueError:
        return {REASON: "This form is not one of mine."}
    if not user or not may_operate(user):
        return {REASON: "Only release operators can roll back."}
    errors = form_errors(choices, form.settings)
    busy = form.rollbacks.busy(release_id)
    if busy:
        errors[REASON] = busy
    return errors or (release_id, channel, choices)


async def run_submitted(rollbacks: Rollbacks, chat: Chat, release_id: int, choices: Choices,
                        user: str, channel: str) -> None:
    """Run a submitted rollback; a refusal is whispered to the person in the channel."""
    try:
        await rollbacks.run(release_id, choices, user, channel or None)
    except (RollbackBusy, EngineError) as exc:
        if channel:
            try:
                await chat.ephemeral(channel, user, busy_note(str(exc)))
            except Exception as error:
                log.error("could not tell %s: %s", user, rollbacks.redact(str(error)))
