"""Releases and their steps in the release log: each write one transaction, reads newest first.

A release is one `releases` row: plain columns for what people query, and a compressed body
with its data and steps (`bot.store.body`). Writing a step rewrites its release's body inside
one BEGIN IMMEDIATE transaction, so steps saved at once (by threads or processes) save in turn.
Every body is packed against the newest preset dictionary; a succeeded release makes the next
one from its own body once the newest is `DICTIONARY_EVERY` releases old, so the dictionary
follows the runbook as it changes.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.runbook.model import Release, ReleaseStatus, StepRecord, utcnow
from bot.store import body
from bot.store.base import Database
from bot.store.rows import Row, iso, release_columns, release_data, release_from_row, step_entry

ACTIVE = (ReleaseStatus.RUNNING.value, ReleaseStatus.WAITING.value)
# a succeeded release this many releases newer than the newest dictionary makes the next one
# (each dictionary takes up to 32 KiB: about 0.15 KB a release at this pace)
DICTIONARY_EVERY = 200


class Releases(Database):
    """The `releases` table (the release-log port the engine writes through)."""

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
            self.db.execute("delete from decisions where release_id = ?", [release_id])
            self.db.execute("delete from releases where id = ?", [release_id])

    def save_release(self, release: Release) -> None:
        """Write the release (not its steps)."""
        self.save(release)

    def save_step(self, release: Release, record: StepRecord) -> None:
        """Write one step (not the release's data, which keeps the step's earlier copy)."""
        assert release.id is not None
        with self._immediate():
            stored = self.body_of(release.id)
            if stored is None:  # discarded meanwhile: nothing left to write to
                return
            steps = body.merge_steps(stored["steps"], [step_entry(record)])
            self._write(release.id, self.pack_body(release.id, None, stored["data"], steps))

    def save(self, release: Release, *records: StepRecord) -> None:
        """Write the release (columns and data) and the given steps in one transaction."""
        assert release.id is not None
        with self._immediate():
            stored = self.body_of(release.id)
            if stored is None:
                raise sqlite_utils.db.NotFoundError(f"no release #{release.id} in the log")
            steps = body.merge_steps(stored["steps"], [step_entry(record) for record in records])
            self._write(release.id, release_columns(release)
                        | self.pack_body(release.id, release.status, release_data(release), steps))

    def pack_body(self, release_id: int | None, status: ReleaseStatus | None, data: Any,
                  steps: list[dict[str, Any]]) -> dict[str, Any]:
        """The `body` and `body_dictionary` columns of a release with this `data` and these
        steps, packed against the newest dictionary; a release saved as succeeded first makes a
        new dictionary of its own body when the newest is `DICTIONARY_EVERY` releases old or
        there is none. Call it inside the write transaction that stores what it returns."""
        newest = self.db.execute("select id, made_from, dictionary from body_dictionaries "
                                 "order by id desc limit 1").fetchone()
        if (status is ReleaseStatus.SUCCEEDED and release_id is not None
                and (newest is None or release_id - newest[1] >= DICTIONARY_EVERY)):
            dictionary = body.dictionary_of(data, steps)
            made = self.db.execute("insert into body_dictionaries (made_from, made_at, dictionary) "
                                   "values (?, ?, ?)", [release_id, iso(utcnow()), dictionary])
            newest = (made.lastrowid, release_id, dictionary)
        if newest is None:
            return {"body": body.pack(data, steps), "body_dictionary": None}
        return {"body": body.pack(data, steps, newest[2]), "body_dictionary": newest[0]}

    def _insert(self, release: Release) -> None:
        steps = [step_entry(record) for record in release.steps]
        row = release_columns(release) | self.pack_body(None, release.status, release_data(release), steps)
        row.pop("id", None)
        table = self.db.table("releases")
        table.insert(row)
        release.id = int(table.last_pk or 0)

    def body_of(self, release_id: int) -> dict[str, Any] | None:
        """The stored body of a release, `{"v", "data", "steps"}` (None if there is no such
        release): what `pack_body` packed."""
        found = self.db.execute("select body, body_dictionary from releases where id = ?",
                                [release_id]).fetchone()
        if not found:
            return None
        return body.unpack(found[0], self._dictionaries([found[1]]).get(found[1]))

    def _dictionaries(self, ids: list[int | None]) -> dict[int, bytes]:
        """The dictionaries of these ids (None: no dictionary), in one read."""
        wanted = sorted({i for i in ids if i is not None})
        if not wanted:
            return {}
        marks = ",".join("?" for _ in wanted)
        found = dict(self.db.execute(f"select id, dictionary from body_dictionaries where id in ({marks})",  # noqa: S608
                                     wanted).fetchall())
        if missing := [i for i in wanted if i not in found]:
            raise LookupError(f"the release log lacks body dictionaries {missing}: the bodies "
                              "packed against them cannot be read")
        return found

    def _write(self, release_id: int, values: dict[str, Any]) -> None:
        values = {k: v for k, v in values.items() if k != "id"}
        marks = ", ".join(f'"{column}" = ?' for column in values)
        self.db.execute(f"update releases set {marks} where id = ?",  # noqa: S608
                        [*values.values(), release_id])

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
        cursor = self.db.conn.cursor()
        cursor.row_factory = sqlite3.Row  # rows read by column name, no dict built for each
        rows: list[Row] = cursor.execute(f"select * from releases {clause}", args).fetchall()  # noqa: S608
        dictionaries = self._dictionaries([row["body_dictionary"] for row in rows])
        return [release_from_row(row, results=results, dictionary=dictionaries.get(row["body_dictionary"]))
                for row in rows]
