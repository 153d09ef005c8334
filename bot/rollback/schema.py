"""The schema revert: `supabase migration down --last N` for the migrations the release applied,
or the team's own SCHEMA_ROLLBACK_COMMAND."""

from __future__ import annotations

import shlex
from typing import Any

from bot.config import Settings
from bot.providers.shell import child_env, run_command
from bot.providers.supabase_cli import SupabaseCli, SupabaseCliError
from bot.providers.tools import resolve_tool
from bot.redact import Redactor
from bot.rollback.model import SCHEMA, ActionResult, Plan, short
from bot.runbook.model import Outcome, Release


async def revert_schema(plan: Plan, settings: Settings, redact: Redactor) -> ActionResult:
    """Revert the migrations the plan lists."""
    versions = plan.migrations
    if not versions:
        return ActionResult(SCHEMA, Outcome.SKIPPED,
                            "Nothing to revert: the release log shows no migrations applied "
                            "by this release.")
    if settings.SCHEMA_ROLLBACK_COMMAND:
        return await team_schema_command(plan.release, versions, settings, redact)
    if not settings.APP_WORKSPACE:
        return ActionResult(SCHEMA, Outcome.SKIPPED, "Not reverted: APP_WORKSPACE is not set "
                            "(the CLI needs the app's supabase/migrations).")
    db_url = settings.secret("SUPABASE_DB_URL") or None
    ref = settings.SUPABASE_PROJECT_REF
    if not db_url and not ref:
        return ActionResult(SCHEMA, Outcome.SKIPPED,
                            "Not reverted: SUPABASE_DB_URL or SUPABASE_PROJECT_REF is not set.")
    return await _migration_down(versions, settings, db_url, None if db_url else ref)


async def _migration_down(versions: list[str], settings: Settings, db_url: str | None,
                          ref: str | None) -> ActionResult:
    """`supabase migration down --last N`, checked against what the release applied."""
    cli = SupabaseCli(binary=resolve_tool("supabase", settings),
                      access_token=settings.SUPABASE_ACCESS_TOKEN,
                      db_password=settings.SUPABASE_DB_PASSWORD,
                      timeout=settings.COMMAND_TIMEOUT_SECONDS)
    command = f"`supabase migration down --last {len(versions)}`"
    try:
        result = await cli.down(str(settings.APP_WORKSPACE), len(versions), db_url, ref)
    except SupabaseCliError as exc:
        return ActionResult(SCHEMA, Outcome.FAIL, f"{command} failed: {short(exc.message)}",
                            details=f"```\n{exc.stderr[-1500:]}\n```" if exc.stderr else "",
                            data={"expected": versions})
    reverted = result.reverted
    data = {"reverted": reverted, "expected": versions, "head": result.version}
    listed = ", ".join(reverted) or "none"
    if sorted(reverted) != sorted(versions):
        return ActionResult(SCHEMA, Outcome.WARN, f"{command} reverted {listed}, "
                            f"but the release applied {', '.join(versions)}.", data=data)
    head = f"; the schema is now at {result.version}" if result.version else ""
    return ActionResult(SCHEMA, Outcome.OK, f"Reverted migrations {listed}{head}.", data=data)


def team_command_args(raw: str, release: Release, versions: list[str]) -> list[str]:
    """SCHEMA_ROLLBACK_COMMAND's words with `{last}`, `{versions}` and `{release_id}` filled in."""
    values = {"{last}": str(len(versions)), "{versions}": ",".join(versions),
              "{release_id}": str(release.id)}
    args = []
    for word in shlex.split(raw):
        for key, value in values.items():
            word = word.replace(key, value)
        args.append(word)
    return args


async def team_schema_command(release: Release, versions: list[str], settings: Settings,
                              redact: Redactor) -> ActionResult:
    """Run SCHEMA_ROLLBACK_COMMAND in the app workspace, with the versions in its environment."""
    raw = str(settings.SCHEMA_ROLLBACK_COMMAND)
    extra = {"ROLLBACK_MIGRATIONS": " ".join(versions), "ROLLBACK_LAST": str(len(versions)),
             "RELEASE_ID": str(release.id)}
    if settings.SUPABASE_DB_URL is not None:
        extra["SUPABASE_DB_URL"] = settings.secret("SUPABASE_DB_URL")
    try:
        result = await run_command(team_command_args(raw, release, versions),
                                   cwd=settings.APP_WORKSPACE or None, env=child_env(extra),
                                   timeout=settings.COMMAND_TIMEOUT_SECONDS, redact=redact)
    except OSError as exc:
        return ActionResult(SCHEMA, Outcome.FAIL,
                            f"SCHEMA_ROLLBACK_COMMAND could not start: {exc.strerror or exc}.")
    data: dict[str, Any] = {"command": raw, "expected": versions, "returncode": result.returncode}
    tail = f"```\n{result.tail()}\n```" if result.tail() else ""
    if result.timed_out:
        return ActionResult(SCHEMA, Outcome.FAIL, f"`{raw}` timed out after "
                            f"{settings.COMMAND_TIMEOUT_SECONDS:g}s.", details=tail, data=data)
    if not result.ok:
        return ActionResult(SCHEMA, Outcome.FAIL,
                            f"`{raw}` exited with {result.returncode}.", details=tail, data=data)
    data["reverted"] = versions
    return ActionResult(SCHEMA, Outcome.OK,
                        f"`{raw}` reverted migrations {', '.join(versions)}.", details=tail,
                        data=data)
