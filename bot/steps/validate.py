"""The guide's section 3 beyond smoke and health, and the release log's monitoring links.

- `playwright`: `npx playwright test <PLAYWRIGHT_SPECS> --reporter=json` in APP_WORKSPACE against
  STAGING_URL, with Debian's Chromium; passed and failed tests, and the failures' error lines.
- `redis`: "Redis metrics show the expected connection count" — `INFO` of STAGING_REDIS_URL.
- `schema_current`: "Supabase reflects the latest schema" — every migration file of the release
  is in staging's migration history (Supabase CLI with SUPABASE_DB_URL, else the Management API).
- `monitoring_links`: the "Post-Deploy Monitoring Links" field from MONITORING_LINKS templates.
"""

from __future__ import annotations

import re
import string
import tempfile
from pathlib import Path
from typing import Any

from bot.chat.blocks import table
from bot.providers import redis_info
from bot.providers.http import ProviderError
from bot.providers.playwright import PlaywrightReport, parse_output, parse_report
from bot.providers.shell import CommandResult, child_env, elapsed_progress, run_command
from bot.providers.supabase_api import list_applied_migrations, supabase_client
from bot.providers.supabase_cli import SupabaseCli, SupabaseCliError
from bot.providers.tools import resolve_tool
from bot.providers.workspace_files import LeftoverGuard, leave_as_found
from bot.runbook.model import Link, StepResult
from bot.runbook.registry import StepContext, step
from bot.steps.checks import with_leftovers
from bot.wording import plural

# --- playwright --------------------------------------------------------------------------------


def _playwright_details(report: PlaywrightReport) -> str:
    lines: list[str] = []
    if report.passed:
        lines.append("*Passed*")
        lines += [f"• {t.title}" + (" (flaky)" if t.status == "flaky" else "") for t in report.passed]
    if report.failed:
        lines.append("*Failed*")
        for test in report.failed:
            lines.append(f"• {test.title}")
            if test.errors:
                lines.append("```\n" + "\n".join(test.errors) + "\n```")
    skipped = [t for t in report.tests if t.status == "skipped"]
    if skipped:
        lines.append("*Skipped*")
        lines += [f"• {t.title}" for t in skipped]
    if report.errors:
        lines.append("*Errors outside the tests*")
        lines.append("```\n" + "\n".join(report.errors) + "\n```")
    return "\n".join(lines)


@step(
    "playwright",
    title="Playwright against staging",
    phase="validate",
    requires=("APP_WORKSPACE", "STAGING_URL"),
    tools=("npx",),
    timeout=None,
    describe="npx playwright test PLAYWRIGHT_SPECS --reporter=json in APP_WORKSPACE with "
    "PLAYWRIGHT_BASE_URL=STAGING_URL and Debian's Chromium; lists passed and failed tests.",
)
async def playwright(ctx: StepContext) -> StepResult:
    """Run the PWA spec (and any other configured specs) against staging."""
    settings = ctx.settings
    assert settings.APP_WORKSPACE and settings.STAGING_URL
    npx = resolve_tool("npx", settings) or "npx"
    specs = [str(s) for s in ctx.option("specs", settings.PLAYWRIGHT_SPECS)]
    extra = {"PLAYWRIGHT_BASE_URL": settings.STAGING_URL}
    chromium = settings.PLAYWRIGHT_CHROMIUM_PATH or resolve_tool("chromium", settings)
    if chromium:
        extra["PLAYWRIGHT_CHROMIUM_PATH"] = chromium
    # With CI set, the app's webServer block refuses to reuse a running server.
    env = child_env(extra, drop=("CI",))
    timeout = settings.COMMAND_TIMEOUT_SECONDS
    label = f"Running Playwright ({', '.join(specs) or 'all specs'}) against {settings.STAGING_URL}"
    try:
        result, leftovers = await _run_playwright(ctx, [npx, "playwright", "test", *specs], env,
                                                  label)
    except OSError as exc:
        return StepResult.fail(f"Could not start Playwright in {settings.APP_WORKSPACE}: "
                               f"{exc.strerror or exc}")
    return with_leftovers(_playwright_result(result, specs, timeout), leftovers)


async def _run_playwright(ctx: StepContext, args: list[str], env: dict[str, str], label: str
                          ) -> tuple[CommandResult, LeftoverGuard]:
    """Run Playwright with its output (`test-results/`, reports) in a temporary directory.

    The app's config writes `test-results/` into the checkout by default, which the next
    release would find as local changes; `--output` and the report directories point elsewhere,
    and whatever still lands in the checkout is tidied by `leave_as_found`.
    """
    settings = ctx.settings
    assert settings.APP_WORKSPACE
    with tempfile.TemporaryDirectory(prefix="release-bot-playwright-") as scratch:
        env = {**env, "PLAYWRIGHT_HTML_OUTPUT_DIR": f"{scratch}/html-report",
               "PLAYWRIGHT_HTML_REPORT": f"{scratch}/html-report",
               "PLAYWRIGHT_BLOB_OUTPUT_DIR": f"{scratch}/blob-report"}
        full = [*args, "--reporter=json", f"--output={scratch}/test-results"]
        async with leave_as_found(settings.APP_WORKSPACE) as leftovers, \
                elapsed_progress(ctx.progress, label):
            result = await run_command(full, cwd=settings.APP_WORKSPACE, env=env,
                                       timeout=settings.COMMAND_TIMEOUT_SECONDS, redact=ctx.redact)
    return result, leftovers


def _playwright_result(result: CommandResult, specs: list[str], timeout: float) -> StepResult:
    """The step's verdict from Playwright's exit and JSON report."""
    if result.timed_out:
        return StepResult.fail(f"Playwright did not finish within {timeout:g}s",
                               output_tail=result.tail(30))
    raw = parse_output(result.stdout)
    if raw is None:
        return StepResult.fail(f"Playwright exited {result.returncode} without a JSON report "
                               "(configuration or install problem; see the output)",
                               output_tail=result.tail(30))
    report = parse_report(raw)
    details = _playwright_details(report)
    data: dict[str, Any] = {
        "expected": report.expected,
        "unexpected": report.unexpected,
        "skipped": report.skipped,
        "flaky": report.flaky,
        "passed": [t.title for t in report.passed],
        "failed": [t.title for t in report.failed],
        "specs": specs,
    }
    ran = report.expected + report.unexpected + report.flaky
    counts = f"{report.expected} passed, {report.unexpected} failed"
    if report.flaky:
        counts += f", {report.flaky} flaky"
    if report.skipped:
        counts += f", {report.skipped} skipped"
    if report.unexpected:
        first = report.failed[0] if report.failed else None
        reason = f": {first.title} — {first.errors[0]}" if first and first.errors else ""
        return StepResult.fail(f"Playwright: {report.unexpected} of {plural(ran, 'test')} failed{reason}",
                               details=details, data=data, output_tail=result.tail(20))
    if report.errors:
        return StepResult.fail(f"Playwright reported an error outside the tests: {report.errors[0]}",
                               details=details, data=data, output_tail=result.tail(20))
    if ran == 0:
        return StepResult.fail(f"No Playwright tests ran for {', '.join(specs) or 'the suite'} "
                               f"({counts})", details=details, data=data,
                               output_tail=result.tail(20))
    if not result.ok:
        return StepResult.fail(f"Playwright exited {result.returncode} although {counts}",
                               details=details, data=data, output_tail=result.tail(20))
    manual = f"Playwright {', '.join(specs)}: {counts}"
    if report.flaky:
        return StepResult.warn(f"Playwright: {counts} (flaky tests passed only on retry)",
                               details=details, data=data, fields={"Manual Tests": manual})
    return StepResult.ok(f"Playwright: {counts}", details=details, data=data,
                         fields={"Manual Tests": manual})


# --- redis -------------------------------------------------------------------------------------


def _duration(seconds: int) -> str:
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


@step(
    "redis",
    title="Redis connection count",
    phase="validate",
    requires=("STAGING_REDIS_URL",),
    timeout=120,
    describe="INFO on STAGING_REDIS_URL: connected clients between STAGING_REDIS_MIN_CLIENTS and "
    "STAGING_REDIS_MAX_CLIENTS; memory, uptime and version.",
)
async def redis(ctx: StepContext) -> StepResult:
    """Check staging Redis has the expected number of connected clients."""
    settings = ctx.settings
    url = settings.secret("STAGING_REDIS_URL")
    low, high = settings.STAGING_REDIS_MIN_CLIENTS, settings.STAGING_REDIS_MAX_CLIENTS
    place = redis_info.where(url)
    try:
        stats = await redis_info.redis_stats(url, settings.HTTP_TIMEOUT_SECONDS)
    except ProviderError as exc:
        return StepResult.fail(f"Staging Redis is unreachable: {ctx.redact(str(exc))}")
    details = table(["clients", "memory", "uptime", "version"],
                    [[str(stats.connected_clients), stats.used_memory_human,
                      _duration(stats.uptime_in_seconds), stats.redis_version]])
    data = {
        "connected_clients": stats.connected_clients,
        "used_memory_human": stats.used_memory_human,
        "uptime_in_seconds": stats.uptime_in_seconds,
        "redis_version": stats.redis_version,
        "min_clients": low,
        "max_clients": high,
    }
    if not low <= stats.connected_clients <= high:
        return StepResult.fail(f"Redis {place}: {stats.connected_clients} connected clients, "
                               f"expected between {low} and {high}", details=details, data=data)
    return StepResult.ok(f"Redis {place}: {stats.connected_clients} connected clients "
                         f"(expected {low}–{high}), {stats.used_memory_human} used",
                         details=details, data=data)


# --- monitoring links --------------------------------------------------------------------------


def _placeholders(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError:
        return ["(malformed braces)"]


def _link_values(ctx: StepContext) -> dict[str, str]:
    settings = ctx.settings
    deploy = (ctx.release.data.get("steps") or {}).get("deploy") or {}
    url = str(deploy.get("url") or "")
    if url and not re.match(r"^https?://", url):
        url = f"https://{url}"
    values = {
        "inspector_url": str(deploy.get("inspector_url") or ""),
        "deployment_url": url,
        "posthog_host": settings.POSTHOG_HOST or "",
        "posthog_project_id": settings.POSTHOG_PROJECT_ID or "",
        "staging_url": settings.STAGING_URL or "",
        "release_id": str(ctx.release.id) if ctx.release.id is not None else "",
        "sha": ctx.release.git_sha or str(deploy.get("sha") or ""),
    }
    return {name: value for name, value in values.items() if value}


@step(
    "monitoring_links",
    title="Post-deploy monitoring links",
    phase="report",
    timeout=30,
    describe="Fill 'Post-Deploy Monitoring Links' from MONITORING_LINKS templates with the "
    "deployment, PostHog and staging URLs.",
)
async def monitoring_links(ctx: StepContext) -> StepResult:
    """Build the release log's monitoring links from the templates."""
    templates = [str(t) for t in ctx.option("links", ctx.settings.MONITORING_LINKS)]
    values = _link_values(ctx)
    links: list[Link] = []
    notes: list[str] = []
    for number, entry in enumerate(templates, start=1):
        label, sep, template = entry.partition("|")
        if not sep:
            label, template = f"Link {number}", entry
        label, template = label.strip(), template.strip()
        missing = [name for name in _placeholders(template) if name not in values]
        if missing:
            notes.append(f"{label}: left out, no value for "
                         + ", ".join("{" + name + "}" for name in missing))
            continue
        links.append(Link(label=label, url=template.format(**values)))
    lines = [f"{link.label}: {link.url}" for link in links]
    details = "\n".join([*(f"• <{link.url}|{link.label}>" for link in links),
                         *(f"_{note}_" for note in notes)])
    data = {"links": [link.model_dump() for link in links], "left_out": notes}
    if not links:
        why = "; ".join(notes) if notes else "MONITORING_LINKS is empty"
        return StepResult.warn(f"No monitoring links could be built ({why})", details=details,
                               data=data)
    summary = f"{len(links)} monitoring link{'s' if len(links) != 1 else ''}"
    if notes:
        summary += f" ({len(notes)} left out)"
    return StepResult.ok(summary, details=details, links=links, data=data,
                         fields={"Post-Deploy Monitoring Links": "\n".join(lines)})


# --- schema ----------------------------------------------------------------------------------


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


@step(
    "schema_current",
    title="Staging schema is current",
    phase="validate",
    requires=("APP_WORKSPACE",),
    requires_any=(("SUPABASE_DB_URL",), ("SUPABASE_PROJECT_REF", "SUPABASE_ACCESS_TOKEN")),
    timeout=300,
    describe="Every supabase/migrations/*.sql of the release is in staging's migration history "
    "(Supabase CLI `migration list` with SUPABASE_DB_URL, else the Management API).",
)
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
        return StepResult.fail(
            f"{len(missing)} of {plural(len(local), 'migration')} not applied on staging: "
            + _names(missing, local),
            details=details, data=data)
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
