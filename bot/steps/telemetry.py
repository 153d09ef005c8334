"""Telemetry steps: PostHog events are fresh before a release, and staging sends them after.

`telemetry_fresh` (guide 1, "Verify telemetry pipelines") checks the newest timestamp of each
TELEMETRY_EVENTS event against TELEMETRY_MAX_AGE_MINUTES. `telemetry_staging` (guide 3.4,
"Observe telemetry") polls PostHog until staging's first `i_chat_completed` since the deployment
went live arrives, or STAGING_TELEMETRY_WAIT_SECONDS pass.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx

from bot.chat.blocks import table
from bot.config import Settings
from bot.providers import posthog
from bot.providers.http import ProviderError, make_client
from bot.runbook.model import Link, Release, StepResult
from bot.runbook.registry import StepContext, step

STAGING_EVENT = "i_chat_completed"
LOOKBACK_DAYS = 30


def _client(settings: Settings) -> httpx.AsyncClient:
    return make_client(
        settings.POSTHOG_HOST,
        token=settings.secret("POSTHOG_PERSONAL_API_KEY"),
        timeout=settings.HTTP_TIMEOUT_SECONDS,
    )


def _events_link(settings: Settings) -> Link:
    return Link(
        label="PostHog events",
        url=f"{settings.POSTHOG_HOST}/project/{settings.POSTHOG_PROJECT_ID}/events",
    )


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "never"


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


@step(
    "telemetry_fresh",
    title="Telemetry is fresh",
    phase="prepare",
    describe="PostHog has recent TELEMETRY_EVENTS (newest within TELEMETRY_MAX_AGE_MINUTES).",
    requires=("POSTHOG_PROJECT_ID", "POSTHOG_PERSONAL_API_KEY"),
)
async def telemetry_fresh(ctx: StepContext) -> StepResult:
    """Each TELEMETRY_EVENTS event was last seen less than TELEMETRY_MAX_AGE_MINUTES ago."""
    settings = ctx.settings
    events = list(settings.TELEMETRY_EVENTS)
    max_age = timedelta(minutes=settings.TELEMETRY_MAX_AGE_MINUTES)
    try:
        async with _client(settings) as client:
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
        rows.append([name, _when(last), _age(age.total_seconds()), verdict])
    data = {"events": {name: (t.isoformat() if t else None) for name, t in seen.items()}}
    details = table(["event", "last seen", "age", "verdict"], rows)
    links = [_events_link(settings)]
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


def _deployed_at(release: Release) -> datetime:
    """When the deployment went live (the deploy step's `ready_at`), else the release start."""
    deploy = release.data.get("steps", {}).get("deploy") or {}
    ready_at = deploy.get("ready_at") if isinstance(deploy, dict) else None
    if isinstance(ready_at, str) and ready_at:
        try:
            parsed = datetime.fromisoformat(ready_at.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    started = release.started_at
    return started if started.tzinfo else started.replace(tzinfo=UTC)


def _staging_filter(settings: Settings) -> tuple[str | None, tuple[str, str] | None, str]:
    """(distinct-id prefix, property filter, words describing it); ValueError when unusable."""
    prefix = settings.STAGING_TELEMETRY_DISTINCT_ID_PREFIX
    if prefix:
        return prefix, None, f"distinct_id starting with {prefix!r}"
    name, sep, value = settings.STAGING_TELEMETRY_PROPERTY.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise ValueError(
            "set STAGING_TELEMETRY_DISTINCT_ID_PREFIX or STAGING_TELEMETRY_PROPERTY as name=value"
        )
    posthog.check_property_name(name)
    return None, (name, value), f"property {name}={value!r}"


@step(
    "telemetry_staging",
    title="Staging telemetry arrives",
    phase="validate",
    describe="PostHog receives i_chat_completed from staging after the deploy (polls up to "
    "STAGING_TELEMETRY_WAIT_SECONDS).",
    requires=("POSTHOG_PROJECT_ID", "POSTHOG_PERSONAL_API_KEY"),
    timeout=None,
)
async def telemetry_staging(ctx: StepContext) -> StepResult:
    """Poll PostHog for staging `i_chat_completed` events since the deployment went live."""
    settings = ctx.settings
    wait = float(ctx.option("wait_seconds", settings.STAGING_TELEMETRY_WAIT_SECONDS))
    interval = float(ctx.option("poll_seconds", min(15.0, max(wait / 10, 0.5))))
    since = _deployed_at(ctx.release)
    try:
        prefix, prop, described = _staging_filter(settings)
    except ValueError as exc:
        return StepResult.fail(f"The staging telemetry filter is not usable: {exc}.")
    links = [_events_link(settings)]
    started = time.monotonic()
    try:
        async with _client(settings) as client:
            while True:
                found = await posthog.count_since(
                    client, str(settings.POSTHOG_PROJECT_ID), STAGING_EVENT, since,
                    distinct_id_prefix=prefix, property_filter=prop,
                )
                elapsed = time.monotonic() - started
                if found.count > 0 or elapsed >= wait:
                    break
                await ctx.progress(
                    f"Waiting for staging {STAGING_EVENT} in PostHog: "
                    f"{elapsed:.0f}s of {wait:.0f}s"
                )
                await asyncio.sleep(max(min(interval, wait - elapsed), 0.05))
    except ProviderError as exc:
        return StepResult.fail(f"Could not count staging events in PostHog: {exc}.")
    data = {
        "count": found.count,
        "newest": found.newest.isoformat() if found.newest else None,
        "since": since.isoformat(),
        "filter": described,
    }
    details = table(
        ["event", "filter", "since", "count", "newest"],
        [[STAGING_EVENT, described, _when(since), str(found.count), _when(found.newest)]],
    )
    if found.count == 0:
        return StepResult.fail(
            f"No staging {STAGING_EVENT} events in {wait:.0f} s since {_when(since)}.",
            details=details, links=links, data=data,
        )
    return StepResult.ok(
        f"{found.count} staging {STAGING_EVENT} event(s) since {_when(since)}, "
        f"newest {_when(found.newest)}.",
        details=details, links=links, data=data,
    )
