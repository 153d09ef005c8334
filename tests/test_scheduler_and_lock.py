"""Scheduler jobs (waiting reminders) and the Redis environment lock against a real Redis."""

from __future__ import annotations

from datetime import timedelta

import redis.asyncio as aioredis

from bot.chat.blocks import Message
from bot.chat.reporter import ChatReporter
from bot.locks import RedisLock
from bot.redact import Redactor
from bot.runbook.model import Release, ReleaseStatus, StepRecord, StepState, utcnow
from bot.sandbox.services import RedisServer
from bot.scheduler import build_scheduler, remind_waiting
from bot.store import Store


class Recorder:
    def __init__(self) -> None:
        self.posts: list[tuple[str, str, str | None]] = []

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        self.posts.append((channel, message.text, thread_ts))
        return "1.0"

    async def update(self, channel: str, ts: str, message: Message) -> None:
        return None

    async def ephemeral(self, channel: str, user: str, message: Message) -> None:
        return None


async def test_a_release_waiting_too_long_gets_one_reminder(store: Store) -> None:
    release = Release(environment="staging", ref="main", started_by="U1", channel="C1",
                      thread_ts="9.9", status=ReleaseStatus.WAITING)
    release.steps = [StepRecord(name="migrations_review", title="Migration review", phase="prepare",
                                state=StepState.WAITING, started_at=utcnow() - timedelta(hours=1))]
    store.create_release(release)
    chat = Recorder()
    reporter = ChatReporter(chat, store, Redactor())
    assert await remind_waiting(store, reporter) == 1
    assert await remind_waiting(store, reporter) == 0  # not again within the window
    assert chat.posts[0][2] == "9.9" and "still waiting at *Migration review*" in chat.posts[0][1]


async def test_scheduler_jobs_have_stable_ids(store: Store) -> None:
    scheduler = build_scheduler(store, ChatReporter(Recorder(), store, Redactor()), None)
    assert [job.id for job in scheduler.get_jobs()] == ["remind-waiting"]


async def test_redis_lock_admits_one_release_per_environment(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    first, second = RedisLock(client), RedisLock(client)  # two bot processes
    assert await first.acquire("staging", 1)
    assert not await second.acquire("staging", 2)
    assert await second.holder("staging") == 1
    assert await first.acquire("staging", 1)  # a retry of the holder
    assert await second.acquire("production", 3)
    await first.renew()
    assert await client.pttl(RedisLock.key("staging")) > 0
    await first.release("staging", 1)
    assert await second.acquire("staging", 2)
    await client.flushall()  # the server is shared by the session's tests
    await client.aclose()
