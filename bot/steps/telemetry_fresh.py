"""The `telemetry_fresh` step (guide 1, "Verify telemetry pipelines"): PostHog events are fresh.

It checks the newest timestamp of each TELEMETRY_EVENTS event against
TELEMETRY_MAX_AGE_MINUTES.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.chat.blocks import table
from bot.providers import posthog
from bot.providers.http import ProviderError
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.posthog_events import events_link, posthog_client, utc_time

LOOKBACK_DAYS = 30


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


async def telemetry_fresh(ctx: StepContext) -> StepResult:
    """Each TELEMETRY_EVENTS event was last seen less than TELEMETRY_MAX_AGE_MINUTES ago."""
    settings = ctx.settings
    events = list(settings.TELEMETRY_EVENTS)
    max_age = timedelta(minutes=settings.TELEMETRY_MAX_AGE_MINUTES)
    try:
        async with posthog_client(settings) as client:
            seen = await posthog.last_seen(
                client, str(settings.POSTHOG_PROJECT_ID), events, LOOKBACK_DAYS
            )
    except ValueError as exc:
        return StepResult.fail(f"TELEMETRY_EVENTS is not usable: {exc}.")
    except ProviderError as exc:
        return StepResult.fail(f"Could not read event freshness from PostHog: {exc}.")
    now = datetime.now(UTC)
    rows: list[list[str]] = []
    missing: list[str] = []
    stale: list[str] = []
    for name in events:
        last = seen.get(name)
        if last is None:
            missing.append(name)
            rows.append([name, "never", f">{LOOKBACK_DAYS}d", "missing"])
            continue
        age = now - last
        verdict = "fresh" if age <= max_age else "stale"
        if verdict == "stale":
            stale.append(name)
        rows.append([name, utc_time(last), _age(age.total_seconds()), verdict])
    data = {"events": {name: (t.isoformat() if t else None) for name, t in seen.items()}}
    details = table(["event", "last seen", "age", "verdict"], rows)
    links = [events_link(settings)]
    limit = f"{settings.TELEMETRY_MAX_AGE_MINUTES:g} min"
    if missing or stale:
        parts = []
        if missing:
            parts.append(f"not seen in {LOOKBACK_DAYS} days: {', '.join(missing)}")
        if stale:
            parts.append(f"older than {limit}: {', '.join(stale)}")
        return StepResult.fail(
            "Telemetry is not fresh — " + "; ".join(parts) + ".",
            details=details, links=links, data=data,
        )
    return StepResult.ok(
        f"All {len(events)} telemetry events seen within {limit}.",
        details=details, links=links, data=data,
    )


STEP = StepDef(
    name="telemetry_fresh",
    title="Telemetry is fresh",
    describe="PostHog has recent TELEMETRY_EVENTS (newest within TELEMETRY_MAX_AGE_MINUTES).",
    requires=("POSTHOG_PROJECT_ID", "POSTHOG_PERSONAL_API_KEY"),
    run=telemetry_fresh,
)
