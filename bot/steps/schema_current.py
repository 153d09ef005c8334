"""The `schema_current` step (guide section 3): "Supabase reflects the latest schema".

Every migration file of the release is in staging's migration history (Supabase CLI with
SUPABASE_DB_URL, else the Management API).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.chat.blocks import table
from bot.providers.http import ProviderError
from bot.providers.supabase_api import list_applied_migrations, supabase_client
from bot.providers.supabase_cli import SupabaseCli, SupabaseCliError
from bot.providers.tools import resolve_tool
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.migration_files import skipped_by_person
from bot.wording import plural

# A Retry after missing migrations asks the migration question again and pushes what is approved.
REOPENS = ("migrations_review", "migrations_push")


def _migration_files(workspace: str) -> dict[str, str]:
    """Version -> name of every `supabase/migrations/*.sql` in the workspace."""
    out: dict[str, str] = {}
    for path in sorted((Path(workspace) / "supabase" / "migrations").glob("*.sql")):
        match = re.match(r"^(\d+)_(.*)$", path.stem)
        if match:
            out[match.group(1)] = match.group(2)
    return out


async def _remote_versions(ctx: StepContext) -> tuple[list[str], str]:
    """Versions in staging's migration history, and where they were read from."""
    settings = ctx.settings
    assert settings.APP_WORKSPACE
    if settings.SUPABASE_DB_URL:
        cli = SupabaseCli(binary=resolve_tool("supabase", settings),
                          timeout=settings.COMMAND_TIMEOUT_SECONDS)
        rows = await cli.list_migrations(settings.APP_WORKSPACE,
                                         db_url=settings.secret("SUPABASE_DB_URL"))
        return [row.remote for row in rows if row.remote], "Supabase CLI (SUPABASE_DB_URL)"
    assert settings.SUPABASE_PROJECT_REF
    async with supabase_client(settings) as client:
        versions = await list_applied_migrations(client, settings.SUPABASE_PROJECT_REF)
    return versions, f"Management API (project {settings.SUPABASE_PROJECT_REF})"


def _names(versions: list[str], local: dict[str, str]) -> str:
    return ", ".join(f"{v}_{local[v]}" if local.get(v) else v for v in versions)


def _behind(missing: list[str], local: dict[str, str], skipped: tuple[set[str], str],
            details: str, data: dict[str, Any]) -> StepResult:
    """Staging lacks some of the release's migrations: a warning when a person chose to skip
    exactly those at the review, else a failure whose Retry asks the migration question again."""
    versions, who = skipped
    chosen = [v for v in missing if v in versions]
    unexpected = [v for v in missing if v not in versions]
    data["skipped"] = chosen
    if not unexpected:
        return StepResult.warn(
            f"{len(chosen)} of {plural(len(local), 'migration')} not applied on staging, {who}: "
            + _names(chosen, local), details=details, data=data)
    also = f" ({len(chosen)} more {who})" if chosen else ""
    return StepResult.fail(
        f"{len(unexpected)} of {plural(len(local), 'migration')} not applied on staging: "
        + _names(unexpected, local) + also,
        details=details, data=data | {"reopens": list(REOPENS)})


async def schema_current(ctx: StepContext) -> StepResult:
    """Check staging's migration history holds every migration file of the release."""
    workspace = ctx.settings.APP_WORKSPACE
    assert workspace
    local = _migration_files(workspace)
    await ctx.progress("Reading staging's migration history…")
    try:
        remote, source = await _remote_versions(ctx)
    except SupabaseCliError as exc:
        return StepResult.fail(
            "The Supabase CLI could not list staging's migrations: "
            + ctx.redact(exc.message.splitlines()[0] if exc.message else "no output"),
            output_tail=ctx.redact("\n".join(str(exc).splitlines()[:10])),
        )
    except ProviderError as exc:
        return StepResult.fail(f"Could not read staging's migration history: {ctx.redact(str(exc))}")
    applied = set(remote)
    missing = [v for v in local if v not in applied]
    remote_only = sorted(v for v in applied if v not in local)
    rows = [[v, name, "yes" if v in applied else "NO"] for v, name in local.items()]
    rows += [[v, "—", "remote only"] for v in remote_only]
    rows.sort(key=lambda row: row[0])
    details = (table(["version", "name", "applied"], rows) if rows else "") + f"\n_Source: {source}_"
    data = {
        "source": source,
        "local": list(local),
        "applied": sorted(applied),
        "missing": missing,
        "remote_only": remote_only,
    }
    if missing:
        return _behind(missing, local, skipped_by_person(ctx.release.data), details, data)
    if not local:
        return StepResult.warn(f"No migration files under {workspace}/supabase/migrations",
                               details=details, data=data)
    newest = max(local)
    every = "The only migration is" if len(local) == 1 else f"All {len(local)} migrations are"
    summary = f"{every} applied on staging (newest {_names([newest], local)})"
    if remote_only:
        return StepResult.warn(
            summary + f"; staging also has {len(remote_only)} not in the release: "
            + ", ".join(remote_only), details=details, data=data)
    return StepResult.ok(summary, details=details, data=data)


STEP = StepDef(
    name="schema_current",
    title="Staging schema is current",
    requires=("APP_WORKSPACE",),
    requires_any=(("SUPABASE_DB_URL",), ("SUPABASE_PROJECT_REF", "SUPABASE_ACCESS_TOKEN")),
    timeout=300,
    describe="Every supabase/migrations/*.sql of the release is in staging's migration history "
             "(Supabase CLI `migration list` with SUPABASE_DB_URL, else the Management API).",
    run=schema_current,
)
