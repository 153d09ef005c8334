"""The `telemetry_staging` step (guide 3.4, "Observe telemetry"): staging sends events.

It polls PostHog until staging's first `i_chat_completed` since the deployment went live
arrives, or STAGING_TELEMETRY_WAIT_SECONDS pass.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from bot.chat.blocks import table
from bot.config import Settings
from bot.providers import posthog
from bot.providers.http import ProviderError
from bot.runbook.model import Release, StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.posthog_events import events_link, posthog_client, utc_time

STAGING_EVENT = "i_chat_completed"


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
    links = [events_link(settings)]
    started = time.monotonic()
    try:
        async with posthog_client(settings) as client:
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
        [[STAGING_EVENT, described, utc_time(since), str(found.count), utc_time(found.newest)]],
    )
    if found.count == 0:
        return StepResult.fail(
            f"No staging {STAGING_EVENT} events in {wait:.0f} s since {utc_time(since)}.",
            details=details, links=links, data=data,
        )
    return StepResult.ok(
        f"{found.count} staging {STAGING_EVENT} event(s) since {utc_time(since)}, "
        f"newest {utc_time(found.newest)}.",
        details=details, links=links, data=data,
    )


STEP = StepDef(
    name="telemetry_staging",
    title="Staging telemetry arrives",
    describe="PostHog receives i_chat_completed from staging after the deploy (polls up to "
             "STAGING_TELEMETRY_WAIT_SECONDS).",
    requires=("POSTHOG_PROJECT_ID", "POSTHOG_PERSONAL_API_KEY"),
    timeout=None,
    run=telemetry_staging,
)
