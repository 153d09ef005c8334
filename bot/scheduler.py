"""APScheduler jobs of a running bot: lock renewal, reminders, and the jobs that outlive a restart.

Jobs have explicit ids and `replace_existing=True`, so restarting the bot never duplicates them.
Lock renewal and the waiting-release reminder hold live objects and stay in memory; the
post-deploy watch and the Manual Tests reminder live in the `persistent` job store (Redis when
`REDIS_URL` is set, else the release log's SQLite file through SQLAlchemy), are named by import
path and carry only plain arguments: a restarted bot finds them and carries on. Such a job finds
the objects it works with through `target(key)`, registered by the process when it starts.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.chat.reporter import ChatReporter
from bot.config import Settings
from bot.kb import add_retry_job
from bot.locks import RedisLock
from bot.runbook.model import ReleaseStatus, StepState, utcnow
from bot.store import Store

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
REMIND_AFTER = timedelta(minutes=30)
PERSISTENT = "persistent"
_TARGETS: dict[str, Any] = {}


def job_key(settings: Settings) -> str:
    """What a persistent job names its process's objects by: stable across restarts."""
    return f"{settings.DATABASE_PATH}#{settings.ENVIRONMENT}"


def register_target(key: str, name: str, target: Any) -> None:
    """Make `target` reachable by persistent jobs of `key` under `name`."""
    _TARGETS[f"{key}/{name}"] = target


def target(key: str, name: str) -> Any | None:
    """The object registered under (`key`, `name`) in this process, or None."""
    return _TARGETS.get(f"{key}/{name}")


def persistent_store(settings: Settings) -> BaseJobStore:
    """Redis when REDIS_URL is set; else a table in the release log's SQLite file."""
    if settings.REDIS_URL is not None:
        import redis
        from apscheduler.jobstores.redis import RedisJobStore

        prefix = f"release-bot:{settings.ENVIRONMENT}"
        store = RedisJobStore(jobs_key=f"{prefix}:jobs", run_times_key=f"{prefix}:run_times")
        store.redis = redis.Redis.from_url(settings.secret("REDIS_URL"))
        return store
    if settings.DATABASE_PATH == ":memory:":
        return MemoryJobStore()
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    path = Path(settings.DATABASE_PATH).resolve()
    return SQLAlchemyJobStore(url=f"sqlite:///{path}", tablename="scheduled_jobs")


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


def build_scheduler(store: Store, reporter: ChatReporter, lock: RedisLock | None,
                    settings: Settings | None = None) -> AsyncIOScheduler:
    """The bot's scheduler (not started); with `settings`, it has the persistent job store."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    if settings is not None:
        scheduler.configure(jobstores={"default": MemoryJobStore(),
                                       PERSISTENT: persistent_store(settings)})
    scheduler.add_job(remind_waiting, "interval", minutes=5, id="remind-waiting",
                      replace_existing=True, args=[store, reporter], coalesce=True, max_instances=1)
    if lock is not None:
        scheduler.add_job(lock.renew, "interval", minutes=1, id="renew-locks",
                          replace_existing=True, coalesce=True, max_instances=1)
    add_retry_job(scheduler, store)
    return scheduler


def start_scheduler(runtime: Runtime) -> AsyncIOScheduler:
    """Build and start the runtime's scheduler, then hand it to whoever schedules persistent jobs
    (the watch, the Manual Tests reminder): jobs stored before a restart run again from here."""
    scheduler = build_scheduler(runtime.store, runtime.reporter, runtime.lock, runtime.settings)
    scheduler.start()
    for listener in runtime.listeners:
        attach = getattr(listener, "attach", None)
        if attach is not None:
            attach(scheduler)
    return scheduler
