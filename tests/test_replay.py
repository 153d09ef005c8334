"""The replay guard: a request's keys are taken once, across processes, within Slack's window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot.replay import RedisSeen, ReplayGuard, SqliteSeen
from bot.store import Store


async def test_sqlite_keys_are_taken_once_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    one, two = SqliteSeen.beside(Store(path).db.conn), SqliteSeen.beside(Store(path).db.conn)
    assert await one.add("sig:1") is True
    assert await two.add("sig:1") is False and await one.add("sig:1") is False
    assert await two.add("sig:2") is True
    # The release log's own connection keeps its durable setting; the guard's does not fsync.
    store = Store(path)
    assert store.db.execute("pragma synchronous").fetchone()[0] != 0
    assert one.conn.execute("pragma synchronous").fetchone()[0] == 0


async def test_a_key_older_than_the_window_may_be_taken_again(tmp_path: Path) -> None:
    expired = SqliteSeen.beside(Store(tmp_path / "log.db").db.conn)
    expired.window = -1  # every earlier sighting counts as outside the window
    assert await expired.add("sig:1") is True and await expired.add("sig:1") is True


async def test_redis_first_and_the_release_log_when_redis_is_down(redis_server: Any,
                                                                  tmp_path: Path) -> None:
    client = aioredis.from_url(redis_server.url)
    sqlite = SqliteSeen.beside(Store(tmp_path / "log.db").db.conn)
    guard = ReplayGuard(RedisSeen(client), fallback=sqlite)
    try:
        assert await guard.first_time(["sig:a", "event:E1"]) is True
        assert await guard.first_time(["sig:b", "event:E1"]) is False  # Slack's retry of E1
        assert await guard.first_time(["sig:a"]) is False
        assert await client.ttl("release-bot:seen:sig:a") > 0
    finally:
        await client.delete("release-bot:seen:sig:a", "release-bot:seen:sig:b",
                            "release-bot:seen:event:E1")
        await client.aclose()
    down = ReplayGuard(RedisSeen(aioredis.from_url("redis://127.0.0.1:9/0")), fallback=sqlite)
    assert await down.first_time(["sig:c"]) is True
    assert await down.first_time(["sig:c"]) is False
