"""What both telemetry steps share: the PostHog client, the events link, and how times read."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from bot.config import Settings
from bot.providers.http import make_client
from bot.runbook.model import Link


def posthog_client(settings: Settings) -> httpx.AsyncClient:
    """A client for PostHog's API with the personal API key."""
    return make_client(
        settings.POSTHOG_HOST,
        token=settings.secret("POSTHOG_PERSONAL_API_KEY"),
        timeout=settings.HTTP_TIMEOUT_SECONDS,
    )


def events_link(settings: Settings) -> Link:
    """The project's events page in PostHog."""
    return Link(
        label="PostHog events",
        url=f"{settings.POSTHOG_HOST}/project/{settings.POSTHOG_PROJECT_ID}/events",
    )


def utc_time(moment: datetime | None) -> str:
    """`moment` as a UTC time to the second, or "never"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "never"
