"""The app's Redis: connection counts and memory from `INFO`, and the rollback cache flush.

`redis_stats(url, timeout)` reads `INFO clients`, `INFO memory` and `INFO server`;
`flush_all(url, timeout)` runs `FLUSHALL ASYNC` and counts keys (over every database listed by
`INFO keyspace`) before and after. Both raise `ProviderError` with a plain sentence for a refused
connection, a timeout, a rejected password or any other Redis error; the URL's password never
appears in a message (only `host:port` does).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from bot.providers.http import ProviderError

PROVIDER = "Redis"
T = TypeVar("T")


@dataclass(frozen=True)
class RedisStats:
    """What the staging Redis says about itself."""

    connected_clients: int
    used_memory_human: str
    uptime_in_seconds: int
    redis_version: str


def where(url: str) -> str:
    """`host:port` of a Redis URL, safe to print (no user name or password)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "the configured Redis"
    return f"{host}:{port}"


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from (redis-py wraps the socket error)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _describe(exc: Exception, url: str, timeout: float) -> str:
    place = where(url)
    chain = _chain(exc)
    text = " ".join(str(item).lower() for item in chain)
    if any(isinstance(e, redis_errors.AuthenticationError | redis_errors.AuthorizationError)
           for e in chain) or "noauth" in text or "wrongpass" in text:
        return f"{place} rejected the credentials in the URL ({type(exc).__name__})"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "error 111 " in text:
        return f"connection to {place} refused"
    if any(isinstance(e, TimeoutError | redis_errors.TimeoutError) for e in chain) or (
        "timeout" in text or "timed out" in text
    ):
        return f"{place} did not answer within {timeout:g}s"
    if any(isinstance(e, socket.gaierror) for e in chain) or "name or service not known" in text:
        return f"cannot resolve the host of {place}"
    if isinstance(exc, redis_errors.ConnectionError | OSError):
        return f"cannot connect to {place} ({type(exc).__name__})"
    if isinstance(exc, redis_errors.ResponseError):
        return f"{place} answered with an error: {str(exc)[:120]}"
    return f"{place}: {type(exc).__name__}"


@asynccontextmanager
async def _connect(url: str, timeout: float) -> AsyncIterator[aioredis.Redis]:
    try:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            decode_responses=True,
        )
    except ValueError:  # malformed URL; the message may quote the URL, so drop it
        raise ProviderError(PROVIDER, "the Redis URL is malformed (expected redis://...)") from None
    try:
        yield client
    finally:
        await client.aclose()


async def _call(url: str, timeout: float, work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    async with _connect(url, timeout) as client:
        try:
            async with asyncio.timeout(timeout * 2 + 1):
                return await work(client)
        except (redis_errors.RedisError, OSError, TimeoutError) as exc:
            raise ProviderError(PROVIDER, _describe(exc, url, timeout)) from None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def keyspace_keys(keyspace: dict[str, Any]) -> int:
    """Total keys over the databases of an `INFO keyspace` answer (`db0: {keys: N, ...}`)."""
    total = 0
    for name, value in keyspace.items():
        if not str(name).startswith("db"):
            continue
        if isinstance(value, dict):
            total += _int(value.get("keys"))
        elif isinstance(value, str):  # "keys=1,expires=0,avg_ttl=0" when not parsed
            for part in value.split(","):
                key, _, number = part.partition("=")
                if key == "keys":
                    total += _int(number)
    return total


async def redis_stats(url: str, timeout: float) -> RedisStats:
    """Connected clients, memory, uptime and version of the Redis at `url`."""

    async def work(client: aioredis.Redis) -> RedisStats:
        clients = await client.info("clients")
        memory = await client.info("memory")
        server = await client.info("server")
        return RedisStats(
            connected_clients=_int(clients.get("connected_clients")),
            used_memory_human=str(memory.get("used_memory_human") or "?"),
            uptime_in_seconds=_int(server.get("uptime_in_seconds")),
            redis_version=str(server.get("redis_version") or "?"),
        )

    return await _call(url, timeout, work)


async def count_keys(url: str, timeout: float) -> int:
    """Keys over every database of the Redis at `url`."""

    async def work(client: aioredis.Redis) -> int:
        return keyspace_keys(await client.info("keyspace"))

    return await _call(url, timeout, work)


async def flush_all(url: str, timeout: float) -> tuple[int, int]:
    """`FLUSHALL ASYNC` on the Redis at `url`; returns the key counts before and after."""

    async def work(client: aioredis.Redis) -> tuple[int, int]:
        before = keyspace_keys(await client.info("keyspace"))
        await client.flushall(asynchronous=True)
        after = keyspace_keys(await client.info("keyspace"))
        # The lazy free runs in the background; give it a moment to empty the keyspace.
        for _ in range(20):
            if after == 0:
                break
            await asyncio.sleep(0.1)
            after = keyspace_keys(await client.info("keyspace"))
        return before, after

    return await _call(url, timeout, work)


async def ping(url: str, timeout: float) -> bool:
    """`PING` the Redis at `url`; raises ProviderError saying why it did not answer."""

    async def work(client: aioredis.Redis) -> bool:
        return bool(await client.ping())

    return await _call(url, timeout, work)
