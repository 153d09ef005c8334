"""The HTTP client of the steps that talk to staging itself (smoke, health, coach_stream)."""

from __future__ import annotations

import httpx

from bot.providers.http import make_client
from bot.runbook.step import StepContext


def staging_client(ctx: StepContext) -> httpx.AsyncClient:
    """A client for STAGING_URL (the step requires it)."""
    assert ctx.settings.STAGING_URL
    return make_client(ctx.settings.STAGING_URL, timeout=ctx.settings.HTTP_TIMEOUT_SECONDS,
                       headers={"Accept": "text/html,application/json"})
