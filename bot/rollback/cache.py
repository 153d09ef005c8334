"""The cache flush: `FLUSHALL ASYNC` on the staging Redis, with the key counts before and after."""

from __future__ import annotations

from bot.config import Settings
from bot.providers import redis_info
from bot.rollback.model import CACHE, ActionResult
from bot.runbook.model import Outcome


async def flush_cache(settings: Settings) -> ActionResult:
    """Flush STAGING_REDIS_URL; a key left afterwards is a warning."""
    if settings.STAGING_REDIS_URL is None:
        return ActionResult(CACHE, Outcome.SKIPPED, "Not flushed: STAGING_REDIS_URL is not set.")
    url = settings.secret("STAGING_REDIS_URL")
    before, after = await redis_info.flush_all(url, settings.HTTP_TIMEOUT_SECONDS)
    data = {"keys_before": before, "keys_after": after}
    where = redis_info.where(url)
    if after:
        return ActionResult(CACHE, Outcome.WARN, f"FLUSHALL ASYNC on {where}: {before} keys "
                            f"before, still {after} after.", data=data)
    return ActionResult(CACHE, Outcome.OK,
                        f"FLUSHALL ASYNC on {where}: {before} keys before, {after} after.",
                        data=data)
