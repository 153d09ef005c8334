"""The release log: SQLite through sqlite-utils, schema created and migrated here.

One row per release (with the guide's template fields as columns), one row per step result,
one row per gate decision. Every engine transition is written here before it is announced.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from bot.redact import default_redactor
from bot.runbook.model import (
    TEMPLATE_FIELDS,
    Decision,
    Gate,
    Link,
    Release,
    ReleaseStatus,
    StepRecord,
    StepResult,
    StepState,
)

FIELD_COLUMNS = {
    "Release Date": "release_date",
    "Git SHA": "git_sha",
    "Migrations Applied": "migrations_applied",
    "Feature Highlights": "feature_highlights",
    "Manual Tests": "manual_tests",
    "Automated Checks": "automated_checks",
    "Post-Deploy Monitoring Links": "monitoring_links",
    "Rollback Trigger (if used)": "rollback_trigger",
}

migrations = Migrations("release_bot")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.table("releases").create(
        {
            "id": int,
            "environment": str,
            "ref": str,
            "git_sha": str,
            "started_by": str,
            "channel": str,
            "thread_ts": str,
            "status": str,
            "started_at": str,
            "finished_at": str,
            "notes": str,
            "release_date": str,
            "migrations_applied": str,
            "feature_highlights": str,
            "manual_tests": str,
            "monitoring_links": str,
            "rollback_trigger": str,
            "data": str,
        },
        pk="id",
    )
    db.table("releases").create_index(["environment", "status"])
    db.table("steps").create(
        {
            "release_id": int,
            "name": str,
            "title": str,
            "phase": str,
            "position": int,
            "state": str,
            "outcome": str,
            "summary": str,
            "details": str,
            "links": str,
            "output_tail": str,
            "data": str,
            "gate": str,
            "started_at": str,
            "finished_at": str,
        },
        pk=("release_id", "name"),
        foreign_keys=[("release_id", "releases", "id")],
    )
    db.table("decisions").create(
        {"release_id": int, "step": str, "gate_key": str, "action": str, "user": str, "at": str},
        pk=("release_id", "step", "gate_key"),
    )


@migrations()
def m002_rollbacks(db: sqlite_utils.Database) -> None:
    """Rollbacks: one row per action of each rollback, and the claim of a rollback under way."""
    db.table("rollback_actions").create(
        {
            "release_id": int,
            "rollback_id": int,
            "action": str,
            "outcome": str,
            "summary": str,
            "details": str,
            "at": str,
        },
        pk=("release_id", "rollback_id", "action"),
    )
    db.table("rollback_claims").create(
        {"release_id": int, "rollback_id": int, "user": str, "at": str},
        pk="release_id",
    )


@migrations()
def m003_listing_indexes(db: sqlite_utils.Database) -> None:
    """Newest-first listings per environment and lookups by status read an index, not the table
    (a 100k-release log answers `log` and `status` without sorting every row)."""
    db.table("releases").create_index(["environment", "id"], if_not_exists=True)
    db.table("releases").create_index(["status", "id"], if_not_exists=True)


@migrations()
def m003_automated_checks(db: sqlite_utils.Database) -> None:
    """"Automated Checks" gets its own column; what "Manual Tests" held until now were the
    automated checks, so it moves there and "Manual Tests" waits for a person's answer."""
    db.table("releases").add_column("automated_checks", str)
    db.execute("update releases set automated_checks = manual_tests, manual_tests = ''")


@migrations()
def m004_reasons_and_locks(db: sqlite_utils.Database) -> None:
    """Why a person chose what they chose at a gate; the environment locks of bot processes."""
    db.table("decisions").add_column("reason", str)
    db.table("env_locks").create(
        {"environment": str, "owner": str, "release_id": int, "host": str, "pid": int,
         "expires_at": float},
        pk="environment",
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Store:
    """Release log over one SQLite database (a path, or ':memory:')."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(str(path))
            # wait for a lock held by another process (Litestream checkpointing, a console)
            # before the first statement, not only after it
            self.db.conn.execute("PRAGMA busy_timeout=5000")
            self.db.execute("PRAGMA journal_mode=WAL")
        else:
            self.db = sqlite_utils.Database(memory=True)
        self.db.conn.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.RLock()
        migrations.apply(self.db)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One transaction: sqlite-utils' own writes inside it become savepoints, so a release
        and its steps are committed together (once), or not at all."""
        with self._lock, self.db.atomic():
            yield

    # --- releases --------------------------------------------------------------------------
    def create_release(self, release: Release) -> Release:
        """Insert a release and its steps; assigns `release.id`."""
        with self._tx():
            self._insert(release)
        return release

    def _insert(self, release: Release) -> None:
        row = self._release_row(release)
        row.pop("id")
        table = self.db.table("releases")
        table.insert(row)
        release.id = int(table.last_pk or 0)
        for record in release.steps:
            self._upsert_step(release.id, record)

    def create_release_if_free(self, release: Release) -> Release | None:
        """Insert `release` unless its environment has an active one; return that one if so."""
        with self._lock:
            self.db.conn.execute("BEGIN IMMEDIATE")
            try:
                active = self.active_release(release.environment)
                if active is not None:
                    self.db.conn.execute("ROLLBACK")
                    return active
                self._insert(release)
                self.db.conn.execute("COMMIT")
            except BaseException:
                self.db.conn.execute("ROLLBACK")
                raise
        return None

    def discard_release(self, release_id: int) -> None:
        """Remove a release that never started (nothing was announced, no step ran)."""
        with self._tx():
            self.db.execute("delete from steps where release_id = ?", [release_id])
            self.db.execute("delete from decisions where release_id = ?", [release_id])
            self.db.execute("delete from releases where id = ?", [release_id])

    def save_release(self, release: Release) -> None:
        """Write the release row (not its steps)."""
        assert release.id is not None
        with self._tx():
            self.db.table("releases").update(release.id, self._release_row(release))

    def save_step(self, release: Release, record: StepRecord) -> None:
        """Write one step row."""
        assert release.id is not None
        with self._tx():
            self._upsert_step(release.id, record)

    def save(self, release: Release, *records: StepRecord) -> None:
        """Write the release row and the given step rows in one transaction."""
        assert release.id is not None
        with self._tx():
            self.db.table("releases").update(release.id, self._release_row(release))
            for record in records:
                self._upsert_step(release.id, record)

    def get_release(self, release_id: int) -> Release | None:
        rows = list(self.db.query("select * from releases where id = ?", [release_id]))
        return self._release(rows[0]) if rows else None

    def list_releases(self, limit: int = 20, environment: str | None = None) -> list[Release]:
        """Newest first."""
        where, args = ("where environment = ?", [environment]) if environment else ("", [])
        rows = self.db.query(
            f"select * from releases {where} order by id desc limit ?",  # noqa: S608
            [*args, limit],
        )
        return [self._release(row) for row in rows]

    def active_release(self, environment: str) -> Release | None:
        rows = list(
            self.db.query(
                # `+id`: read the few active rows through (environment, status) and sort them,
                # rather than walk the whole environment newest-first looking for one
                "select * from releases where environment = ? and status in (?, ?) "
                "order by +id desc limit 1",
                [environment, ReleaseStatus.RUNNING.value, ReleaseStatus.WAITING.value],
            )
        )
        return self._release(rows[0]) if rows else None

    def latest_release(self, environment: str) -> Release | None:
        found = self.list_releases(1, environment)
        return found[0] if found else None

    def releases_with_status(self, *statuses: ReleaseStatus) -> list[Release]:
        marks = ",".join("?" for _ in statuses)
        rows = self.db.query(
            f"select * from releases where status in ({marks}) order by id",  # noqa: S608
            [s.value for s in statuses],
        )
        return [self._release(row) for row in rows]

    def last_successful_before(self, environment: str, release_id: int) -> Release | None:
        rows = list(
            self.db.query(
                "select * from releases where environment = ? and id < ? and status = ? "
                "order by id desc limit 1",
                [environment, release_id, ReleaseStatus.SUCCEEDED.value],
            )
        )
        return self._release(rows[0]) if rows else None

    # --- decisions -------------------------------------------------------------------------
    def record_decision(self, release_id: int, step: str, gate_key: str, decision: Decision) -> bool:
        """Store a gate decision; False when the gate was already decided."""
        with self._tx():
            table = self.db.table("decisions")
            try:
                table.get((release_id, step, gate_key))
                return False
            except sqlite_utils.db.NotFoundError:
                table.insert(
                    {
                        "release_id": release_id,
                        "step": step,
                        "gate_key": gate_key,
                        "action": decision.action,
                        "user": decision.user,
                        "at": decision.at.isoformat(),
                        "reason": default_redactor()(decision.reason),
                    }
                )
                return True

    def get_decision(self, release_id: int, step: str, gate_key: str) -> Decision | None:
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

    # --- environment locks (see bot.locks.SqliteLock) ---------------------------------------
    def take_lock(self, environment: str, owner: dict[str, Any], now: float,
                  lease: float, free: Callable[[dict[str, Any]], bool]) -> bool:
        """Hold `environment` for `owner` (owner, release_id, host, pid) until now + lease.

        Refused while another owner holds it, unless its lease ran out or `free(row)` says its
        process is gone. The same owner taking it again renews it.
        """
        with self._lock:
            self.db.conn.execute("BEGIN IMMEDIATE")
            try:
                rows = list(self.db.query("select * from env_locks where environment = ?",
                                          [environment]))
                held = rows[0] if rows else None
                if (held is not None and held["owner"] != owner["owner"]
                        and held["expires_at"] > now and not free(held)):
                    self.db.conn.execute("ROLLBACK")
                    return False
                self.db.table("env_locks").upsert(
                    {"environment": environment, **owner, "expires_at": now + lease},
                    pk="environment")
                self.db.conn.execute("COMMIT")
            except BaseException:
                self.db.conn.execute("ROLLBACK")
                raise
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

    # --- rows ------------------------------------------------------------------------------
    def _release_row(self, release: Release) -> dict[str, Any]:
        # Free text (notes, fields, human-readable strings in data) comes from people and tools
        # and is redacted; ids, SHAs, timestamps and the JSON's shape are stored as they are.
        redact = default_redactor()
        row: dict[str, Any] = {
            "id": release.id,
            "environment": release.environment,
            "ref": release.ref,
            "git_sha": release.git_sha,
            "started_by": release.started_by,
            "channel": release.channel,
            "thread_ts": release.thread_ts,
            "status": release.status.value,
            "started_at": _iso(release.started_at),
            "finished_at": _iso(release.finished_at),
            "notes": redact(release.notes),
            "data": json.dumps(redact.data(release.data), default=str),
        }
        for name, column in FIELD_COLUMNS.items():
            if column != "git_sha":
                value = release.fields.get(name, "") or ""
                row[column] = value if column == "release_date" else redact(value)
        return row

    def _release(self, row: dict[str, Any]) -> Release:
        fields = {name: row.get(column) or "" for name, column in FIELD_COLUMNS.items()}
        fields["Git SHA"] = row.get("git_sha") or ""
        release = Release(
            id=row["id"],
            environment=row["environment"],
            ref=row["ref"],
            git_sha=row["git_sha"],
            started_by=row["started_by"],
            channel=row["channel"],
            thread_ts=row["thread_ts"],
            status=ReleaseStatus(row["status"]),
            started_at=datetime.fromisoformat(row["started_at"]),
            finished_at=_dt(row["finished_at"]),
            notes=row["notes"] or "",
            fields={k: v for k, v in fields.items() if k in TEMPLATE_FIELDS},
            data=json.loads(row["data"] or "{}"),
        )
        steps = self.db.query(
            "select * from steps where release_id = ? order by position", [row["id"]]
        )
        release.steps = [self._step(s) for s in steps]
        return release

    def _upsert_step(self, release_id: int, record: StepRecord) -> None:
        redact = default_redactor()
        result = record.result
        if result is not None:  # text and the data's readable strings; never ids or shape
            result = StepResult.model_validate(redact.data(result.model_dump()))
        gate = Gate.model_validate(redact.data(record.gate.model_dump())) if record.gate else None
        self.db.table("steps").upsert(
            {
                "release_id": release_id,
                "name": record.name,
                "title": record.title,
                "phase": record.phase,
                "position": record.position,
                "state": record.state.value,
                "outcome": result.outcome.value if result else None,
                "summary": result.summary if result else None,
                "details": result.details if result else None,
                "links": json.dumps([link.model_dump() for link in result.links]) if result else None,
                "output_tail": result.output_tail if result else None,
                "data": json.dumps(result.data, default=str) if result else None,
                "gate": gate.model_dump_json() if gate else None,
                "started_at": _iso(record.started_at),
                "finished_at": _iso(record.finished_at),
            },
            pk=("release_id", "name"),
        )

    @staticmethod
    def _step(row: dict[str, Any]) -> StepRecord:
        result = None
        if row["outcome"]:
            result = StepResult(
                outcome=row["outcome"],
                summary=row["summary"] or "",
                details=row["details"] or "",
                links=[Link(**link) for link in json.loads(row["links"] or "[]")],
                output_tail=row["output_tail"] or "",
                data=json.loads(row["data"] or "{}"),
            )
        return StepRecord(
            name=row["name"],
            title=row["title"],
            phase=row["phase"],
            position=row["position"],
            state=StepState(row["state"]),
            result=result,
            gate=Gate.model_validate_json(row["gate"]) if row["gate"] else None,
            started_at=_dt(row["started_at"]),
            finished_at=_dt(row["finished_at"]),
        )

    # --- rollbacks -------------------------------------------------------------------------
    def claim_rollback(self, release_id: int, user: str, at: datetime,
                       stale_after: float) -> tuple[int, dict[str, Any] | None]:
        """Claim the rollback of a release: (new rollback id, None), or (0, the holder's claim).

        A claim older than `stale_after` seconds (a process that died mid-rollback) is taken over.
        """
        with self._lock:
            self.db.conn.execute("BEGIN IMMEDIATE")
            try:
                rows = list(self.db.query(
                    "select * from rollback_claims where release_id = ?", [release_id]))
                if rows:
                    held = rows[0]
                    age = (at - datetime.fromisoformat(held["at"])).total_seconds()
                    if age < stale_after:
                        self.db.conn.execute("ROLLBACK")
                        return 0, held
                done = list(self.db.query(
                    "select max(rollback_id) as n from rollback_actions where release_id = ?",
                    [release_id]))
                number = int(done[0]["n"] or 0) + 1
                if rows:
                    number = max(number, int(rows[0]["rollback_id"]) + 1)
                self.db.table("rollback_claims").upsert(
                    {"release_id": release_id, "rollback_id": number, "user": user,
                     "at": at.isoformat()},
                    pk="release_id",
                )
                self.db.conn.execute("COMMIT")
            except BaseException:
                self.db.conn.execute("ROLLBACK")
                raise
        return number, None

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
        with self._tx():
            self.db.table("rollback_actions").upsert(
                {"release_id": release_id, "rollback_id": rollback_id, "action": action,
                 "outcome": outcome, "summary": default_redactor()(summary),
                 "details": default_redactor()(details), "at": at.isoformat()},
                pk=("release_id", "rollback_id", "action"),
            )

    def rollback_actions(self, release_id: int) -> list[dict[str, Any]]:
        """Every kept rollback action of a release, oldest rollback first."""
        return list(self.db.query(
            "select * from rollback_actions where release_id = ? order by rollback_id, at",
            [release_id]))
