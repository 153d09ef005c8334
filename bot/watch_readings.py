"""What one look at staging finds during a post-deploy watch, and whether it is a regression.

`read_health` reads `/api/health` (through the runbook's health step) and Supabase's service
health; `count_failures` counts `i_request_failed` in PostHog; `evaluate` compares a reading with
the baseline (pure). The watch itself (rows, schedule, messages) is `bot.watch`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import Settings
from bot.providers import posthog, supabase_api
from bot.providers.http import ProviderError, make_client
from bot.redact import Redactor
from bot.runbook.model import Decision, Gate, Release, StepResult
from bot.runbook.step import StepContext, StepDef

FAILURE_EVENT = "i_request_failed"
WINDOW = timedelta(minutes=5)
BASELINE_WINDOW = timedelta(hours=1)


@dataclass
class Reading:
    """What one look at staging found. `None` means not measured (not configured or failed)."""

    health_ok: bool | None = None
    health_summary: str = ""
    providers: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    failures: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    """A check's conclusion: whether health was not ok, the reasons, and a rate regression."""

    unhealthy: bool
    reasons: list[str]
    rate_regression: str | None = None


def evaluate(baseline: Reading, now: Reading, baseline_rate: float | None, settings: Settings,
             ) -> Verdict:
    """Compare one reading with the baseline (pure)."""
    reasons: list[str] = []
    if now.health_ok is False:
        reasons.append(f"/api/health: {now.health_summary}")
    for name, status in now.providers.items():
        if status != "ok" and baseline.providers.get(name, "ok") == "ok":
            reasons.append(f"AI provider {name} is {status} (was ok)")
    for name, status in now.services.items():
        if status != supabase_api.HEALTHY and baseline.services.get(name, supabase_api.HEALTHY) \
                == supabase_api.HEALTHY:
            reasons.append(f"Supabase {name} is {status} (was {supabase_api.HEALTHY})")
    rate = None
    if now.failures is not None and baseline_rate is not None:
        limit = settings.WATCH_FAILURE_RATIO * baseline_rate
        if now.failures >= settings.WATCH_MIN_FAILURES and now.failures > limit:
            rate = (f"{now.failures} `{FAILURE_EVENT}` in the last 5 min, above "
                    f"{settings.WATCH_FAILURE_RATIO:g} × the hour before the release "
                    f"({baseline_rate:.1f} per 5 min)")
    return Verdict(unhealthy=bool(reasons), reasons=reasons, rate_regression=rate)


async def read_health(settings: Settings, redactor: Redactor, release: Release,
                      steps: dict[str, StepDef]) -> Reading:
    """`/api/health` through the catalog's health step, and Supabase's service health."""
    reading = Reading()
    if settings.STAGING_URL:
        result = await _run_step(steps["health"], settings, redactor, release)
        reading.health_ok = result.outcome.value != "fail"
        reading.health_summary = result.summary
        for warning in result.data.get("warnings") or []:
            name, _, status = str(warning).partition(" is ")
            if status and not name.startswith("analytics"):
                reading.providers[name] = status
    else:
        reading.notes.append("STAGING_URL is not set: /api/health not read")
    if settings.SUPABASE_PROJECT_REF and settings.SUPABASE_ACCESS_TOKEN:
        try:
            async with supabase_api.supabase_client(settings) as client:
                for service in await supabase_api.project_health(client, settings.SUPABASE_PROJECT_REF):
                    reading.services[service.name] = service.status
        except ProviderError as exc:
            reading.notes.append(redactor(str(exc)))
    return reading


async def _run_step(sdef: StepDef, settings: Settings, redactor: Redactor, release: Release) -> StepResult:
    async def progress(text: str) -> None:
        return None

    async def ask(gate: Gate) -> Decision:
        raise RuntimeError("the watch's health check asked a question")

    ctx = StepContext(settings=settings, release=release, step_name=sdef.name, options={},
                      redact=redactor, progress=progress, ask=ask)
    try:
        async with asyncio.timeout(sdef.timeout or 120):
            result = await sdef.run(ctx)
    except TimeoutError:
        result = StepResult.fail(f"timed out after {sdef.timeout or 120:g}s")
    except Exception as exc:
        result = StepResult.fail(f"could not be read ({type(exc).__name__})")
    return StepResult.model_validate(redactor.data(result.model_dump()))


def _staging_condition(settings: Settings) -> str:
    prefix = settings.STAGING_TELEMETRY_DISTINCT_ID_PREFIX
    if prefix:
        return f" AND distinct_id LIKE {posthog.like_prefix(prefix)}"
    name, sep, value = settings.STAGING_TELEMETRY_PROPERTY.partition("=")
    if not sep or not name.strip():
        return ""
    return f" AND properties.{posthog.check_property_name(name.strip())} = {posthog.quote(value.strip())}"


async def count_failures(settings: Settings, start: datetime, end: datetime | None = None) -> int:
    """`i_request_failed` on staging in [start, end) (HogQL times are whole seconds), or since
    `start` when `end` is None."""
    until = f" AND timestamp < {posthog.hogql_time(end)}" if end is not None else ""
    query = (f"SELECT count() AS n FROM events WHERE event = {posthog.quote(FAILURE_EVENT)}"  # noqa: S608
             f" AND timestamp >= {posthog.hogql_time(start)}{until}{_staging_condition(settings)}")
    async with make_client(settings.POSTHOG_HOST, token=settings.secret("POSTHOG_PERSONAL_API_KEY"),
                           timeout=settings.HTTP_TIMEOUT_SECONDS) as client:
        _, rows = await posthog.hogql(client, str(settings.POSTHOG_PROJECT_ID), query)
    try:
        return int(rows[0][0]) if rows and rows[0] else 0
    except (TypeError, ValueError) as exc:
        raise ProviderError(posthog.PROVIDER, "answered a count that is not a number") from exc


def posthog_ready(settings: Settings) -> bool:
    """Whether PostHog can be asked (a project id and a personal API key)."""
    return bool(settings.POSTHOG_PROJECT_ID and settings.POSTHOG_PERSONAL_API_KEY)
