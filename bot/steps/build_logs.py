"""The `build_logs` step (guide section 2): read the deployment's build log.

It looks for the PostgREST/GoTrue connection lines and for error lines, and asks the Supabase
Management API for auth/rest/db health when it can (healthy auth and rest make missing connection
lines a warning).
"""

from __future__ import annotations

import re
from typing import Any

from bot.chat.blocks import table
from bot.providers import supabase_api, vercel
from bot.providers.http import ProviderError
from bot.runbook.model import Link, StepResult
from bot.runbook.step import StepContext, StepDef
from bot.wording import plural

MAX_SHOWN_LINES = 15
LINE_WIDTH = 200


def _code(lines: list[str]) -> str:
    shown = [line[:LINE_WIDTH].replace("```", "'''") for line in lines[:MAX_SHOWN_LINES]]
    more = len(lines) - len(shown)
    if more > 0:
        shown.append(f"... and {more} more")
    return "```\n" + "\n".join(shown) + "\n```"


async def run_build_logs(ctx: StepContext) -> StepResult:
    """Every BUILD_LOG_SUCCESS_PATTERNS regex matches a line; no line is an error.

    An error line matches BUILD_LOG_ERROR_PATTERNS or is one Vercel marks as an error (a `fatal`
    event, level `error`). Many builds print no PostgREST/GoTrue lines at all (nothing connects to
    Supabase while building): when Supabase's own health says auth and rest are healthy, missing
    connection lines are a warning, not a failure.
    """
    settings = ctx.settings
    deployed = ctx.release.data.get("steps", {}).get("deploy") or {}
    dep_id = deployed.get("deployment_id")
    if not dep_id:
        return StepResult.fail("No deployment recorded by the deploy step.")
    try:
        success = [re.compile(p) for p in settings.BUILD_LOG_SUCCESS_PATTERNS]
        errors = [re.compile(p) for p in settings.BUILD_LOG_ERROR_PATTERNS]
    except re.error as exc:
        return StepResult.fail(f"A build log pattern is not a valid regex: {exc}")
    async with vercel.vercel_client(settings) as client:
        try:
            log = await vercel.build_log(client, str(dep_id))
        except ProviderError as exc:
            return StepResult.fail(f"Could not read the build log of {dep_id}: {exc}")
    lines = [ctx.redact(line.text) for line in log]
    matched: list[str] = []
    missing: list[str] = []
    for pattern in success:
        hit = next((line for line in lines if pattern.search(line)), None)
        if hit is None:
            missing.append(pattern.pattern)
        elif hit not in matched:
            matched.append(hit)
    offending = [text for text, line in zip(lines, log, strict=True)
                 if line.is_error or any(p.search(text) for p in errors)]
    problems: list[str] = []
    warnings: list[str] = []
    details: list[str] = []
    if matched:
        details.append("*Connection lines:*\n" + _code(matched))
    if missing:
        details.append("*No line matched:*\n" + "\n".join(f"• `{p}`" for p in missing))
    if offending:
        problems.append(f"{len(offending)} error line(s)")
        details.append("*Error lines:*\n" + _code(offending))
    data: dict[str, Any] = {
        "deployment_id": dep_id, "lines": len(lines), "matched": matched,
        "missing_patterns": missing, "error_lines": offending[:MAX_SHOWN_LINES],
    }
    ref = settings.SUPABASE_PROJECT_REF
    healthy: set[str] = set()
    if settings.secret("SUPABASE_ACCESS_TOKEN") and ref:
        try:
            async with supabase_api.supabase_client(settings) as sb:
                health = await supabase_api.project_health(sb, ref, ("auth", "rest", "db"))
        except ProviderError as exc:
            problems.append("Supabase health unavailable")
            details.append(f"Supabase health check failed: {exc}")
        else:
            rows = [[h.name, "yes" if h.healthy else "no", h.status] for h in health]
            details.append("*Supabase services:*\n" + table(["service", "healthy", "status"], rows))
            data["supabase_health"] = {h.name: h.status for h in health}
            healthy = {h.name for h in health if h.healthy}
            for h in health:
                if not h.healthy:
                    why = f" ({h.error})" if h.error else ""
                    (problems if h.name in ("auth", "rest") else warnings).append(
                        f"Supabase {h.name} is {h.status}{why}"
                    )
    elif missing:
        details.append("Set SUPABASE_ACCESS_TOKEN and SUPABASE_PROJECT_REF and the Supabase auth/rest "
                       "health can stand in for connection lines the build does not print.")
    if missing:
        if {"auth", "rest"} <= healthy and not problems:
            warnings.insert(0, f"no line matched {len(missing)} expected pattern(s); "
                            "Supabase auth and rest answer healthy")
        else:
            problems.insert(0, f"{len(missing)} expected line(s) missing")
    tail = "\n".join(lines[-20:])
    links = [Link(label="Vercel inspector", url=deployed["inspector_url"])] if deployed.get(
        "inspector_url") else []
    body = "\n\n".join(details)
    if problems:
        return StepResult.fail(
            "Build log check failed: " + "; ".join(problems + warnings),
            details=body, links=links, output_tail=tail, data=data,
        )
    if warnings:
        return StepResult.warn(
            "Build log has no error lines, but " + "; ".join(warnings), details=body, links=links,
            data=data,
        )
    return StepResult.ok(
        f"Build log has all {plural(len(success), 'expected line')} and no error lines "
        f"({plural(len(lines), 'line')})",
        details=body, links=links, data=data,
    )


STEP = StepDef(
    name="build_logs",
    title="Check build logs (PostgREST/GoTrue)",
    requires=("VERCEL_TOKEN", "VERCEL_PROJECT_ID"),
    describe="Read the deployment's build log for PostgREST/GoTrue connection lines and errors; "
             "check Supabase auth/rest/db health when SUPABASE_ACCESS_TOKEN and SUPABASE_PROJECT_REF are set "
             "(healthy auth and rest stand in for connection lines a build does not print).",
    run=run_build_logs,
)
