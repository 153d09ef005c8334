"""The guide's 1.2 "Sync database migrations": review the pending SQL files, then push them.

- `migrations_review`: the SQL files under `{APP_WORKSPACE}/supabase/migrations` (at the release
  ref) that staging's migration history lacks, per `supabase migration list`. Each pending file is
  shown with its version, name, size and first statements, and the release waits for a person:
  apply (release approvers only), skip, or cancel the release. The decision is recorded by the
  engine (who and when) and survives a restart: the gate key is derived from the pending versions,
  so the re-run step finds the stored answer instead of asking again.
- `migrations_push`: `supabase db push` (non-interactive, JSON output) of what the review approved,
  against SUPABASE_DB_URL (`--db-url`, wins) or the linked SUPABASE_PROJECT_REF. The applied
  versions go to `data["applied"]` (the rollback reads it) and the "Migrations Applied" field. A
  failing migration fails the step and still records the ones applied before it; a migration older
  than staging's newest one fails with the CLI's advice: `--include-all` is never passed, since
  applying an old migration after newer ones may not do what its author expected.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.chat.blocks import SECTION_LIMIT, cut
from bot.config import Settings
from bot.providers.shell import elapsed_progress
from bot.providers.supabase_cli import (
    MigrationHistoryMismatchError,
    MigrationOrderError,
    MigrationPushError,
    MigrationRow,
    SupabaseCli,
    SupabaseCliError,
)
from bot.providers.tools import resolve_tool
from bot.runbook.model import Decision, Gate, GateAction, StepResult
from bot.runbook.registry import StepContext, step
from bot.steps.checks import WorkspaceError, prepare_workspace

MIGRATIONS_DIR = Path("supabase") / "migrations"
REQUIRES_ANY = (("SUPABASE_DB_URL",), ("SUPABASE_PROJECT_REF",))
FIELD = "Migrations Applied"
PREVIEW_STATEMENTS = 3
MIN_PREVIEW_CHARS = 120
_FILE = re.compile(r"^(\d+)_(.*)\.sql$")


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


# --- shared ------------------------------------------------------------------------------------


def _cli(settings: Settings) -> SupabaseCli:
    return SupabaseCli(
        binary=resolve_tool("supabase", settings),
        access_token=settings.SUPABASE_ACCESS_TOKEN,
        db_password=settings.SUPABASE_DB_PASSWORD,
        timeout=settings.COMMAND_TIMEOUT_SECONDS,
    )


def _target(settings: Settings) -> tuple[str | None, str | None, str]:
    """(db_url, project_ref, how to name it): SUPABASE_DB_URL wins over the project ref."""
    if settings.SUPABASE_DB_URL and settings.secret("SUPABASE_DB_URL"):
        return settings.secret("SUPABASE_DB_URL"), None, "SUPABASE_DB_URL"
    return None, settings.SUPABASE_PROJECT_REF, f"project {settings.SUPABASE_PROJECT_REF}"


def _local_files(workspace: Path) -> dict[str, Path]:
    """Version -> file of every `supabase/migrations/<version>_<name>.sql`."""
    out: dict[str, Path] = {}
    folder = workspace / MIGRATIONS_DIR
    if folder.is_dir():
        for path in sorted(folder.glob("*.sql")):
            match = _FILE.match(path.name)
            if match:
                out.setdefault(match.group(1), path)
    return out


def _name_of(path: Path | None) -> str:
    match = _FILE.match(path.name) if path else None
    return match.group(2) if match else ""


def _label(version: str, files: dict[str, Path]) -> str:
    return f"{version} {_name_of(files.get(version))}".strip()


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


def _cli_failure(ctx: StepContext, what: str, exc: SupabaseCliError) -> StepResult:
    details = "```\n" + ctx.redact(str(exc)).replace("```", "'''") + "\n```"
    return StepResult.fail(f"{what}: {ctx.redact(_first_line(exc.message))}",
                           details=cut(details), output_tail=ctx.redact(exc.stderr[-2000:]))


async def _checkout(ctx: StepContext) -> tuple[Path | None, StepResult | None]:
    """The release ref checked out in APP_WORKSPACE, without `npm ci`: reading SQL files and
    running the Supabase CLI (from SUPABASE_CLI or .tools/) need no node_modules."""
    try:
        await prepare_workspace(ctx, install=False)
    except WorkspaceError as exc:
        return None, StepResult.fail(f"Could not check out {ctx.release.ref}: {ctx.redact(str(exc))}")
    return Path(ctx.settings.APP_WORKSPACE or ""), None


# --- review ------------------------------------------------------------------------------------


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
            name=_name_of(path),
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


@step(
    "migrations_review",
    title="Review pending migrations",
    phase="prepare",
    requires=("APP_WORKSPACE",),
    requires_any=REQUIRES_ANY,
    tools=("supabase",),
    timeout=None,
    describe="List supabase/migrations/*.sql of the release that staging has not applied "
    "(Supabase CLI `migration list`) and wait for an approver: apply, skip or cancel.",
)
async def migrations_review(ctx: StepContext) -> StepResult:
    """Show what `db push` would apply and wait for a person to decide."""
    workspace, problem = await _checkout(ctx)
    if problem is not None:
        return problem
    assert workspace is not None
    db_url, project_ref, target = _target(ctx.settings)
    try:
        async with elapsed_progress(ctx.progress, f"supabase migration list ({target})"):
            rows = await _cli(ctx.settings).list_migrations(workspace, db_url, project_ref)
    except SupabaseCliError as exc:
        return _cli_failure(ctx, "The Supabase CLI could not list staging's migrations", exc)
    files = _local_files(workspace)
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
            GateAction(id="skip", label="Skip migrations"),
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
        # File names, not bare versions: the release log must not read as if these were applied.
        listed = ", ".join(m.file.removesuffix(".sql") for m in pending)
        return StepResult.warn(f"Migrations skipped by {who}", details=text, data=data,
                               fields={FIELD: f"skipped by {who} (pending: {listed})"})
    # `cancel_release` makes the engine end the release as cancelled, by this person.
    return StepResult.fail(f"Release cancelled at the migration review by {who}",
                           details=text, data=data | {"cancel_release": decision.user})


# --- push --------------------------------------------------------------------------------------


def _applied_field(versions: list[str], files: dict[str, Path]) -> str:
    return ", ".join(_label(v, files) for v in versions) if versions else "none"


@step(
    "migrations_push",
    title="Push migrations to staging",
    phase="prepare",
    requires=("APP_WORKSPACE",),
    requires_any=REQUIRES_ANY,
    tools=("supabase",),
    timeout=None,  # the CLI call is bounded by COMMAND_TIMEOUT_SECONDS and reports partial pushes
    describe="`supabase db push` of the approved migrations against SUPABASE_DB_URL or the linked "
    "SUPABASE_PROJECT_REF; records the applied migration IDs (never passes --include-all).",
)
async def migrations_push(ctx: StepContext) -> StepResult:
    """Apply what the review approved and record exactly what went in."""
    review = ctx.release.data.get("steps", {}).get("migrations_review")
    review = review if isinstance(review, dict) else None
    if review is not None and review.get("decision") == "skip":
        return StepResult.skipped("skipped at review", data={"applied": [], "decision": "skip"})
    if review is not None and review.get("pending") == []:
        return StepResult.ok("Nothing to push", data={"applied": []}, fields={FIELD: "none"})
    workspace, problem = await _checkout(ctx)
    if problem is not None:
        return problem
    assert workspace is not None
    db_url, project_ref, target = _target(ctx.settings)
    cli = _cli(ctx.settings)
    files = _local_files(workspace)
    try:
        rows = await cli.list_migrations(workspace, db_url, project_ref)
    except SupabaseCliError as exc:
        return _cli_failure(ctx, "The Supabase CLI could not list staging's migrations", exc)
    pending = [row.version for row in rows if row.pending]
    approved_at_review = {str(v) for v in (review or {}).get("pending") or []}
    # Approved migrations already on staging were applied by an earlier, interrupted attempt
    # of this release: they are this release's too (a rollback must revert them).
    earlier = [row.version for row in rows if row.applied and row.version in approved_at_review]
    if not pending:
        if earlier:
            listed = _applied_field(earlier, files)
            return StepResult.ok(f"Nothing left to push; applied by an earlier attempt: {listed}",
                                 data={"applied": earlier}, fields={FIELD: listed})
        return StepResult.ok("Nothing to push", data={"applied": []}, fields={FIELD: "none"},
                             details=f"Staging ({target}) already has every migration of the release.")
    if review is None:
        return StepResult.fail(
            f"Not pushing {len(pending)} pending migrations: nobody approved them (this runbook has "
            "no migrations_review step before migrations_push)",
            data={"applied": [], "unreviewed": pending})
    if review is not None:
        approved = {str(v) for v in review.get("pending") or []}
        unreviewed = [v for v in pending if v not in approved]
        if unreviewed:
            return StepResult.fail(
                "Pending migrations changed since the review; not pushing unreviewed "
                + _applied_field(unreviewed, files),
                data={"applied": [], "unreviewed": unreviewed})
    await ctx.progress(f"supabase db push ({target}): {len(pending)} pending")
    try:
        result = await cli.push(workspace, db_url, project_ref)
    except asyncio.CancelledError:
        # Cancelled mid-push: record what already went in before letting the cancel through.
        await asyncio.shield(_record_partial(ctx, cli, workspace, db_url, project_ref, pending,
                                             earlier, files))
        raise
    except MigrationPushError as exc:
        applied = earlier + exc.applied
        failed = exc.failed or "a migration"
        before = _applied_field(applied, files) if applied else "none"
        field = f"{before} (then {failed} failed; not applied)"
        detail = "```\n" + ctx.redact(str(exc)).replace("```", "'''") + "\n```"
        return StepResult.fail(
            f"supabase db push failed at {failed}: {ctx.redact(_first_line(exc.message))}"
            f" — applied before it: {before}",
            details=cut(detail), output_tail=ctx.redact(exc.stderr[-2000:]),
            data={"applied": applied, "failed": exc.failed_version, "failed_file": exc.failed,
                  "timed_out": exc.timed_out},
            fields={FIELD: field})
    except MigrationOrderError as exc:
        versions = exc.versions or [v for v in pending if any(r.applied and r.version > v for r in rows)]
        advice = ctx.redact(exc.suggestion or "")
        return StepResult.fail(
            f"supabase db push refused {', '.join(versions) or 'the push'}: older than staging's "
            "newest migration; the bot does not pass --include-all on purpose (rename the file to a "
            "newer version, or apply it by hand after review)",
            details=cut("```\n" + ctx.redact(exc.message) + ("\n" + advice if advice else "")
                        + "\n```"),
            data={"applied": [], "out_of_order": versions}, fields={FIELD: "none"})
    except MigrationHistoryMismatchError as exc:
        refused = _cli_failure(ctx, "supabase db push refused: staging's history has migrations "
                               "the release lacks", exc)
        return refused.model_copy(update={"data": {"applied": []}, "fields": {FIELD: "none"}})
    except SupabaseCliError as exc:
        failure = _cli_failure(ctx, "supabase db push failed", exc)
        return failure.model_copy(update={"data": {"applied": []}})
    applied = earlier + result.applied
    data = {"applied": applied, "files": result.migrations, "target": target}
    if not applied:
        return StepResult.ok("Nothing to push", data=data, fields={FIELD: "none"})
    listed = _applied_field(applied, files)
    noun = "migration" if len(applied) == 1 else "migrations"
    return StepResult.ok(f"Applied {len(applied)} {noun} to staging: {listed}",
                         details="\n".join(f"• `{_label(v, files)}`" for v in applied),
                         data=data, fields={FIELD: listed})


async def _record_partial(ctx: StepContext, cli: SupabaseCli, workspace: Path, db_url: str | None,
                          project_ref: str | None, pending: list[str], earlier: list[str],
                          files: dict[str, Path]) -> None:
    """After a cancelled push, write what staging now has of `pending` into the release."""
    try:
        rows = await asyncio.wait_for(cli.list_migrations(workspace, db_url, project_ref), 60)
    except (SupabaseCliError, TimeoutError):
        applied_now: list[str] = []
        unknown = True
    else:
        applied_now = [r.version for r in rows if r.applied and r.version in set(pending)]
        unknown = False
    applied = earlier + applied_now
    ctx.release.data.setdefault("steps", {})["migrations_push"] = {
        "applied": applied, "cancelled": True, "unknown": unknown}
    listed = _applied_field(applied, files) if applied else "none"
    ctx.release.fields[FIELD] = listed + (" (push cancelled midway)" if applied_now or unknown
                                          else " (push cancelled before any migration)")
