"""The `redis` step and `bot.providers.redis_info` against a real redis-server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.providers.http import ProviderError
from bot.providers.redis_info import flush_all, keyspace_keys, redis_stats, where
from bot.runbook.model import Outcome
from bot.steps.registry import STEPS
from sandbox.services import RedisServer, free_port
from tests.helpers import StepHarness, make_settings, phase_in_default_runbook

pytest_plugins = ["tests.conftest_services"]


def _settings(url: str, **extra: Any) -> Any:
    return make_settings(STAGING_REDIS_URL=url, HTTP_TIMEOUT_SECONDS=2, **extra)


@pytest.fixture
async def extra_clients(redis_server: RedisServer) -> AsyncIterator[list[aioredis.Redis]]:
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(5)]
    await asyncio.gather(*(client.ping() for client in clients))
    yield clients
    await asyncio.gather(*(client.aclose() for client in clients))


async def test_stats_read_clients_memory_uptime_version(redis_server: RedisServer) -> None:
    stats = await redis_stats(redis_server.url, 2)
    assert stats.connected_clients >= 1  # our own connection counts
    assert re.fullmatch(r"[\d.]+[KMG]?", stats.used_memory_human)
    assert stats.uptime_in_seconds >= 0
    assert re.fullmatch(r"\d+\.\d+\.\d+", stats.redis_version)


async def test_in_range_passes_with_a_table(redis_server: RedisServer) -> None:
    settings = _settings(redis_server.url, STAGING_REDIS_MIN_CLIENTS=1, STAGING_REDIS_MAX_CLIENTS=10)
    result = await StepHarness(settings).run("redis")
    assert result.outcome == Outcome.OK, result.summary
    clients = result.data["connected_clients"]
    assert 1 <= clients <= 10
    assert result.summary.startswith(f"Redis 127.0.0.1:{redis_server.port}: {clients} connected clients")
    assert "clients" in result.details and "memory" in result.details
    assert "uptime" in result.details and "version" in result.details
    assert result.data["redis_version"] in result.details
    assert set(result.data) >= {"connected_clients", "used_memory_human", "uptime_in_seconds",
                                "redis_version"}


async def test_too_few_clients_fails(redis_server: RedisServer) -> None:
    settings = _settings(redis_server.url, STAGING_REDIS_MIN_CLIENTS=50, STAGING_REDIS_MAX_CLIENTS=60)
    result = await StepHarness(settings).run("redis")
    assert result.outcome == Outcome.FAIL
    assert re.search(r": \d connected clients, expected between 50 and 60$", result.summary), result.summary


async def test_too_many_clients_fails(
    redis_server: RedisServer, extra_clients: list[aioredis.Redis]
) -> None:
    settings = _settings(redis_server.url, STAGING_REDIS_MIN_CLIENTS=1, STAGING_REDIS_MAX_CLIENTS=3)
    result = await StepHarness(settings).run("redis")
    assert result.outcome == Outcome.FAIL
    clients = result.data["connected_clients"]
    assert clients >= len(extra_clients) + 1
    assert result.summary.endswith(f"{clients} connected clients, expected between 1 and 3")


async def test_unreachable_fails_clearly_without_the_password() -> None:
    port = free_port()
    url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
    result = await StepHarness(_settings(url)).run("redis")
    assert result.outcome == Outcome.FAIL
    assert result.summary == f"Staging Redis is unreachable: Redis: connection to 127.0.0.1:{port} refused"
    assert "hunter2" not in result.model_dump_json()


async def test_silent_server_times_out() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = make_settings(STAGING_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                                 HTTP_TIMEOUT_SECONDS=0.5)
        result = await StepHarness(settings).run("redis")
    finally:
        server.close()
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        f"Staging Redis is unreachable: Redis: 127.0.0.1:{port} did not answer within 0.5s"
    )


@pytest.fixture
async def protected_redis(redis_server: RedisServer) -> AsyncIterator[RedisServer]:
    """A second real server that requires a password (`right-password`)."""
    with RedisServer(binary=redis_server.binary) as server:
        admin = aioredis.Redis.from_url(server.url)
        await admin.config_set("requirepass", "right-password")
        await admin.aclose()
        yield server


async def test_wrong_password_is_reported_without_the_password(protected_redis: RedisServer) -> None:
    port = protected_redis.port
    url = f"redis://default:hunter2-secret@127.0.0.1:{port}/0"
    with pytest.raises(ProviderError) as caught:
        await redis_stats(url, 2)
    assert "hunter2" not in str(caught.value)
    result = await StepHarness(_settings(url)).run("redis")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        f"Staging Redis is unreachable: Redis: 127.0.0.1:{port} rejected the credentials in the URL "
        "(AuthenticationError)"
    )
    assert "hunter2" not in result.model_dump_json()
    good = await redis_stats(f"redis://default:right-password@127.0.0.1:{port}/0", 2)
    assert good.connected_clients >= 1


async def test_malformed_url_fails_clearly() -> None:
    with pytest.raises(ProviderError, match="the Redis URL is malformed"):
        await redis_stats("http://:pw@example.test/0", 1)


async def test_flush_all_counts_keys_over_every_database(redis_server: RedisServer) -> None:
    db0 = aioredis.Redis.from_url(redis_server.url)
    db3 = aioredis.Redis(host="127.0.0.1", port=redis_server.port, db=3)
    try:
        await db0.flushall()  # the server is shared by the session's tests
        await db0.mset({"cache:a": "1", "cache:b": "2", "cache:c": "3"})
        await db3.set("session:x", "y")
        before, after = await flush_all(redis_server.url, 2)
        assert (before, after) == (4, 0)
        assert await db0.dbsize() == 0 and await db3.dbsize() == 0
    finally:
        await db0.aclose()
        await db3.aclose()


async def test_flush_all_unreachable_raises_provider_error() -> None:
    port = free_port()
    with pytest.raises(ProviderError, match=f"connection to 127.0.0.1:{port} refused"):
        await flush_all(f"redis://127.0.0.1:{port}/0", 1)


def test_keyspace_keys_and_where() -> None:
    assert keyspace_keys({"db0": {"keys": 3, "expires": 0}, "db2": {"keys": 4}}) == 7
    assert keyspace_keys({"db1": "keys=5,expires=0,avg_ttl=0"}) == 5
    assert keyspace_keys({}) == 0
    assert where("rediss://user:pw@cache.example.com:6380/0") == "cache.example.com:6380"
    assert where("redis://localhost") == "localhost:6379"


def test_step_requires_the_url() -> None:
    sdef = STEPS["redis"]
    assert phase_in_default_runbook("redis") == "validate"
    assert sdef.skip_reason(make_settings()) == "missing settings: STAGING_REDIS_URL"
