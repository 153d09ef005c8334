"""The Roll back button, the rollback form (modal) and its submission.

The button and `/release rollback` open the form with `views.open` at once, from what the
release log knows (no network before the trigger_id's three seconds run out); the form is then
refreshed with `views.update` once Vercel, Supabase and Redis have answered (each with a short
timeout). The submission is checked (reason, typed project ref for a backup restore, a rollback
already under way) before it is acknowledged; errors show next to the field. The rollback itself
runs after the acknowledgement and is announced in the channel and the release's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import blocks
from bot.chat.blocks import ROLLBACK_ACTION
from bot.config import Settings
from bot.rollback import (
    ACTIONS,
    BACKUP,
    CACHE,
    DEPLOYMENT,
    NO_TRIGGER,
    SCHEMA,
    TITLES,
    Choices,
    Plan,
    RollbackBusy,
    Rollbacks,
    controller,
    metadata,
    read_metadata,
    split_tickets,
)
from bot.runbook.engine import EngineError
from bot.runbook.model import Release
from handlers.safety import field, mapping, mention, user_id
from handlers.safety import release_id as safe_release_id

if TYPE_CHECKING:
    from bot.app import Runtime
    from bot.service import Reply

log = logging.getLogger(__name__)

CALLBACK_ID = "release_rollback_form"
REASON, TICKETS, CHOSEN, CONFIRM = "reason", "tickets", "actions", "confirm_ref"
VALUE = "value"


def _plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def _mrkdwn(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": blocks.cut(text or " ", limit)}


def action_lines(plan: Plan, settings: Settings) -> dict[str, tuple[str, str]]:
    """For each action: (short description for the checkbox, full sentence for the form)."""
    production = settings.VERCEL_TARGET == "production"
    domain = settings.staging_domain or "the staging domain (STAGING_DOMAIN unset)"
    if plan.target is not None:
        sha = f", `{plan.target.sha[:7]}`" if plan.target.sha else ""
        source = f" ({plan.target.source}{sha})" if plan.target.source else ""
        target_long = f"{plan.target.link()}{source}"
        target_short = f"{plan.target.id}{f' ({plan.target.source})' if plan.target.source else ''}"
    else:
        target_long = target_short = f"the previous READY deployment ({plan.target_problem or 'unknown'})"
    if production:
        how = f"Vercel's production rollback to {target_long}"
    else:
        how = f"point `{domain}` at {target_long} (`POST /v2/deployments/{{id}}/aliases`)"
    deployment = (f"Go back to {target_short}", f"{how}; then re-run the smoke and health checks.")
    count = len(plan.migrations)
    if count:
        listed = ", ".join(f"`{v}`" for v in plan.migrations)
        schema = (f"Revert {count} migration{'s' if count != 1 else ''}: "
                  f"{', '.join(plan.migrations)}"[:150],
                  f"runs {plan.schema_command} in the app workspace to revert {listed}. "
                  ":warning: `migration down` resets the database: data in the affected schemas is "
                  "lost and the remaining migrations and seed are re-applied.")
    else:
        schema = ("Nothing to revert: no migrations recorded for this release",
                  "the release log shows no migrations applied by this release.")
    ref = plan.project_ref or "(SUPABASE_PROJECT_REF unset)"
    backups = plan.backups_text or "backups are listed once Supabase answers"
    backup = (f"Restore project {ref}: {backups}"[:150],
              f"Supabase Management API restore of `{ref}` — {backups}; then waits until the "
              "database is healthy. Type the project ref below to confirm.")
    cache_short = f"FLUSHALL ASYNC: {plan.redis_text}"[:150]
    cache = (cache_short, f"`FLUSHALL ASYNC` on the staging Redis ({plan.redis_text}).")
    return {DEPLOYMENT: deployment, SCHEMA: schema, BACKUP: backup, CACHE: cache}


def build_view(plan: Plan, channel: str, settings: Settings, reason: str = "") -> dict[str, Any]:
    """The rollback form for one release."""
    release = plan.release
    assert release.id is not None
    lines = action_lines(plan, settings)
    serving = plan.current.link() if plan.current else "not recorded"
    intro = (f"*Release #{release.id}* of `{release.ref}` to *{release.environment}* · "
             f"{release.status.value.replace('_', ' ')}\nThis release's deployment: {serving}")
    if release.status.active:
        intro += "\n:no_entry_sign: It is still running: rolling back cancels it first."
    options = [
        {"text": _mrkdwn(f"*{TITLES[name]}*", 75), "value": name,
         "description": _plain(lines[name][0], 150)}
        for name in ACTIONS
    ]
    reason_input: dict[str, Any] = {"type": "plain_text_input", "action_id": VALUE,
                                    "multiline": True, "min_length": 3,
                                    "placeholder": _plain("What went wrong?")}
    if reason:
        reason_input["initial_value"] = reason
    explain = "\n".join(f"• *{TITLES[name]}*: {lines[name][1]}" for name in ACTIONS)
    view_blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(intro)},
        {"type": "input", "block_id": REASON, "label": _plain("Reason"), "element": reason_input},
        {"type": "input", "block_id": TICKETS, "optional": True, "label": _plain("Tickets"),
         "hint": _plain("Ticket IDs or URLs, separated by spaces or commas.", 150),
         "element": {"type": "plain_text_input", "action_id": VALUE,
                     "placeholder": _plain("ENG-123, https://…")}},
        {"type": "section", "text": _mrkdwn(explain)},
        {"type": "input", "block_id": CHOSEN, "label": _plain("Actions"),
         "element": {"type": "checkboxes", "action_id": VALUE, "options": options,
                     "initial_options": [options[0]]}},
        {"type": "input", "block_id": CONFIRM, "optional": True,
         "label": _plain("Project ref, to confirm a backup restore"),
         "hint": _plain(f"Only for “{TITLES[BACKUP]}”: type {plan.project_ref or 'the project ref'}.",
                        150),
         "element": {"type": "plain_text_input", "action_id": VALUE}},
        {"type": "context", "elements": [_mrkdwn(
            "Each chosen action runs and reports on its own; the team is told in the "
            "engineering channel and in the release's thread.")]},
    ]
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": metadata(release.id, channel, plan.target.id if plan.target else None),
        "title": _plain(f"Roll back #{release.id}", 24),
        "submit": _plain("Roll back", 24),
        "close": _plain("Cancel", 24),
        "blocks": view_blocks,
    }


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


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the Roll back button, the form and its submission."""
    rollbacks = controller(runtime)
    service = runtime.service
    settings = runtime.settings
    client: AsyncWebClient = app.client

    async def open_form(release: Release, channel: str, trigger_id: str, reason: str,
                        reply: Reply) -> None:
        plan = await rollbacks.plan(release, quick=True)
        try:
            opened = await client.views_open(trigger_id=trigger_id,
                                             view=build_view(plan, channel, settings, reason))
        except SlackApiError as exc:
            error = exc.response.get("error", "error") if exc.response else "error"
            await reply(blocks.note_message(
                f":warning: Slack would not open the rollback form ({error}); press Roll back "
                f"again, or run `release-bot rollback {release.id}` on a terminal."))
            return
        view = opened.get("view") or {}
        full = await rollbacks.plan(release)
        try:
            await client.views_update(view_id=view.get("id"), hash=view.get("hash"),
                                      view=build_view(full, channel, settings, reason))
        except SlackApiError as exc:  # submitted or closed meanwhile: nothing to refresh
            log.info("rollback form not refreshed: %s", exc.response.get("error") if exc.response
                     else exc)

    rollbacks.modal_opener = open_form

    @app.action(ROLLBACK_ACTION)
    async def pressed(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                      respond: AsyncRespond) -> None:
        await ack()
        user = user_id(body)
        channel = field(body.get("channel"), "id") or field(body.get("container"), "channel_id")

        async def reply(message: blocks.Message) -> None:
            await respond(text=message.text, response_type="ephemeral", replace_original=False)

        if not user or not service.may_operate(user):
            await reply(blocks.note_message(
                f":no_entry: {mention(user)}, only release operators can roll back."))
            return
        release_id = safe_release_id(mapping(action).get("value"))
        if release_id is None:
            await reply(blocks.note_message(":warning: That button does not name a release."))
            return
        release = rollbacks.resolve(release_id)
        if release is None:
            await reply(blocks.note_message(f":warning: Release #{release_id} does not exist."))
            return
        busy = rollbacks.busy(release_id)
        if busy:
            await reply(blocks.note_message(f":hourglass: {busy}"))
            return
        trigger = field(body, "trigger_id")
        if not trigger:
            await reply(blocks.note_message(NO_TRIGGER.format(id=release_id)))
            return
        await open_form(release, channel, trigger, "", reply)

    @app.view(CALLBACK_ID)
    async def submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = user_id(body)
        try:
            release_id, channel, choices = parse_submission(view)
        except ValueError:
            await ack(response_action="errors", errors={REASON: "This form is not one of mine."})
            return
        if not user or not service.may_operate(user):
            await ack(response_action="errors",
                      errors={REASON: "Only release operators can roll back."})
            return
        errors = form_errors(choices, settings)
        busy = rollbacks.busy(release_id)
        if busy:
            errors[REASON] = busy
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        await _run(rollbacks, release_id, choices, user, channel)


async def _run(rollbacks: Rollbacks, release_id: int, choices: Choices, user: str,
               channel: str) -> None:
    """Run a submitted rollback; a refusal is whispered to the person in the channel."""
    try:
        await rollbacks.run(release_id, choices, user, channel or None)
    except (RollbackBusy, EngineError) as exc:
        if channel:
            try:
                await rollbacks.chat.ephemeral(channel, user, blocks.note_message(
                    f":hourglass: {exc}"))
            except Exception as error:
                log.error("could not tell %s: %s", user, rollbacks.redact(str(error)))
