"""Render releases, step results, gates and plans as Slack messages (pure functions).

Block Kit is built with `slack_sdk.models.blocks`, and every text is cut to Slack's limits
(3,000 characters a section, 50 blocks a message). Each message also carries a plain `text`
fallback that says everything, which is what notifications and the console chat show.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    HeaderBlock,
    InputBlock,
    PlainTextInputElement,
)

from bot.redact import escape
from bot.runbook.approvers import mention
from bot.runbook.model import Gate, Release, ReleaseStatus, StepRecord, StepState
from bot.wording import duration, tally

SECTION_LIMIT = 3000
MAX_BLOCKS = 50

ICONS = {
    StepState.PENDING: ":white_circle:",
    StepState.RUNNING: ":hourglass_flowing_sand:",
    StepState.WAITING: ":raised_hand:",
    StepState.OK: ":white_check_mark:",
    StepState.WARN: ":warning:",
    StepState.FAIL: ":x:",
    StepState.SKIPPED: ":fast_forward:",
    StepState.CANCELLED: ":no_entry_sign:",
    StepState.INTERRUPTED: ":electric_plug:",
}
STATUS_ICONS = {
    ReleaseStatus.RUNNING: ":rocket:",
    ReleaseStatus.WAITING: ":raised_hand:",
    ReleaseStatus.SUCCEEDED: ":white_check_mark:",
    ReleaseStatus.FAILED: ":x:",
    ReleaseStatus.CANCELLED: ":no_entry_sign:",
    ReleaseStatus.ROLLED_BACK: ":rewind:",
    ReleaseStatus.INTERRUPTED: ":electric_plug:",
}

RETRY_ACTION = "release_retry"
ROLLBACK_ACTION = "release_rollback"
GATE_ACTION_PREFIX = "gate:"
# The gate's "why" box (when a choice asks for a reason): Slack sends what was typed in it with
# the button press (`state.values`), and it is kept in the release log with the decision.
GATE_REASON_BLOCK = "gate_reason"
GATE_REASON_INPUT = "reason"
REASON_LIMIT = 500
USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


@dataclass
class Message:
    """A message to post: fallback text, blocks, and a one-line summary for terminals."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    broadcast: bool = False  # a thread reply also shown in the channel (reply_broadcast)


def cut(text: str, limit: int = SECTION_LIMIT) -> str:
    """`text` shortened to `limit` characters, keeping code fences balanced."""
    if len(text) <= limit:
        return text
    marker = "\n… (cut)"
    short = text[: limit - len(marker) - 4]
    if short.count("```") % 2 == 1:
        short += "\n```"
    return short + marker


# A block as a slack_sdk model, or already as Slack's JSON. The text blocks every message is made
# of are written as JSON directly: serialising slack_sdk's models cost a status answer 1 ms.
Built = Block | dict[str, Any]


def section(text: str) -> dict[str, Any]:
    """A mrkdwn section block."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text or " ")}}


def context(text: str) -> dict[str, Any]:
    """A context block of one mrkdwn element."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, 3000)}]}


def status_line(release: Release) -> str:
    """One line on where the release stands."""
    icon = STATUS_ICONS[release.status]
    counts = release.counts()
    skipped = counts.get("skipped", 0)
    skipped_note = f" · {skipped} skipped" if skipped else ""
    if release.status == ReleaseStatus.SUCCEEDED:
        return f"{icon} Succeeded in {duration(release.duration_seconds)}{skipped_note}"
    if release.status == ReleaseStatus.FAILED:
        failed = [r.title for r in release.steps if r.state == StepState.FAIL]
        return f"{icon} Failed at {', '.join(failed) or 'a step'} after " \
               f"{duration(release.duration_seconds)}{skipped_note}"
    if release.status == ReleaseStatus.WAITING:
        waiting = [r.title for r in release.steps if r.state == StepState.WAITING]
        return f"{icon} Waiting for a person at {', '.join(waiting)}"
    if release.status == ReleaseStatus.RUNNING:
        running = [r.title for r in release.steps if r.state == StepState.RUNNING]
        done = sum(1 for r in release.steps if r.state.finished)
        now = f": {', '.join(running)}" if running else ""
        return f"{icon} Running ({done}/{len(release.steps)} done){now}"
    if release.status == ReleaseStatus.CANCELLED:
        who = release.data.get("cancelled_by")
        by = f" by <@{who}>" if who else ""
        return f"{icon} Cancelled{by}"
    if release.status == ReleaseStatus.ROLLED_BACK:
        return f"{icon} Rolled back"
    return f"{icon} Interrupted (the bot restarted mid-step); Retry resumes it"


def title_line(release: Release) -> str:
    return f"Release #{release.id} of {release.ref} to {release.environment}"


def checklist(release: Release, progress: dict[str, str] | None = None) -> str:
    """The steps grouped by phase, each with its live status icon."""
    progress = progress or {}
    lines: list[str] = []
    phase = None
    for record in release.steps:
        if record.phase != phase:
            phase = record.phase
            lines.append(f"*{phase.capitalize()}*")
        note = ""
        if record.result is not None:
            note = f" — {record.result.summary}"
        elif record.name in progress:
            note = f" — _{progress[record.name]}_"
        lines.append(f"{ICONS[record.state]} {record.title}{note}")
    return "\n".join(lines)


def parent_message(release: Release, progress: dict[str, str] | None = None,
                   rollback_enabled: bool = False) -> Message:
    """The release's parent message: who, ref, environment, checklist, status."""
    sha = f" · `{release.git_sha[:8]}`" if release.git_sha else ""
    meta = (f"Started by <@{release.started_by}> · ref `{release.ref}`{sha} · "
            f"environment *{release.environment}*")
    status = status_line(release)
    blocks: list[Built] = [
        HeaderBlock(text=cut(title_line(release), 150)),
        context(meta),
        section(checklist(release, progress)),
        section(f"*{status}*"),
    ]
    buttons = release_buttons(release, rollback_enabled)
    if buttons:
        blocks.append(buttons)
    text = f"{title_line(release)}: {status}\n{meta}\n{checklist(release, progress)}"
    return Message(text=text, blocks=_dicts(blocks), summary=f"#{release.id} {status}")


def release_buttons(release: Release, rollback_enabled: bool) -> ActionsBlock | None:
    """Retry (failed or interrupted) and Roll back (finished) buttons."""
    elements = []
    value = str(release.id)
    if release.status in (ReleaseStatus.FAILED, ReleaseStatus.INTERRUPTED):
        elements.append(ButtonElement(text="Retry step", action_id=RETRY_ACTION, value=value,
                                      style="primary"))
    if rollback_enabled and release.status != ReleaseStatus.ROLLED_BACK and release.finished_at:
        elements.append(ButtonElement(text="Roll back", action_id=ROLLBACK_ACTION, value=value,
                                      style="danger"))
    return ActionsBlock(block_id=f"release-{release.id}", elements=elements) if elements else None


def step_message(release: Release, record: StepRecord) -> Message:
    """The thread reply for a finished step: what it checked and found."""
    result = record.result
    assert result is not None
    head = f"{ICONS[record.state]} *{record.title}* — {result.summary}"
    blocks: list[Built] = [section(head)]
    text_parts = [head]
    if result.details:
        blocks.append(section(result.details))
        text_parts.append(result.details)
    if result.output_tail and record.state in (StepState.FAIL, StepState.WARN):
        tail = "Last lines of output:\n```\n" + result.output_tail[-2500:] + "\n```"
        blocks.append(section(tail))
        text_parts.append(tail)
    if result.links:
        links = " · ".join(f"<{link.url}|{link.label}>" for link in result.links)
        blocks.append(context(links))
        text_parts.append(links)
    took = ""
    if record.started_at and record.finished_at:
        took = f" · took {duration((record.finished_at - record.started_at).total_seconds())}"
    blocks.append(context(f"`{record.name}` · {record.phase}{took}"))
    return Message(text=cut("\n".join(text_parts), 39000), blocks=_dicts(blocks[:MAX_BLOCKS]),
                   summary=head)


def gate_message(release: Release, record: StepRecord, gate: Gate) -> Message:
    """A question with buttons; the value carries release, step and gate."""
    value = json.dumps({"release": release.id, "step": record.name, "gate": gate.key})
    buttons = [
        ButtonElement(text=action.label, action_id=f"{GATE_ACTION_PREFIX}{action.id}", value=value,
                      style=action.style)
        for action in gate.actions
    ]
    head = f"{ICONS[StepState.WAITING]} *{record.title}* is waiting for a decision"
    if gate.approvers:
        head += " from " + ", ".join(mention(a) for a in gate.approvers)
    blocks: list[Built] = [section(head), section(gate.prompt)]
    asking = [action.label for action in gate.actions if action.asks_reason]
    if asking:
        blocks.append(InputBlock(
            block_id=GATE_REASON_BLOCK, optional=True,
            label=f"Why, if you choose {' or '.join(asking)} (kept in the release log)",
            element=PlainTextInputElement(action_id=GATE_REASON_INPUT, max_length=REASON_LIMIT)))
    blocks.append(ActionsBlock(block_id=f"gate-{release.id}-{record.name}", elements=buttons))
    choices = " / ".join(action.label for action in gate.actions)
    text = f"{head}\n{gate.prompt}\nChoices: {choices}"
    return Message(text=text, blocks=_dicts(blocks), summary=head)


def gate_answered(record: StepRecord, gate: Gate, action: str, user: str, at: str,
                  reason: str = "") -> Message:
    """The gate message once answered: the buttons are gone, the choice (and why) recorded."""
    label = next((a.label for a in gate.actions if a.id == action), action)
    text = f"*{record.title}*: <@{user}> chose *{label}* at {at}"
    if reason:
        text += f": “{escape(reason)}”"
    blocks: list[Built] = [section(gate.prompt), context(text)]
    return Message(text=text + "\n" + gate.prompt, blocks=_dicts(blocks), summary=text)


def final_message(release: Release, rollback_enabled: bool = False) -> Message:
    """The thread's last word on a release, broadcast to the channel; a release that needs
    someone carries the Retry (and Roll back) buttons too."""
    status = status_line(release)
    lines = [f"*{status}*"]
    needs_you = release.status in (ReleaseStatus.FAILED, ReleaseStatus.INTERRUPTED)
    if needs_you:
        lines.append(f"{mention(release.started_by)}, your release of `{release.ref}` needs you: "
                     "Retry step, or roll it back.")
    skipped = [r for r in release.steps if r.state == StepState.SKIPPED]
    if skipped:
        lines.append("Skipped: " + ", ".join(
            f"{r.title} ({r.result.summary.removeprefix('Skipped: ') if r.result else ''})"
            for r in skipped))
    text = f"{title_line(release)}: " + "\n".join(lines)
    blocks: list[Built] = [section(text)]
    buttons = release_buttons(release, rollback_enabled) if needs_you else None
    if buttons:
        blocks.append(buttons)
    return Message(text=text, blocks=_dicts(blocks), summary=status, broadcast=True)


def phase_summary(phase: str, records: list[StepRecord]) -> Message:
    """One table closing a concurrent phase: every check, its verdict and what it found; the
    details of its warnings and the links of its checks below (its failures have replies of
    their own)."""
    rows = [[r.title, r.state.value, (r.result.summary if r.result else "")[:90]] for r in records]
    head = f"*{phase.capitalize()} summary*: {tally(records)}"
    text = head + "\n" + table(["check", "verdict", "found"], rows)
    parts: list[Built] = [section(cut(text))]
    texts = [text]
    for record in records:
        result = record.result
        if result is not None and record.state == StepState.WARN and result.details:
            note = f"{ICONS[record.state]} *{record.title}*: {result.details}"
            parts.append(section(note))
            texts.append(note)
    links = " · ".join(f"<{link.url}|{record.title}: {link.label}>" for record in records
                       if record.result is not None for link in record.result.links)
    if links:
        parts.append(context(links))
        texts.append(links)
    return Message(text=cut("\n".join(texts), 39000), blocks=_dicts(parts[:MAX_BLOCKS]),
                   summary=head)


def note_message(text: str) -> Message:
    return Message(text=text, blocks=_dicts([section(text)]), summary=text)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A monospace table inside a code block (Slack has no table block in messages)."""
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "```\n" + "\n".join(lines) + "\n```"


def _dicts(blocks: list[Built]) -> list[dict[str, Any]]:
    return [block if isinstance(block, dict) else block.to_dict() for block in blocks]


# --- the release log in Slack (`/release log`, `/release show`) --------------------------------
def slack_date(moment: datetime) -> str:
    """A time Slack shows in the reader's own time zone (fallback: UTC)."""
    stamp = int(moment.timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def log_line(release: Release, link: str | None) -> str:
    """One release of the log: status, ref, SHA, who, when, duration, thread."""
    sha = f" · `{release.git_sha[:8]}`" if release.git_sha else ""
    took = f" · took {duration(release.duration_seconds)}" if release.finished_at else ""
    thread = f" · <{link}|thread>" if link else ""
    if not link and release.channel and release.thread_ts:
        thread = f" · thread {release.thread_ts} in <#{release.channel}>"
    ref = escape(release.ref.replace("`", "'"))
    return (f"{STATUS_ICONS[release.status]} *#{release.id}* {release.status.value} · `{ref}`{sha}"
            f" · {user_text(release.started_by)} · {slack_date(release.started_at)}{took}{thread}")


def user_text(user: str) -> str:
    """A Slack mention for a user id; any other name (console, CLI) escaped, never a mention."""
    return f"<@{user}>" if USER_ID.fullmatch(user) else escape(user)


def release_log_message(releases: list[Release], links: dict[int, str], environment: str) -> Message:
    """`/release log`: newest first, one line each, in as few sections as Slack allows."""
    if not releases:
        return note_message(f"No releases to {environment} yet.")
    plural = "s" if len(releases) != 1 else ""
    head = f"*Last {len(releases)} release{plural} to {environment}* (newest first)"
    lines = [log_line(r, links.get(r.id or 0)) for r in releases]
    sections: list[Built] = [section(head)]
    sections += [section(chunk) for chunk in _chunk_lines(lines, SECTION_LIMIT)]
    return Message(text="\n".join([head, *lines]), blocks=_dicts(sections[:MAX_BLOCKS]), summary=head)


def release_show_message(release: Release, table_text: str, link: str | None) -> Message:
    """`/release show ID`: the guide's table (as the CLI prints it), escaped, in code blocks."""
    head = f"*{escape(title_line(release))}* · {status_line(release)}"
    if link:
        head += f" · <{link}|thread>"
    if release.notes:
        head += f"\nNotes: {escape(cut(release.notes, 500))}"
    safe = escape(table_text).replace("```", "'''")
    chunks = _chunk_lines(safe.splitlines(), SECTION_LIMIT - 8)
    parts: list[Built] = [section(head)]
    parts += [section(f"```\n{chunk}\n```") for chunk in chunks]
    return Message(text=f"{head}\n{safe}", blocks=_dicts(parts[:MAX_BLOCKS]), summary=head)


def _chunk_lines(lines: list[str], limit: int) -> list[str]:
    """Lines joined into chunks of at most `limit` characters (a longer line is cut)."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = line if len(line) <= limit else line[: limit - 1] + "…"
        if current and size + len(line) + 1 > limit:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        chunks.append("\n".join(current))
    return chunks
