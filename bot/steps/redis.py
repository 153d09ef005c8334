"""The `redis` step (guide section 3): "Redis metrics show the expected connection count",
read from `INFO` of STAGING_REDIS_URL.
"""

from __future__ import annotations

from bot.chat.blocks import table
from bot.providers import redis_info
from bot.providers.http import ProviderError
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext, StepDef
from bot.wording import uptime


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
                      uptime(stats.uptime_in_seconds), stats.redis_version]])
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


STEP = StepDef(
    name="redis",
    title="Redis connection count",
    requires=("STAGING_REDIS_URL",),
    timeout=120,
    describe="INFO on STAGING_REDIS_URL: connected clients between STAGING_REDIS_MIN_CLIENTS and "
             "STAGING_REDIS_MAX_CLIENTS; memory, uptime and version.",
    run=redis,
)
