"""Environment locks in the release log, shared by bot processes (see bot.locks.SqliteLock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.store.base import Database


class EnvLocks(Database):
    """The `env_locks` table: who holds each environment, and until when."""

    def take_lock(self, environment: str, owner: dict[str, Any], now: float,
                  lease: float, free: Callable[[dict[str, Any]], bool]) -> bool:
        """Hold `environment` for `owner` (owner, release_id, host, pid) until now + lease.

        Refused while another owner holds it, unless its lease ran out or `free(row)` says its
        process is gone. The same owner taking it again renews it.
        """
        with self._immediate():
            held = self.lock_row(environment)
            if (held is not None and held["owner"] != owner["owner"]
                    and held["expires_at"] > now and not free(held)):
                return False
            self.db.table("env_locks").upsert(
                {"environment": environment, **owner, "expires_at": now + lease}, pk="environment")
        return True

    def drop_lock(self, environment: str, owner: str, release_id: int) -> None:
        """Free `environment` if `owner` holds it for `release_id`."""
        with self._tx():
            self.db.execute("delete from env_locks where environment = ? and owner = ? and "
                            "release_id = ?", [environment, owner, release_id])

    def lock_row(self, environment: str) -> dict[str, Any] | None:
        """Who holds `environment` (expired or not)."""
        rows = list(self.db.query("select * from env_locks where environment = ?", [environment]))
        return rows[0] if rows else None

    def renew_locks(self, owner: str, until: float) -> None:
        """Extend every lock `owner` holds."""
        with self._tx():
            self.db.execute("update env_locks set expires_at = ? where owner = ?", [until, owner])
