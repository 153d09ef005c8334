"""The `migrations_push` step (guide 1.2, "Sync database migrations"): push what the review approved.

`supabase db push` (non-interactive, JSON output) against SUPABASE_DB_URL (`--db-url`, wins) or
the linked SUPABASE_PROJECT_REF. The applied versions go to `data["applied"]` (the rollback reads
it) and the "Migrations Applied" field. A failing migration fails the step and still records the
ones applied before it; a migration older than staging's newest one fails with the CLI's advice:
`--include-all` is never passed, since applying an old migration after newer ones may not do
what its author expected.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.chat.blocks import cut
from bot.providers.supabase_cli import (
    MigrationHistoryMismatchError,
    MigrationOrderError,
    MigrationPushError,
    SupabaseCli,
    SupabaseCliError,
)
from bot.providers.tools import resolve_tool
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.migration_files import (
    FIELD,
    REQUIRES_ANY,
    checkout,
    cli_failure,
    first_line,
    local_files,
    name_of,
    staging_target,
    supabase_cli,
)


def _label(version: str, files: dict[str, Path]) -> str:
    return f"{version} {name_of(files.get(version))}".strip()


def _applied_field(versions: list[str], files: dict[str, Path]) -> str:
    return ", ".join(_label(v, files) for v in versions) if versions else "none"


async def migrations_push(ctx: StepContext) -> StepResult:
    """Apply what the review approved and record exactly what went in."""
    review = ctx.release.data.get("steps", {}).get("migrations_review")
    review = review if isinstance(review, dict) else None
    if review is not None and review.get("decision") == "skip":
        return StepResult.skipped("skipped at review", data={"applied": [], "decision": "skip"})
    if review is not None and review.get("pending") == []:
        return StepResult.ok("Nothing to push", data={"applied": []}, fields={FIELD: "none"})
    workspace, problem = await checkout(ctx)
    if problem is not None:
        return problem
    assert workspace is not None
    db_url, project_ref, target = staging_target(ctx.settings)
    cli = supabase_cli(ctx.settings)
    files = local_files(workspace)
    try:
        rows = await cli.list_migrations(workspace, db_url, project_ref)
    except SupabaseCliError as exc:
        return cli_failure(ctx, "The Supabase CLI could not list staging's migrations", exc)
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
            f"supabase db push failed at {failed}: {ctx.redact(first_line(exc.message))}"
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
        refused = cli_failure(ctx, "supabase db push refused: staging's history has migrations "
                               "the release lacks", exc)
        return refused.model_copy(update={"data": {"applied": []}, "fields": {FIELD: "none"}})
    except SupabaseCliError as exc:
        failure = cli_failure(ctx, "supabase db push failed", exc)
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


STEP = StepDef(
    name="migrations_push",
    title="Push migrations to staging",
    requires=("APP_WORKSPACE",),
    requires_any=REQUIRES_ANY,
    tools=("supabase",),
    timeout=None,
    describe="`supabase db push` of the approved migrations against SUPABASE_DB_URL or the linked "
             "SUPABASE_PROJECT_REF; records the applied migration IDs (never passes --include-all).",
    find_tool=resolve_tool,
    run=migrations_push,
)
