"""Gate decisions in the release log: who chose what at a step's gate, and why."""

from __future__ import annotations

from datetime import datetime

import sqlite_utils

from bot.redact import default_redactor
from bot.runbook.model import Decision
from bot.store.base import Database


class Decisions(Database):
    """The `decisions` table: one answer per (release, step, gate)."""

    def record_decision(self, release_id: int, step: str, gate_key: str, decision: Decision) -> bool:
        """Store a gate decision; False when the gate was already decided."""
        with self._tx():
            table = self.db.table("decisions")
            try:
                table.get((release_id, step, gate_key))
                return False
            except sqlite_utils.db.NotFoundError:
                table.insert({"release_id": release_id, "step": step, "gate_key": gate_key,
                              "action": decision.action, "user": decision.user,
                              "at": decision.at.isoformat(),
                              "reason": default_redactor()(decision.reason)})
                return True

    def get_decision(self, release_id: int, step: str, gate_key: str) -> Decision | None:
        """The decision taken at a gate, if any."""
        try:
            row = self.db.table("decisions").get((release_id, step, gate_key))
        except sqlite_utils.db.NotFoundError:
            return None
        return Decision(action=row["action"], user=row["user"], at=datetime.fromisoformat(row["at"]),
                        reason=row.get("reason") or "")

    def clear_decisions(self, release_id: int, step: str) -> None:
        """Forget a step's gate answers (a retried step asks again)."""
        with self._tx():
            self.db.execute(
                "delete from decisions where release_id = ? and step = ?", [release_id, step]
            )
