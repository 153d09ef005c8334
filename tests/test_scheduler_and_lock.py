"""Scheduler jobs (waiting reminders) and the Redis environment lock against a real Redis."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import redis.asyncio as aioredis

from bot.chat.blocks import Message
from bot.chat.reporter import ChatReporter
from bot.locks import RedisLock, SqliteLock
from bot.redact import Redactor
from bot.runbook.model import Release, ReleaseStatus, StepRecord, StepState, utcnow
from bot.scheduler import build_scheduler, remind_waiting
from bot.store import Store
from sandbox.services import RedisServer


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
    reporter = ChatReporter(chat, Redactor())
    assert await remind_waiting(store, reporter) == 1
    assert await remind_waiting(store, reporter) == 0  # not again within the window
    assert chat.posts[0][2] == "9.9" and "still waiting at *Migration review*" in chat.posts[0][1]


async def test_scheduler_jobs_have_stable_ids(store: Store) -> None:
    scheduler = build_scheduler(store, ChatReporter(Recorder(), Redactor()), None)
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


async def test_redis_lock_owner_is_the_process_not_the_release(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    first, second = RedisLock(client), RedisLock(client)  # two bot processes
    assert first.owner != second.owner and len(first.owner) >= 32
    assert await first.acquire("staging", 7)
    stored = (await client.get(RedisLock.key("staging"))).decode()
    assert first.owner in stored and stored != "7"
    # The same release recovered or retried by another live process is refused.
    assert not await second.acquire("staging", 7)
    await second.release("staging", 7)  # not its lock: nothing happens
    assert await first.holder("staging") == 7
    await first.release("staging", 7)
    assert await second.acquire("staging", 7)
    await client.flushall()
    await client.aclose()


async def test_redis_lock_of_a_process_that_died_on_this_host_is_taken_over(
        redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    dead = RedisLock(client)
    dead.identity["pid"] = await _dead_pid()
    assert await dead.acquire("staging", 3)
    assert await RedisLock(client).acquire("staging", 3)
    await client.flushall()
    await client.aclose()


async def _dead_pid() -> int:
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()
    return proc.pid


async def test_sqlite_lock_lease_and_owner(tmp_path: Path) -> None:
    now = [1000.0]
    first = SqliteLock(Store(tmp_path / "log.db"), lease_seconds=90, clock=lambda: now[0])
    second = SqliteLock(Store(tmp_path / "log.db"), lease_seconds=90, clock=lambda: now[0])
    assert await first.acquire("staging", 1)
    assert not await second.acquire("staging", 1)
    assert await second.holder("staging") == 1
    now[0] += 60
    await first.renew()  # the holder is alive and renews
    now[0] += 60
    assert not await second.acquire("staging", 1)
    now[0] += 91  # the holder stopped renewing: its lease ran out
    assert await second.acquire("staging", 1)
    assert not await first.acquire("staging", 1)
    await first.release("staging", 1)  # not its lock any more
    assert await first.holder("staging") == 1


async def test_sqlite_lock_of_a_dead_process_on_this_host_is_free(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    gone = SqliteLock(store)
    gone.identity["pid"] = await _dead_pid()
    assert await gone.acquire("staging", 4)
    assert await SqliteLock(store).acquire("staging", 4)


def test_a_killed_owner_not_yet_reaped_counts_as_gone() -> None:
    """A bot killed with -9 whose parent died too stays a zombie where init does not reap it:
    it still answers kill(0), yet its lock must be taken over."""
    import socket
    import subprocess
    import time as clock
    from pathlib import Path as P

    from bot.locks import process_gone

    child = subprocess.Popen(["sleep", "60"])
    try:
        owner = {"host": socket.gethostname(), "pid": child.pid}
        assert process_gone(owner) is False  # alive
        child.kill()
        for _ in range(500):  # until the kernel shows it as a zombie (we have not reaped it)
            if P(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
                break
            clock.sleep(0.01)
        assert process_gone(owner) is True
    finally:
        child.wait()
    assert process_gone({"host": "another-host", "pid": child.pid}) is False
