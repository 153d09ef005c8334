"""Releases and their steps in the release log: written in one transaction, read newest first."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from bot.runbook.model import Release, ReleaseStatus, StepRecord
from bot.store.base import Database
from bot.store.rows import (
    SUMMARY_STEP_COLUMNS,
    fold_steps,
    iso,
    release_from_row,
    release_row,
    step_from_row,
    step_row,
    step_summary_from_row,
)

ACTIVE = (ReleaseStatus.RUNNING.value, ReleaseStatus.WAITING.value)


class Releases(Database):
    """The `releases` and `steps` tables (the release-log port the engine writes through)."""

    # --- writing ---------------------------------------------------------------------------
    def create_release(self, release: Release) -> Release:
        """Insert a release and its steps; assigns `release.id`."""
        with self._tx():
            self._insert(release)
        return release

    def create_release_if_free(self, release: Release) -> Release | None:
        """Insert `release` unless its environment has an active one; return that one if so."""
        with self._immediate():
            active = self.active_release(release.environment)
            if active is not None:
                return active
            self._insert(release)
        return None

    def discard_release(self, release_id: int) -> None:
        """Remove a release that never started (nothing was announced, no step ran)."""
        with self._tx():
            self.db.execute("delete from steps where release_id = ?", [release_id])
            self.db.execute("delete from decisions where release_id = ?", [release_id])
            self.db.execute("delete from releases where id = ?", [release_id])

    def save_release(self, release: Release) -> None:
        """Write the release row (not its steps)."""
        self.save(release)

    def save_step(self, release: Release, record: StepRecord) -> None:
        """Write one step row (not the release row, which keeps the step's earlier data)."""
        assert release.id is not None
        with self._tx():
            earlier = self._step_data(release.id, record.name)
            self._upsert_step(release.id, record)
            if earlier is not None and self._step_data(release.id, record.name) != earlier:
                self._pin_step_copy(release.id, record.name, earlier)

    def save(self, release: Release, *records: StepRecord) -> None:
        """Write the release row and the given step rows in one transaction."""
        assert release.id is not None
        with self._tx():
            for record in records:
                self._upsert_step(release.id, record)
            self.db.table("releases").update(release.id, self._folded_row(release))

    def _insert(self, release: Release) -> None:
        row = release_row(release)
        row.pop("id")
        table = self.db.table("releases")
        table.insert(row)
        release.id = int(table.last_pk or 0)
        for record in release.steps:
            self._upsert_step(release.id, record)
        table.update(release.id, self._fold(release.id, row["data"]))

    def _upsert_step(self, release_id: int, record: StepRecord) -> None:
        self.db.table("steps").upsert(step_row(release_id, record), pk=("release_id", "name"))

    def _folded_row(self, release: Release) -> dict[str, Any]:
        """The release row with its copies of step data folded into the step rows."""
        assert release.id is not None
        row = release_row(release)
        return row | self._fold(release.id, row["data"])

    def _fold(self, release_id: int, data_json: str) -> dict[str, str | None]:
        stored = dict(self.db.execute(
            "select name, data from steps where release_id = ? and data is not null",
            [release_id]).fetchall())
        return fold_steps(data_json, stored)

    def _step_data(self, release_id: int, name: str) -> str | None:
        found = self.db.execute("select data from steps where release_id = ? and name = ?",
                                [release_id, name]).fetchone()
        return found[0] if found else None

    def _pin_step_copy(self, release_id: int, name: str, earlier: str) -> None:
        """The release row's folded copy of a step's data keeps the value it stood for."""
        found = self.db.execute("select data, folded_steps from releases where id = ?",
                                [release_id]).fetchone()
        folded = json.loads(found[1]) if found and found[1] else []
        if name not in folded:
            return
        data = json.loads(found[0])
        data["steps"][name] = json.loads(earlier)
        folded.remove(name)
        self.db.execute("update releases set data = ?, folded_steps = ? where id = ?",
                        [json.dumps(data, default=str), json.dumps(folded) if folded else None, release_id])

    # --- reading ---------------------------------------------------------------------------
    def get_release(self, release_id: int) -> Release | None:
        """One release with its steps, or None."""
        found = self._select("where id = ?", [release_id])
        return found[0] if found else None

    def list_releases(self, limit: int = 20, environment: str | None = None, *,
                      results: bool = True) -> list[Release]:
        """Newest first (each step without its result when `results` is False)."""
        if environment:
            return self._select("where environment = ? order by id desc limit ?", [environment, limit],
                                results=results)
        return self._select("order by id desc limit ?", [limit], results=results)

    def release_summaries(self, limit: int = 20, environment: str | None = None) -> list[Release]:
        """Newest first, for listings (`log`, `/release log`, App Home): each release with its
        steps' names, states and times but not their results (`get_release` reads those), so a
        listing costs the same on any size of log and little on any machine."""
        return self.list_releases(limit, environment, results=False)

    def releases_since(self, environment: str, since: datetime) -> list[Release]:
        """The releases of `environment` started at or after `since`, newest first."""
        return self._select("where environment = ? and started_at >= ? order by started_at desc",
                            [environment, iso(since)])

    def active_release(self, environment: str) -> Release | None:
        """The running or waiting release of `environment`, if any."""
        # `+id`: read the few active rows through (environment, status) and sort them,
        # rather than walk the whole environment newest-first looking for one
        found = self._select("where environment = ? and status in (?, ?) order by +id desc limit 1",
                             [environment, *ACTIVE])
        return found[0] if found else None

    def latest_release(self, environment: str) -> Release | None:
        """The newest release of `environment`, if any."""
        found = self.list_releases(1, environment)
        return found[0] if found else None

    def releases_with_status(self, *statuses: ReleaseStatus) -> list[Release]:
        """Every release in one of `statuses`, oldest first."""
        marks = ",".join("?" for _ in statuses)
        return self._select(f"where status in ({marks}) order by id", [s.value for s in statuses])

    def last_successful_before(self, environment: str, release_id: int) -> Release | None:
        """The newest succeeded release of `environment` older than `release_id`."""
        found = self._select("where environment = ? and id < ? and status = ? order by id desc limit 1",
                             [environment, release_id, ReleaseStatus.SUCCEEDED.value])
        return found[0] if found else None

    def _select(self, clause: str, args: list[Any], *, results: bool = True) -> list[Release]:
        """The releases `select * from releases <clause>` finds, each with its steps (without
        their results when `results` is False: see `release_summaries`)."""
        rows = self._rows(f"select * from releases {clause}", args)  # noqa: S608
        steps = self._steps_of([row["id"] for row in rows], results)
        return [release_from_row(row, steps.get(row["id"], []), unfold=results) for row in rows]

    def _steps_of(self, ids: list[int], results: bool = True) -> dict[int, list[StepRecord]]:
        """The steps of these releases in runbook order, read in one query."""
        found: dict[int, list[StepRecord]] = {}
        marks = ",".join("?" for _ in ids)
        columns, build = ("*", step_from_row) if results else (SUMMARY_STEP_COLUMNS, step_summary_from_row)
        sql = (f"select {columns} from steps where release_id in ({marks}) "  # noqa: S608
               "order by release_id, position")
        for row in self._rows(sql, ids) if ids else []:
            found.setdefault(row["release_id"], []).append(build(row))
        return found

    def _rows(self, sql: str, args: list[Any]) -> list[sqlite3.Row]:
        """Rows read by column name (`sqlite3.Row`: no dict built for each)."""
        cursor = self.db.conn.cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(sql, args).fetchall()
