"""APScheduler jobs of a running bot: lock renewal and reminders for releases waiting on people.

Jobs have explicit ids and `replace_existing=True`, so restarting the bot never duplicates them.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.chat.reporter import ChatReporter
from bot.kb import add_retry_job
from bot.locks import RedisLock
from bot.runbook.model import ReleaseStatus, StepState, utcnow
from bot.store import Store

log = logging.getLogger(__name__)
REMIND_AFTER = timedelta(minutes=30)


async def remind_waiting(store: Store, reporter: ChatReporter) -> int:
    """Nudge the thread of each release waiting on a person for longer than REMIND_AFTER."""
    sent = 0
    for release in store.releases_with_status(ReleaseStatus.WAITING):
        for record in release.steps:
            if record.state != StepState.WAITING or record.started_at is None:
                continue
            if utcnow() - record.started_at < REMIND_AFTER:
                continue
            last = release.data.get("reminded_at", {}).get(record.name)
            if last and utcnow().timestamp() - float(last) < REMIND_AFTER.total_seconds():
                continue
            release.data.setdefault("reminded_at", {})[record.name] = utcnow().timestamp()
            store.save_release(release)
            await reporter.note(release, f":bell: Release #{release.id} is still waiting at "
                                         f"*{record.title}*: someone needs to choose above.")
            sent += 1
    return sent


def build_scheduler(store: Store, reporter: ChatReporter, lock: RedisLock | None) -> AsyncIOScheduler:
    """The bot's scheduler (not started)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(remind_waiting, "interval", minutes=5, id="remind-waiting",
                      replace_existing=True, args=[store, reporter], coalesce=True, max_instances=1)
    if lock is not None:
        scheduler.add_job(lock.renew, "interval", minutes=1, id="renew-locks",
                          replace_existing=True, coalesce=True, max_instances=1)
    add_retry_job(scheduler, store)
    return scheduler
