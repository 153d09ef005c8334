"""The `migrations_review` step (guide 1.2, "Sync database migrations"): review the pending SQL.

The SQL files under `{APP_WORKSPACE}/supabase/migrations` (at the release ref) that staging's
migration history lacks, per `supabase migration list`. Each pending file is shown with its
version, name, size and first statements, and the release waits for a person: apply (release
approvers only), skip, or cancel the release. The decision is recorded by the engine (who and
when) and survives a restart: the gate key is derived from the pending versions, so the re-run
step finds the stored answer instead of asking again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.chat.blocks import SECTION_LIMIT, cut
from bot.providers.shell import elapsed_progress
from bot.providers.supabase_cli import (
    MigrationRow,
    SupabaseCliError,
)
from bot.providers.tools import resolve_tool
from bot.redact import escape
from bot.runbook.model import Decision, Gate, GateAction, StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.migration_files import (
    FIELD,
    REQUIRES_ANY,
    checkout,
    cli_failure,
    local_files,
    name_of,
    staging_target,
    supabase_cli,
)

PREVIEW_STATEMENTS = 3
MIN_PREVIEW_CHARS = 120


@dataclass(frozen=True)
class PendingMigration:
    """A local migration file staging has not applied."""

    version: str
    name: str
    file: str
    size: int
    sql: str

    @property
    def label(self) -> str:
        """`<version> <name>`: the form the release log lists (the rollback finds the version)."""
        return f"{self.version} {self.name}".strip()

    def as_data(self) -> dict[str, Any]:
        return {"version": self.version, "name": self.name, "file": self.file, "bytes": self.size}


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB"


def _preview(sql: str, limit: int) -> str:
    """The first statements of `sql` (comment-only and blank lines left out), at most `limit` chars."""
    lines: list[str] = []
    statements = 0
    body = [line.rstrip() for line in sql.splitlines()]
    for index, line in enumerate(body):
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        lines.append(line)
        if stripped.endswith(";"):
            statements += 1
            if statements >= PREVIEW_STATEMENTS:
                rest = [x for x in body[index + 1:] if x.strip() and not x.strip().startswith("--")]
                if rest:
                    lines.append("…")
                break
    text = "\n".join(lines).replace("```", "'''") or "(no statements)"
    if len(text) > limit:
        text = text[: max(limit - 2, 0)].rstrip() + "\n…"
    return text


def review_text(pending: list[PendingMigration], target: str, notes: list[str]) -> str:
    """Every pending migration with its first statements, cut to one Slack section."""
    head = f"*{len(pending)} pending migration{'s' if len(pending) != 1 else ''}* for staging ({target}):"
    headers = [f"• `{m.version}` *{m.name or m.file}* — {_size(m.size)}" for m in pending]
    fixed = len(head) + sum(len(h) + 10 for h in headers) + sum(len(n) + 3 for n in notes) + 40
    budget = (SECTION_LIMIT - fixed) // max(len(pending), 1)
    parts = [head]
    for migration, header in zip(pending, headers, strict=True):
        parts.append(header)
        if budget >= MIN_PREVIEW_CHARS:
            parts.append("```\n" + _preview(migration.sql, budget) + "\n```")
    parts += [f"_{note}_" for note in notes]
    return cut("\n".join(parts), SECTION_LIMIT)


def _pending(rows: list[MigrationRow], files: dict[str, Path]) -> list[PendingMigration]:
    out = []
    for row in rows:
        if not row.pending:
            continue
        path = files.get(row.version)
        sql = path.read_text(encoding="utf-8", errors="replace") if path else ""
        out.append(PendingMigration(
            version=row.version,
            name=name_of(path),
            file=path.name if path else str(row.local),
            size=path.stat().st_size if path else 0,
            sql=sql,
        ))
    return out


def _notes(rows: list[MigrationRow], pending: list[PendingMigration], files: dict[str, Path]) -> list[str]:
    notes = []
    remote = [row.version for row in rows if row.applied]
    newest = max(remote) if remote else None
    older = [m.version for m in pending if newest and m.version < newest]
    if older:
        notes.append(f"{', '.join(older)} {'is' if len(older) == 1 else 'are'} older than staging's "
                     f"newest migration {newest}: `supabase db push` will refuse "
                     f"{'it' if len(older) == 1 else 'them'} (the bot never passes --include-all)")
    remote_only = [row.version for row in rows if row.applied and row.version not in files]
    if remote_only:
        notes.append(f"Staging has {len(remote_only)} migration(s) the release lacks "
                     f"({', '.join(remote_only)}): `supabase db push` will refuse until the history "
                     "is repaired")
    return notes


def gate_key(versions: list[str]) -> str:
    """A stable key for this set of pending versions (a restart finds the same gate)."""
    key = "apply-" + "-".join(versions)
    if len(key) <= 200:
        return key
    return "apply-" + hashlib.sha256(",".join(versions).encode()).hexdigest()[:32]


def _when(decision: Decision) -> str:
    return decision.at.strftime("%H:%M UTC")


async def migrations_review(ctx: StepContext) -> StepResult:
    """Show what `db push` would apply and wait for a person to decide."""
    workspace, problem = await checkout(ctx)
    if problem is not None:
        return problem
    assert workspace is not None
    db_url, project_ref, target = staging_target(ctx.settings)
    try:
        async with elapsed_progress(ctx.progress, f"supabase migration list ({target})"):
            rows = await supabase_cli(ctx.settings).list_migrations(workspace, db_url, project_ref)
    except SupabaseCliError as exc:
        return cli_failure(ctx, "The Supabase CLI could not list staging's migrations", exc)
    files = local_files(workspace)
    pending = _pending(rows, files)
    if not pending:
        applied = sum(1 for row in rows if row.applied)
        return StepResult.ok("No pending migrations",
                             details=f"All {len(files)} migration files are applied on staging "
                             f"({applied} in its history).",
                             data={"pending": [], "target": target})
    notes = _notes(rows, pending, files)
    text = review_text(pending, target, notes)
    versions = [m.version for m in pending]
    count = len(pending)
    noun = "migration" if count == 1 else "migrations"
    decision = await ctx.ask(Gate(
        key=gate_key(versions),
        prompt=text,
        actions=[
            GateAction(id="apply", label=f"Apply {count} {noun}", style="primary"),
            GateAction(id="skip", label="Skip migrations", asks_reason=True),
            GateAction(id="cancel", label="Cancel release", style="danger"),
        ],
    ))
    data: dict[str, Any] = {
        "pending": versions,
        "migrations": [m.as_data() for m in pending],
        "target": target,
        "decision": decision.action,
        "decided_by": decision.user,
        "decided_at": decision.at.isoformat(),
    }
    who = f"<@{decision.user}>"
    if decision.action == "apply":
        data |= {"approved_by": decision.user, "approved_at": decision.at.isoformat()}
        return StepResult.ok(f"{count} {noun} approved by {who} at {_when(decision)}",
                             details=text, data=data)
    if decision.action == "skip":
        return _skipped(pending, decision, text, data)
    # `cancel_release` makes the engine end the release as cancelled, by this person.
    return StepResult.fail(f"Release cancelled at the migration review by {who}",
                           details=text, data=data | {"cancel_release": decision.user})


def _skipped(pending: list[PendingMigration], decision: Decision, text: str,
             data: dict[str, Any]) -> StepResult:
    """A person chose to release without these migrations: who, when and why go on record."""
    who = f"<@{decision.user}>"
    # File names, not bare versions: the release log must not read as if these were applied.
    listed = ", ".join(m.file.removesuffix(".sql") for m in pending)
    why = decision.reason or "no reason given"
    data |= {"skipped": [m.version for m in pending], "skip_reason": decision.reason}
    return StepResult.warn(
        # the summary is mrkdwn: what the person typed is made inert (the log's data keeps it as typed)
        f"Migrations skipped by {who}" + (f": {escape(decision.reason)}" if decision.reason else ""),
        details=text, data=data,
        fields={FIELD: f"skipped by {who} at {decision.at:%Y-%m-%d %H:%M UTC} ({why}; "
                f"pending: {listed})"})


STEP = StepDef(
    name="migrations_review",
    title="Review pending migrations",
    requires=("APP_WORKSPACE",),
    requires_any=REQUIRES_ANY,
    tools=("supabase",),
    timeout=None,
    describe="List supabase/migrations/*.sql of the release that staging has not applied "
             "(Supabase CLI `migration list`) and wait for an approver: apply, skip or cancel.",
    find_tool=resolve_tool,
    run=migrations_review,
)
