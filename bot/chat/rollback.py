"""The rollback as people see it: the announcement in the engineering channel and the release's
thread, the line on the release's parent message, the short notes of `/release rollback`, and
the plan as terminal text for `release-bot rollback`.

`RollbackAnnouncer` is the rollback controller's `Announcer`: it renders the controller's
`RollbackReport` here and posts it through the Chat port. Every text is redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from bot.chat import blocks
from bot.chat.blocks import Message
from bot.chat.port import Chat
from bot.config import Settings
from bot.redact import Redactor, escape
from bot.rollback.model import (
    ACTIONS,
    BACKUP,
    DEPLOYMENT,
    SCHEMA,
    TITLES,
    Choices,
    Plan,
    RollbackReport,
    short,
    stamp,
)
from bot.runbook.model import Link, Outcome, Release

if TYPE_CHECKING:
    from bot.rollback.controller import Rollbacks

log = logging.getLogger(__name__)

ICONS = {
    Outcome.OK: ":white_check_mark:",
    Outcome.WARN: ":warning:",
    Outcome.FAIL: ":x:",
    Outcome.SKIPPED: ":fast_forward:",
}
NO_TRIGGER = (":warning: Slack sent no form trigger with that request, so the rollback form "
              "could not open and nothing was rolled back. Press *Roll back* on release "
              "#{id}'s message, type `/release rollback {id}` again, or run "
              "`release-bot rollback {id}` on a terminal.")


# --- the short notes of `/release rollback` and the Roll back button --------------------------
def preflight(rollbacks: Rollbacks, release_id: int | None) -> Release | Message:
    """The release to roll back (the newest when none is named), or the note that says why
    there is none: it does not exist, or another rollback of it is under way."""
    release = rollbacks.resolve(release_id)
    if release is None or release.id is None:
        what = f"Release #{release_id} does not exist." if release_id \
            else "No release has run yet, so there is nothing to roll back."
        return blocks.note_message(f":warning: {what}")
    busy = rollbacks.busy(release.id)
    return busy_note(busy) if busy else release


def busy_note(text: str) -> Message:
    """Another rollback (or a refusal) in the way."""
    return blocks.note_message(f":hourglass: {text}")


def no_trigger_note(release_id: int) -> Message:
    """Slack sent no trigger_id, so no form could open and nothing ran."""
    return blocks.note_message(NO_TRIGGER.format(id=release_id))


def needs_reason_note(release_id: int) -> Message:
    """`/release rollback` without the form needs the reason typed."""
    return blocks.note_message(":warning: A rollback needs a reason: `/release rollback "
                               f"{release_id} <what went wrong>`.")


def starting_note(release_id: int) -> Message:
    """The deployment-only rollback of the console has started."""
    return blocks.note_message(f":rewind: Rolling back release #{release_id} (deployment only); "
                               "the announcement follows.")


# --- the announcement -------------------------------------------------------------------------
def link_text(link: Link) -> str:
    """A ticket for Slack: `<url|label>` with both escaped, or the escaped label alone."""
    label = escape(link.label)
    if not link.url:
        return label
    url = escape(link.url)
    return f"<{url}>" if link.label == link.url else f"<{url}|{label}>"


def _head(report: RollbackReport) -> str:
    release = report.release
    return (f":rewind: *Rollback of release #{release.id}* (`{release.ref}` to "
            f"{release.environment}) by <@{report.user}> at {stamp(report.at)}")


def _deployment_lines(report: RollbackReport, settings: Settings) -> list[str]:
    lines = []
    if report.reverted is not None:
        sha = f", `{report.reverted.sha[:7]}`" if report.reverted.sha else ""
        lines.append(f"*Reverted deployment:* {report.reverted.link()} "
                     f"(release #{report.release.id}{sha})")
    if report.serving is not None:
        domain = settings.staging_domain
        source = f" ({report.serving.source})" if report.serving.source else ""
        at = f" at <https://{domain}|{domain}>" if domain and \
            settings.VERCEL_TARGET != "production" else ""
        lines.append(f"*Now serving:* {report.serving.link()}{source}{at}")
    return lines


def _action_lines(report: RollbackReport) -> list[str]:
    lines = ["*Actions:*"]
    if not report.results:
        lines.append("• none were chosen")
    for result in report.results:
        lines.append(f"{ICONS[result.outcome]} *{TITLES[result.action]}*: {result.summary}")
    if report.checks:
        checks = " · ".join(f"{ICONS[check.outcome]} {report.check_titles.get(name, name)}: "
                            f"{check.summary}" for name, check in report.checks)
        lines.append(f"*Checks after the revert:* {checks}")
    return lines


def _status_line(report: RollbackReport) -> str:
    if report.rolled_back:
        status = "Release status: *rolled back*."
    else:
        status = ("Release status unchanged (*" + report.release.status.value + "*): the "
                  "deployment was not reverted.")
    failed = report.failed()
    return status + (" Failed: " + ", ".join(failed) + "." if failed else "")


def announcement_lines(report: RollbackReport, settings: Settings) -> list[str]:
    """Who, when, which release, why, both deployments, tickets, and every action."""
    lines = [_head(report), f"*Reason:* {escape(report.reason)}"]
    if report.tickets:
        lines.append("*Tickets:* " + ", ".join(link_text(t) for t in report.tickets))
    if report.cancelled_first:
        lines.append(":no_entry_sign: The release was still running, so it was cancelled first.")
    return [*lines, *_deployment_lines(report, settings), *_action_lines(report),
            _status_line(report)]


def announcement(report: RollbackReport, settings: Settings, redact: Redactor) -> Message:
    """The announcement as a message: the lines in sections, then up to five actions' details."""
    lines = announcement_lines(report, settings)
    text = blocks.cut("\n".join(lines), 39000)
    sections = [blocks.section(chunk) for chunk in _chunks(lines)]
    details = [r for r in report.results if r.details]
    for result in details[:5]:
        sections.append(blocks.section(f"*{TITLES[result.action]}*\n{result.details}"))
    return Message(text=redact(text),
                   blocks=redact.data(sections[:blocks.MAX_BLOCKS]),
                   summary=redact(_head(report)))


def _chunks(lines: list[str]) -> list[str]:
    """Lines grouped into section-sized texts."""
    out: list[str] = []
    current = ""
    for line in lines:
        line = blocks.cut(line, blocks.SECTION_LIMIT - 10)
        if current and len(current) + len(line) + 1 > blocks.SECTION_LIMIT - 10:
            out.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        out.append(current)
    return out


def parent(report: RollbackReport, redact: Redactor) -> Message:
    """The release's parent message with a line on the rollback."""
    message = blocks.parent_message(report.release, rollback_enabled=True)
    if report.rolled_back:
        line = (f":rewind: Rolled back by <@{report.user}> at {stamp(report.at)}: "
                f"{escape(short(report.reason, 200))}")
    else:
        line = (f":warning: Rollback attempted by <@{report.user}> at {stamp(report.at)}; "
                "the deployment was not reverted (see the thread).")
    at = len(message.blocks)
    if message.blocks and message.blocks[-1].get("type") == "actions":
        at -= 1
    message.blocks.insert(at, blocks.context(line))
    message.text = f"{message.text}\n{line}"
    return Message(text=redact(message.text), blocks=redact.data(message.blocks),
                   summary=redact(message.summary))


class RollbackAnnouncer:
    """Posts a rollback's story to the engineering channel and the release's thread."""

    def __init__(self, chat: Chat, settings: Settings, redactor: Redactor) -> None:
        self.chat = chat
        self.settings = settings
        self.redact = redactor

    async def cancelled_first(self, release: Release, was: str, user: str) -> None:
        """A note in the release's thread: it was still running, so it was cancelled."""
        if release.channel and release.thread_ts:
            text = (f":no_entry_sign: Release #{release.id} was still {was}, so <@{user}>'s "
                    "rollback cancelled it first.")
            await self._safely(self.chat.post(release.channel,
                                              blocks.note_message(self.redact(text)),
                                              release.thread_ts), "note in the thread")

    async def announce(self, report: RollbackReport, channel: str | None) -> None:
        """The announcement in the engineering channel and the thread; the parent updated."""
        release = report.release
        message = announcement(report, self.settings, self.redact)
        where = (self.settings.ENGINEERING_CHANNEL or release.channel
                 or self.settings.RELEASE_CHANNEL or channel)
        if where:
            await self._safely(self.chat.post(where, message), f"post to {where}")
        if release.channel and release.thread_ts:
            await self._safely(self.chat.post(release.channel, message, release.thread_ts),
                               "reply in the release thread")
            await self._safely(self.chat.update(release.channel, release.thread_ts,
                                                parent(report, self.redact)),
                               "update the parent message")

    async def _safely(self, call: Awaitable[Any], what: str) -> None:
        try:
            await call
        except Exception as exc:  # the release log already holds the truth
            log.error("rollback: could not %s: %s", what, self.redact(str(exc)))


# --- the plan as terminal text (release-bot rollback) ---------------------------------------
def plan_text(plan: Plan, choices: Choices, settings: Settings) -> str:
    """The plan as plain text: the release, and what each chosen action will do."""
    release = plan.release
    lines = [f"Rollback of release #{release.id} ({release.ref} to {release.environment}, "
             f"{release.status.value})"]
    if release.status.active:
        lines.append("  It is still running: it will be cancelled first.")
    if plan.current is not None:
        lines.append(f"  Its deployment: {plan.current.id} {plan.current.url or ''}".rstrip())
    for name in ACTIONS:
        mark = "x" if getattr(choices, name) else " "
        lines.append(f"  [{mark}] {TITLES[name]}: {_what(name, plan, settings)}")
    return "\n".join(lines)


def _what(name: str, plan: Plan, settings: Settings) -> str:
    if name == DEPLOYMENT:
        if plan.target is None:
            return f"no target found ({plan.target_problem or 'unknown'})"
        where = ("production rollback" if settings.VERCEL_TARGET == "production"
                 else f"point {settings.staging_domain or '(no STAGING_DOMAIN)'}")
        return f"{where} at {plan.target.id} ({plan.target.source}) {plan.target.url or ''}".rstrip()
    if name == SCHEMA:
        if not plan.migrations:
            return "nothing recorded to revert"
        return (f"{plan.schema_command.strip('`')} for {', '.join(plan.migrations)} "
                "(resets data in the affected schemas)")
    if name == BACKUP:
        return f"project {plan.project_ref or '(unset)'}: {plan.backups_text}"
    return f"FLUSHALL ASYNC, {plan.redis_text}"
