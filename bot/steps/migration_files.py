"""What both migration steps (and `schema_current`) share: the release's migration files, the
Supabase CLI they run, and the staging database they target (SUPABASE_DB_URL wins over the
linked SUPABASE_PROJECT_REF).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.chat.blocks import cut
from bot.config import Settings
from bot.providers.supabase_cli import (
    SupabaseCli,
    SupabaseCliError,
)
from bot.providers.tools import resolve_tool
from bot.redact import escape
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext
from bot.steps.workspace import WorkspaceError, prepare_workspace

MIGRATIONS_DIR = Path("supabase") / "migrations"
REQUIRES_ANY = (("SUPABASE_DB_URL",), ("SUPABASE_PROJECT_REF",))
FIELD = "Migrations Applied"
_FILE = re.compile(r"^(\d+)_(.*)\.sql$")


def supabase_cli(settings: Settings) -> SupabaseCli:
    """The Supabase CLI (SUPABASE_CLI or .tools/) with the staging credentials."""
    return SupabaseCli(
        binary=resolve_tool("supabase", settings),
        access_token=settings.SUPABASE_ACCESS_TOKEN,
        db_password=settings.SUPABASE_DB_PASSWORD,
        timeout=settings.COMMAND_TIMEOUT_SECONDS,
    )


def staging_target(settings: Settings) -> tuple[str | None, str | None, str]:
    """(db_url, project_ref, how to name it): SUPABASE_DB_URL wins over the project ref."""
    if settings.SUPABASE_DB_URL and settings.secret("SUPABASE_DB_URL"):
        return settings.secret("SUPABASE_DB_URL"), None, "SUPABASE_DB_URL"
    return None, settings.SUPABASE_PROJECT_REF, f"project {settings.SUPABASE_PROJECT_REF}"


def local_files(workspace: Path) -> dict[str, Path]:
    """Version -> file of every `supabase/migrations/<version>_<name>.sql`."""
    out: dict[str, Path] = {}
    folder = workspace / MIGRATIONS_DIR
    if folder.is_dir():
        for path in sorted(folder.glob("*.sql")):
            match = _FILE.match(path.name)
            if match:
                out.setdefault(match.group(1), path)
    return out


def name_of(path: Path | None) -> str:
    """A migration file's name without its version and `.sql`."""
    match = _FILE.match(path.name) if path else None
    return match.group(2) if match else ""


def first_line(text: str) -> str:
    """The first non-blank line of `text`."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


def cli_failure(ctx: StepContext, what: str, exc: SupabaseCliError) -> StepResult:
    """A failed result for a Supabase CLI error, its output redacted."""
    details = "```\n" + ctx.redact(str(exc)).replace("```", "'''") + "\n```"
    return StepResult.fail(f"{what}: {ctx.redact(first_line(exc.message))}",
                           details=cut(details), output_tail=ctx.redact(exc.stderr[-2000:]))


async def checkout(ctx: StepContext) -> tuple[Path | None, StepResult | None]:
    """The release ref checked out in APP_WORKSPACE, without `npm ci`: reading SQL files and
    running the Supabase CLI (from SUPABASE_CLI or .tools/) need no node_modules."""
    try:
        await prepare_workspace(ctx, install=False)
    except WorkspaceError as exc:
        return None, StepResult.fail(f"Could not check out {ctx.release.ref}: {ctx.redact(str(exc))}")
    return Path(ctx.settings.APP_WORKSPACE or ""), None


def skipped_by_person(release_data: dict[str, Any]) -> tuple[set[str], str]:
    """Versions a person chose to skip at this release's review, and a line saying who and why."""
    review = release_data.get("steps", {}).get("migrations_review")
    if not isinstance(review, dict) or review.get("decision") != "skip" or not review.get("decided_by"):
        return set(), ""
    versions = {str(v) for v in review.get("skipped") or review.get("pending") or []}
    why = f": {escape(str(review['skip_reason']))}" if review.get("skip_reason") else ""
    return versions, f"skipped at the review by <@{review['decided_by']}>{why}"
