"""The release log's schema: its tables, created and changed by sqlite-utils `Migrations`.

Migrations run in the order they are registered here, each once per database; a new change is a
new migration at the end, never an edit of one already applied to someone's log.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils
from sqlite_utils.migrations import Migrations

from bot.store import body, legacy
from bot.store.legacy import fold_steps

migrations = Migrations("release_bot")

RELEASE_COLUMNS: dict[str, type] = {
    "id": int, "environment": str, "ref": str, "git_sha": str, "started_by": str, "channel": str,
    "thread_ts": str, "status": str, "started_at": str, "finished_at": str, "notes": str,
    "release_date": str, "migrations_applied": str, "feature_highlights": str,
    "manual_tests": str, "monitoring_links": str, "rollback_trigger": str, "data": str,
}
STEP_COLUMNS: dict[str, type] = {
    "release_id": int, "name": str, "title": str, "phase": str, "position": int, "state": str,
    "outcome": str, "summary": str, "details": str, "links": str, "output_tail": str,
    "data": str, "gate": str, "started_at": str, "finished_at": str,
}


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    """Releases, their steps and the gate decisions."""
    db.table("releases").create(RELEASE_COLUMNS, pk="id")
    db.table("releases").create_index(["environment", "status"])
    db.table("steps").create(STEP_COLUMNS, pk=("release_id", "name"),
                             foreign_keys=[("release_id", "releases", "id")])
    db.table("decisions").create(
        {"release_id": int, "step": str, "gate_key": str, "action": str, "user": str, "at": str},
        pk=("release_id", "step", "gate_key"),
    )


@migrations()
def m002_rollbacks(db: sqlite_utils.Database) -> None:
    """Rollbacks: one row per action of each rollback, and the claim of a rollback under way."""
    db.table("rollback_actions").create(
        {"release_id": int, "rollback_id": int, "action": str, "outcome": str, "summary": str,
         "details": str, "at": str},
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


@migrations()
def m005_step_data_once(db: sqlite_utils.Database) -> None:
    """Each step's result data is kept once, in its step row: a release's `data["steps"]` held a
    copy of every one. A copy equal to its step row's `data` becomes null and its name is listed
    in `folded_steps` (read back from the row: `bot.store.legacy`); any other copy stays."""
    db.table("releases").add_column("folded_steps", str)
    last = 0
    while batch := db.execute("select id, data from releases where id > ? order by id limit 500",
                              [last]).fetchall():
        for release_id, text in batch:
            _keep_step_data_once(db, release_id, text)
        last = batch[-1][0]


def _keep_step_data_once(db: sqlite_utils.Database, release_id: int, text: str | None) -> None:
    """m005 for one release row."""
    if not text:
        return
    stored = dict(db.execute("select name, data from steps where release_id = ? and data is not null",
                             [release_id]).fetchall())
    columns = fold_steps(text, stored)
    if columns["folded_steps"]:
        db.execute("update releases set data = ?, folded_steps = ? where id = ?",
                   [columns["data"], columns["folded_steps"], release_id])


@migrations()
def m006_started_index(db: sqlite_utils.Database) -> None:
    """The releases of the last days (App Home's DORA window) read an index, not the environment."""
    db.table("releases").create_index(["environment", "started_at"], if_not_exists=True)


@migrations()
def m007_release_body(db: sqlite_utils.Database) -> None:
    """Each release's data and steps move into its `body` (`bot.store.body`: compressed JSON,
    about a quarter of their size in rows), field for field; the `steps` table and the `data`
    and `folded_steps` columns go. What people query stays in plain columns."""
    db.table("releases").add_column("body", bytes)
    last = 0
    while batch := db.execute("select id, data, folded_steps from releases where id > ? "
                              "order by id limit 500", [last]).fetchall():
        steps = _step_entries(db, [row[0] for row in batch])
        for release_id, data, folded in batch:
            entries = steps.get(release_id, [])
            db.execute("update releases set body = ? where id = ?",
                       [body.pack(legacy.release_data(data, folded, entries), entries), release_id])
        last = batch[-1][0]
    db.table("steps").drop()
    db.table("releases").transform(drop={"data", "folded_steps"})


@migrations()
def m008_body_dictionaries(db: sqlite_utils.Database) -> None:
    """Bodies are compressed against a preset dictionary: the uncompressed body of an earlier
    succeeded release (`bot.store.body`). Bodies already written keep theirs (none), as read."""
    db.execute("create table body_dictionaries (id integer primary key, made_from integer not null, "
               "made_at text not null, dictionary blob not null)")
    db.execute("alter table releases add column body_dictionary integer references body_dictionaries(id)")


def _step_entries(db: sqlite_utils.Database, ids: list[int]) -> dict[int, list[dict[str, object]]]:
    """m007: the steps of these releases as body entries, in the order the old reads gave them."""
    cursor = db.conn.cursor()
    cursor.row_factory = sqlite3.Row
    found: dict[int, list[dict[str, object]]] = {}
    sql = (f"select release_id, {legacy.STEP_COLUMNS} from steps "  # noqa: S608
           f"where release_id in ({','.join('?' for _ in ids)}) order by release_id, position")
    for row in cursor.execute(sql, ids):
        found.setdefault(row["release_id"], []).append(legacy.step_entry(row))
    return found
