"""One release per environment, and one bot process driving it.

Within one bot process the release log already refuses a second active release atomically
(`Store.create_release_if_free`). Several processes can share one release log (a console next to
a server, a `web` and a `worker` dyno); the environment lock says which of them drives the
release: only its holder runs steps and asks a gate's question, the others leave the release alone.

The owner is a random token made when the lock object is made (one per process), never a release
id: a second process retrying or recovering the same release is a different owner. Each lock is a
lease the holder renews while it runs (`renew()`, every `renew_seconds`); a crashed process frees
the environment when its lease runs out, or at once when it ran on this host and its process is
gone. `RedisLock` is used when `REDIS_URL` is set, `SqliteLock` (in the release log) otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot.store import Store

LEASE_MS = 10 * 60 * 1000
SQLITE_LEASE_SECONDS = 90.0

_SWAP = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0
"""
_DELETE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


def new_owner() -> dict[str, Any]:
    """This process's identity as a lock owner: a random token, the host and the pid."""
    return {"owner": secrets.token_hex(16), "host": socket.gethostname(), "pid": os.getpid()}


def process_gone(row: dict[str, Any]) -> bool:
    """True when `row`'s owner ran on this host and its process no longer exists."""
    if row.get("host") != socket.gethostname() or not isinstance(row.get("pid"), int):
        return False
    pid = int(row["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed process nobody has reaped yet (its parent died too, and this machine's init does
    not reap orphans) still answers kill(0): its state in /proc says it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class SqliteLock:
    """Environment locks kept in the release log's `env_locks` table."""

    def __init__(self, store: Store, lease_seconds: float = SQLITE_LEASE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.lease = lease_seconds
        self.renew_seconds = lease_seconds / 3
        self.clock = clock
        self.identity = new_owner()

    @property
    def owner(self) -> str:
        return str(self.identity["owner"])

    async def acquire(self, environment: str, release_id: int) -> bool:
        return self.store.take_lock(environment, {**self.identity, "release_id": release_id},
                                    self.clock(), self.lease, process_gone)

    async def release(self, environment: str, release_id: int) -> None:
        self.store.drop_lock(environment, self.owner, release_id)

    async def holder(self, environment: str) -> int | None:
        row = self.store.lock_row(environment)
        if row is None or row["expires_at"] <= self.clock():
            return None
        return int(row["release_id"])

    async def renew(self) -> None:
        """Extend the lease of every lock this process holds."""
        self.store.renew_locks(self.owner, self.clock() + self.lease)


class RedisLock:
    """`release-bot:lock:<environment>` holds JSON naming the owner and its release."""

    def __init__(self, client: aioredis.Redis, lease_ms: int = LEASE_MS) -> None:
        self.client = client
        self.lease_ms = lease_ms
        self.renew_seconds = min(60.0, lease_ms / 3000)
        self.identity = new_owner()
        self.held: dict[str, str] = {}  # environment -> the value this process wrote

    @property
    def owner(self) -> str:
        return str(self.identity["owner"])

    @staticmethod
    def key(environment: str) -> str:
        return f"release-bot:lock:{environment}"

    @staticmethod
    def _parse(value: bytes | str | None) -> dict[str, Any] | None:
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else value
        try:
            row = json.loads(text)
        except ValueError:
            row = None
        if isinstance(row, dict):
            return row
        # An older bot wrote the bare release id: an owner we cannot identify.
        return {"owner": None, "release_id": int(text) if text.isdigit() else None}

    async def acquire(self, environment: str, release_id: int) -> bool:
        key = self.key(environment)
        value = json.dumps({**self.identity, "release_id": release_id}, sort_keys=True)
        if await self.client.set(key, value, nx=True, px=self.lease_ms):
            self.held[environment] = value
            return True
        current = await self.client.get(key)
        row = self._parse(current)
        if row is None or row.get("owner") == self.owner or process_gone(row):
            swapped = await self.client.eval(_SWAP, 1, key, current or "", value, self.lease_ms)
            if swapped:
                self.held[environment] = value
                return True
            return await self.client.set(key, value, nx=True, px=self.lease_ms) is True
        return False

    async def release(self, environment: str, release_id: int) -> None:
        value = self.held.get(environment)
        if value is None or json.loads(value).get("release_id") != release_id:
            return
        await self.client.eval(_DELETE, 1, self.key(environment), value)
        self.held.pop(environment, None)

    async def holder(self, environment: str) -> int | None:
        row = self._parse(await self.client.get(self.key(environment)))
        found = row.get("release_id") if row else None
        return int(found) if found is not None else None

    async def renew(self) -> None:
        """Extend the lease of every lock this process holds (the engine and a scheduler job)."""
        for environment, value in list(self.held.items()):
            if not await self.client.eval(_EXTEND, 1, self.key(environment), value, self.lease_ms):
                self.held.pop(environment, None)  # lost (expired and taken): not ours any more
