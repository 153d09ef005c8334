"""The rollback form (a Slack modal) for one release: what each action would do, the reason,
tickets and the typed project ref; and the form's `private_metadata`, written and read back.

Pure functions: `handlers/rollback.py` opens the form with `views.open` and reads its submission.
"""

from __future__ import annotations

import json
from typing import Any

from bot.chat import blocks
from bot.config import Settings
from bot.rollback.model import ACTIONS, BACKUP, CACHE, DEPLOYMENT, SCHEMA, TITLES, Plan

CALLBACK_ID = "release_rollback_form"
REASON, TICKETS, CHOSEN, CONFIRM = "reason", "tickets", "actions", "confirm_ref"
VALUE = "value"


def _plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def _mrkdwn(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": blocks.cut(text or " ", limit)}


def _deployment_line(plan: Plan, settings: Settings) -> tuple[str, str]:
    if plan.target is not None:
        sha = f", `{plan.target.sha[:7]}`" if plan.target.sha else ""
        source = f" ({plan.target.source}{sha})" if plan.target.source else ""
        target_long = f"{plan.target.link()}{source}"
        target_short = f"{plan.target.id}{f' ({plan.target.source})' if plan.target.source else ''}"
    else:
        target_long = target_short = f"the previous READY deployment ({plan.target_problem or 'unknown'})"
    if settings.VERCEL_TARGET == "production":
        how = f"Vercel's production rollback to {target_long}"
    else:
        domain = settings.staging_domain or "the staging domain (STAGING_DOMAIN unset)"
        how = f"point `{domain}` at {target_long} (`POST /v2/deployments/{{id}}/aliases`)"
    return f"Go back to {target_short}", f"{how}; then re-run the smoke and health checks."


def _schema_line(plan: Plan) -> tuple[str, str]:
    count = len(plan.migrations)
    if not count:
        return ("Nothing to revert: no migrations recorded for this release",
                "the release log shows no migrations applied by this release.")
    listed = ", ".join(f"`{v}`" for v in plan.migrations)
    return (f"Revert {count} migration{'s' if count != 1 else ''}: "
            f"{', '.join(plan.migrations)}"[:150],
            f"runs {plan.schema_command} in the app workspace to revert {listed}. "
            ":warning: `migration down` resets the database: data in the affected schemas is "
            "lost and the remaining migrations and seed are re-applied.")


def _backup_line(plan: Plan) -> tuple[str, str]:
    ref = plan.project_ref or "(SUPABASE_PROJECT_REF unset)"
    backups = plan.backups_text or "backups are listed once Supabase answers"
    return (f"Restore project {ref}: {backups}"[:150],
            f"Supabase Management API restore of `{ref}` — {backups}; then waits until the "
            "database is healthy. Type the project ref below to confirm.")


def action_lines(plan: Plan, settings: Settings) -> dict[str, tuple[str, str]]:
    """For each action: (short description for the checkbox, full sentence for the form)."""
    cache = (f"FLUSHALL ASYNC: {plan.redis_text}"[:150],
             f"`FLUSHALL ASYNC` on the staging Redis ({plan.redis_text}).")
    return {DEPLOYMENT: _deployment_line(plan, settings), SCHEMA: _schema_line(plan),
            BACKUP: _backup_line(plan), CACHE: cache}


def _intro(plan: Plan) -> str:
    release = plan.release
    serving = plan.current.link() if plan.current else "not recorded"
    intro = (f"*Release #{release.id}* of `{release.ref}` to *{release.environment}* · "
             f"{release.status.value.replace('_', ' ')}\nThis release's deployment: {serving}")
    if release.status.active:
        intro += "\n:no_entry_sign: It is still running: rolling back cancels it first."
    return intro


def _reason_input(reason: str) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": VALUE,
                               "multiline": True, "min_length": 3,
                               "placeholder": _plain("What went wrong?")}
    if reason:
        element["initial_value"] = reason
    return {"type": "input", "block_id": REASON, "label": _plain("Reason"), "element": element}


def _actions_input(lines: dict[str, tuple[str, str]]) -> dict[str, Any]:
    options = [
        {"text": _mrkdwn(f"*{TITLES[name]}*", 75), "value": name,
         "description": _plain(lines[name][0], 150)}
        for name in ACTIONS
    ]
    return {"type": "input", "block_id": CHOSEN, "label": _plain("Actions"),
            "element": {"type": "checkboxes", "action_id": VALUE, "options": options,
                        "initial_options": [options[0]]}}


def _confirm_input(plan: Plan) -> dict[str, Any]:
    return {"type": "input", "block_id": CONFIRM, "optional": True,
            "label": _plain("Project ref, to confirm a backup restore"),
            "hint": _plain(f"Only for “{TITLES[BACKUP]}”: type "
                           f"{plan.project_ref or 'the project ref'}.", 150),
            "element": {"type": "plain_text_input", "action_id": VALUE}}


def _form_blocks(plan: Plan, settings: Settings, reason: str) -> list[dict[str, Any]]:
    """The form's blocks: intro, reason, tickets, what each action does, actions, ref."""
    lines = action_lines(plan, settings)
    explain = "\n".join(f"• *{TITLES[name]}*: {lines[name][1]}" for name in ACTIONS)
    return [
        {"type": "section", "text": _mrkdwn(_intro(plan))},
        _reason_input(reason),
        {"type": "input", "block_id": TICKETS, "optional": True, "label": _plain("Tickets"),
         "hint": _plain("Ticket IDs or URLs, separated by spaces or commas.", 150),
         "element": {"type": "plain_text_input", "action_id": VALUE,
                     "placeholder": _plain("ENG-123, https://…")}},
        {"type": "section", "text": _mrkdwn(explain)},
        _actions_input(lines),
        _confirm_input(plan),
        {"type": "context", "elements": [_mrkdwn(
            "Each chosen action runs and reports on its own; the team is told in the "
            "engineering channel and in the release's thread.")]},
    ]


def build_view(plan: Plan, channel: str, settings: Settings, reason: str = "") -> dict[str, Any]:
    """The rollback form for one release."""
    release = plan.release
    assert release.id is not None
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": metadata(release.id, channel, plan.target.id if plan.target else None),
        "title": _plain(f"Roll back #{release.id}", 24),
        "submit": _plain("Roll back", 24),
        "close": _plain("Cancel", 24),
        "blocks": _form_blocks(plan, settings, reason),
    }


def metadata(release_id: int, channel: str, target: str | None = None) -> str:
    """The modal's private_metadata."""
    return json.dumps({"release": release_id, "channel": channel, "target": target})


def read_metadata(text: str) -> tuple[int, str, str | None]:
    """(release id, channel, target deployment) from private_metadata; ValueError if not ours."""
    try:
        data = json.loads(text or "")
    except (ValueError, RecursionError) as exc:
        raise ValueError("not a rollback form") from exc
    if not isinstance(data, dict):
        raise ValueError("not a rollback form")
    release, channel, target = data.get("release"), data.get("channel"), data.get("target")
    if isinstance(release, bool) or not isinstance(release, int) or not 0 < release < 10**15:
        raise ValueError("not a rollback form")
    return (release, channel if isinstance(channel, str) else "",
            target if isinstance(target, str) and target else None)
