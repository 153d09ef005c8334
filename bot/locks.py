"""One release per environment: a Redis lock when `REDIS_URL` is set.

Within one bot process the release log already refuses a second active release atomically
(`Store.create_release_if_free`). With several bot processes (say a `web` and a `worker` dyno
sharing a Redis), `RedisLock` makes the refusal hold across them: `SET NX PX` with a lease that
the scheduler renews while the release runs, so a crashed process frees the environment.
"""

from __future__ import annotations

import redis.asyncio as aioredis

LEASE_MS = 10 * 60 * 1000


class RedisLock:
    """`release-bot:lock:<environment>` holds the id of the release that owns it."""

    def __init__(self, client: aioredis.Redis, lease_ms: int = LEASE_MS) -> None:
        self.client = client
        self.lease_ms = lease_ms
        self.held: dict[str, int] = {}

    @staticmethod
    def key(environment: str) -> str:
        return f"release-bot:lock:{environment}"

    async def acquire(self, environment: str, release_id: int) -> bool:
        key = self.key(environment)
        if await self.client.set(key, str(release_id), nx=True, px=self.lease_ms):
            self.held[environment] = release_id
            return True
        current = await self.client.get(key)
        if current is not None and int(current) == release_id:  # a retry of the holder
            await self.client.pexpire(key, self.lease_ms)
            self.held[environment] = release_id
            return True
        return False

    async def release(self, environment: str, release_id: int) -> None:
        key = self.key(environment)
        current = await self.client.get(key)
        if current is not None and int(current) == release_id:
            await self.client.delete(key)
        self.held.pop(environment, None)

    async def holder(self, environment: str) -> int | None:
        current = await self.client.get(self.key(environment))
        return int(current) if current is not None else None

    async def renew(self) -> None:
        """Extend the lease of every lock this process holds (a scheduler job)."""
        for environment, release_id in list(self.held.items()):
            if await self.holder(environment) == release_id:
                await self.client.pexpire(self.key(environment), self.lease_ms)
