"""The `health` step: the guide's "Inspect health endpoints", `/api/health` on STAGING_URL and
its dependency verdicts as a table.
"""

from __future__ import annotations

from typing import Any

from bot.chat.blocks import table
from bot.providers.http import ProviderError, json_body, send
from bot.runbook.model import Link, StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.staging_http import staging_client


def _health_rows(payload: dict[str, Any]) -> tuple[list[list[str]], list[str], list[str]]:
    """Table rows, failures and warnings from the health payload's `dependencies`."""
    rows: list[list[str]] = []
    failures: list[str] = []
    warnings: list[str] = []
    deps = payload.get("dependencies") or {}
    supabase = deps.get("supabase") or {}
    sb_status = str(supabase.get("status", "missing"))
    rows.append(["supabase", sb_status, _ms(supabase.get("latencyMs")),
                 str(supabase.get("message") or "")])
    if sb_status != "ok":
        failures.append(f"Supabase is {sb_status}" + (f" ({supabase['message']})"
                                                      if supabase.get("message") else ""))
    analytics = deps.get("analytics") or {}
    if analytics:
        a_status = str(analytics.get("status", "missing"))
        rows.append(["analytics", a_status, _ms(analytics.get("latencyMs")),
                     str(analytics.get("message") or "")])
        if a_status not in ("ok", "configured"):
            warnings.append(f"analytics is {a_status}")
    providers = deps.get("aiProviders") or {}
    configuration = providers.get("configuration") or {}
    stats = providers.get("stats") or {}
    for name in sorted(set(configuration) | set(stats)):
        configured = str(configuration.get(name, "—"))
        stat = stats.get(name) or {}
        p_status = str(stat.get("status", configured))
        rows.append([f"ai:{name}", f"{p_status} ({configured})" if stat else configured,
                     _ms(stat.get("latencyMs")), str(stat.get("message") or stat.get("error") or "")])
        if configured != "configured":
            warnings.append(f"{name} is {configured}")
        elif stat and p_status not in ("ok", "healthy", "up"):
            warnings.append(f"{name} is {p_status}")
    return rows, failures, warnings


def _ms(value: Any) -> str:
    return f"{value} ms" if isinstance(value, (int, float)) else "—"


async def health(ctx: StepContext) -> StepResult:
    """Read `/api/health`: fail unless Supabase and the status are ok; warn on providers."""
    url = f"{ctx.settings.STAGING_URL}/api/health"
    links = [Link(label="/api/health", url=url)]
    async with staging_client(ctx) as client:
        try:
            response = await send(client, "GET", "/api/health", provider="staging health",
                                  ok_statuses=(503,))
            body = json_body(response, "staging health")
        except ProviderError as exc:
            return StepResult.fail(str(exc), links=links)
    if not isinstance(body, dict):
        return StepResult.fail(f"/api/health answered {response.status_code} with an unexpected body",
                               links=links, output_tail=response.text[:500])
    payload = body.get("data") if body.get("success") else body.get("details")
    if not isinstance(payload, dict):
        error = body.get("error") or "no health payload"
        return StepResult.fail(f"/api/health answered {response.status_code}: {error}", links=links)
    rows, failures, warnings = _health_rows(payload)
    status = str(payload.get("status", "missing"))
    details = table(["dependency", "status", "latency", "message"], rows)
    details += f"\nOverall status: *{status}* (HTTP {response.status_code})"
    data = {"status": status, "http_status": response.status_code, "failures": failures,
            "warnings": warnings}
    if response.status_code == 503 or not body.get("success"):
        failures.insert(0, f"HTTP {response.status_code}: {body.get('error') or 'unhealthy'}")
    if status != "ok" and not failures:
        failures.append(f"status is {status}")
    if failures:
        return StepResult.fail("; ".join(failures), details=details, links=links, data=data)
    fields = {"Automated Checks": "Health: /api/health ok"}
    if warnings:
        return StepResult.warn("Healthy, but " + "; ".join(warnings), details=details, links=links,
                               data=data, fields=fields)
    return StepResult.ok(f"Healthy: Supabase ok, {len(rows) - 1} other checks ok", details=details,
                         links=links, data=data, fields=fields)


STEP = StepDef(
    name="health",
    title="Health endpoint (/api/health)",
    requires=("STAGING_URL",),
    timeout=120,
    describe="GET STAGING_URL/api/health: Supabase ok, status ok; providers reported.",
    run=health,
)
