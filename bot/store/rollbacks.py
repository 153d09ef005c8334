"""Rollbacks in the release log: the claim of a rollback under way, and each action's outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.redact import default_redactor
from bot.store.base import Database


class Rollbacks(Database):
    """The `rollback_claims` and `rollback_actions` tables."""

    def claim_rollback(self, release_id: int, user: str, at: datetime,
                       stale_after: float) -> tuple[int, dict[str, Any] | None]:
        """Claim the rollback of a release: (new rollback id, None), or (0, the holder's claim).

        A claim older than `stale_after` seconds (a process that died mid-rollback) is taken over.
        """
        with self._immediate():
            held = self.rollback_claim(release_id)
            if held is not None and (at - datetime.fromisoformat(held["at"])).total_seconds() < stale_after:
                return 0, held
            number = self._next_rollback_id(release_id, held)
            self.db.table("rollback_claims").upsert(
                {"release_id": release_id, "rollback_id": number, "user": user, "at": at.isoformat()},
                pk="release_id",
            )
        return number, None

    def _next_rollback_id(self, release_id: int, stale: dict[str, Any] | None) -> int:
        """One past the last rollback kept for the release (or claimed by a stale claim)."""
        done = list(self.db.query(
            "select max(rollback_id) as n from rollback_actions where release_id = ?", [release_id]))
        number = int(done[0]["n"] or 0) + 1
        return max(number, int(stale["rollback_id"]) + 1) if stale else number

    def rollback_claim(self, release_id: int) -> dict[str, Any] | None:
        """The claim of a rollback under way for this release, if any."""
        rows = list(self.db.query("select * from rollback_claims where release_id = ?",
                                  [release_id]))
        return rows[0] if rows else None

    def release_rollback_claim(self, release_id: int, rollback_id: int) -> None:
        """Drop the claim (only the one this rollback holds)."""
        with self._tx():
            self.db.execute("delete from rollback_claims where release_id = ? and rollback_id = ?",
                            [release_id, rollback_id])

    def record_rollback_action(self, release_id: int, rollback_id: int, action: str,
                               outcome: str, summary: str, details: str, at: datetime) -> None:
        """Keep one action of a rollback and its outcome."""
        redact = default_redactor()
        with self._tx():
            self.db.table("rollback_actions").upsert(
                {"release_id": release_id, "rollback_id": rollback_id, "action": action,
                 "outcome": outcome, "summary": redact(summary), "details": redact(details),
                 "at": at.isoformat()},
                pk=("release_id", "rollback_id", "action"),
            )

    def rollback_actions(self, release_id: int) -> list[dict[str, Any]]:
        """Every kept rollback action of a release, oldest rollback first."""
        return list(self.db.query(
            "select * from rollback_actions where release_id = ? order by rollback_id, at",
            [release_id]))
