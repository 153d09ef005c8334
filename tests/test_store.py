"""The release log: round trip, template fields, decisions, migrations on an existing file."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from bot.runbook.model import (
    TEMPLATE_FIELDS,
    Decision,
    Gate,
    GateAction,
    Link,
    Release,
    ReleaseStatus,
    StepRecord,
    StepResult,
    StepState,
)
from bot.store import Store, legacy, migrations, rows


def sample() -> Release:
    release = Release(environment="staging", ref="release/1.2.0", started_by="U1", channel="C1")
    release.steps = [
        StepRecord(name="tests", title="Tests", phase="prepare", position=0),
        StepRecord(name="health", title="Health", phase="validate", position=1),
    ]
    return release


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    release = store.create_release(sample())
    assert release.id == 1
    release.git_sha = "abc123"
    release.status = ReleaseStatus.SUCCEEDED
    release.fields.update({name: f"value of {name}" for name in TEMPLATE_FIELDS if name != "Git SHA"})
    release.data["steps"] = {"tests": {"tested_sha": "abc123"}}
    record = release.step("health")
    record.state = StepState.WARN
    record.result = StepResult.warn("degraded", details="```table```",
                                    links=[Link(label="health", url="https://x/api/health")],
                                    data={"status": "degraded"})
    record.gate = Gate(key="k", prompt="?", actions=[GateAction(id="a", label="A")])
    store.save(release, record)

    loaded = Store(tmp_path / "log.db").get_release(1)
    assert loaded is not None
    assert loaded.git_sha == "abc123" and loaded.status == ReleaseStatus.SUCCEEDED
    for name in TEMPLATE_FIELDS:
        expected = "abc123" if name == "Git SHA" else f"value of {name}"
        assert loaded.fields[name] == expected
    health = loaded.step("health")
    assert health.state == StepState.WARN and health.result is not None
    assert health.result.links[0].url == "https://x/api/health"
    assert health.result.data == {"status": "degraded"}
    assert health.gate is not None and health.gate.actions[0].label == "A"
    assert loaded.data["steps"]["tests"]["tested_sha"] == "abc123"
    assert [s.name for s in loaded.steps] == ["tests", "health"]


def test_one_active_release_per_environment(store: Store) -> None:
    first = sample()
    assert store.create_release_if_free(first) is None
    blocked = store.create_release_if_free(sample())
    assert blocked is not None and blocked.id == first.id
    first.status = ReleaseStatus.FAILED
    store.save_release(first)
    assert store.create_release_if_free(sample()) is None
    assert [r.id for r in store.list_releases()] == [2, 1]  # newest first


def test_a_gate_is_decided_once(store: Store) -> None:
    release = store.create_release(sample())
    rid = release.id or 0
    assert store.record_decision(rid, "tests", "k", Decision(action="apply", user="U1"))
    assert not store.record_decision(rid, "tests", "k", Decision(action="skip", user="U2"))
    decision = store.get_decision(rid, "tests", "k")
    assert decision is not None and (decision.action, decision.user) == ("apply", "U1")


def test_schema_is_created_by_migrations_and_reapplying_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    Store(path)
    Store(path)
    db = sqlite_utils.Database(path)
    assert {"releases", "decisions"} <= set(db.table_names()) and "steps" not in db.table_names()
    columns = {c.name for c in db.table("releases").columns}
    assert {"release_date", "git_sha", "migrations_applied", "feature_highlights", "manual_tests",
            "monitoring_links", "rollback_trigger", "body"} <= columns
    assert not {"data", "folded_steps"} & columns  # in the body now


def test_last_successful_before(store: Store) -> None:
    for status in (ReleaseStatus.SUCCEEDED, ReleaseStatus.FAILED, ReleaseStatus.SUCCEEDED,
                   ReleaseStatus.FAILED):
        release = sample()
        release.status = status
        store.create_release(release)
    found = store.last_successful_before("staging", 4)
    assert found is not None and found.id == 3
    assert store.last_successful_before("staging", 1) is None


def test_free_text_is_stored_redacted(store: Store) -> None:
    release = sample()
    release.notes = "ships the fix; ping me, my token is xoxb-123456789012-abcdefghij"
    release.fields["Rollback Trigger (if used)"] = "db at postgres://app:hunter2hunter2@db/x"
    store.create_release(release)
    row = next(iter(store.db.query("select notes, rollback_trigger from releases")))
    assert "xoxb-1234" not in row["notes"] and "hunter2hunter2" not in row["rollback_trigger"]


def test_listing_and_active_queries_read_an_index_not_the_table() -> None:
    """On a long log the running release is found through (environment, status), and listings
    newest-first through (environment, id): no query walks every release (see bench/)."""
    store = Store(":memory:")

    def plan(sql: str, args: list[object]) -> str:
        return " ".join(r["detail"] for r in store.db.query("explain query plan " + sql, args))

    active = plan("select * from releases where environment = ? and status in (?, ?) "
                  "order by +id desc limit 1", ["staging", "running", "waiting"])
    assert "idx_releases_environment_status" in active
    listing = plan("select * from releases where environment = ? order by id desc limit ?",
                   ["staging", 20])
    assert "idx_releases_environment_id" in listing and "TEMP B-TREE" not in listing
    import inspect

    assert "order by +id desc" in inspect.getsource(Store.active_release)


def test_a_release_and_its_steps_are_written_in_one_transaction(tmp_path: Path) -> None:
    """`create_release` and `save` commit once each: a crash between two of sqlite-utils' own
    writes can never leave a release without some of its steps."""
    store = Store(tmp_path / "log.db")
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    release = Release(environment="staging", ref="main", started_by="U1",
                      steps=[StepRecord(name=f"s{i}", title=f"Step {i}", phase="p")
                             for i in range(17)])
    store.create_release(release)
    commits = [s for s in statements if s.strip().upper().startswith("COMMIT")]
    assert len(commits) == 1
    statements.clear()
    release.steps[0].state = StepState.OK
    store.save(release, release.steps[0], release.steps[1])
    assert sum(1 for s in statements if s.strip().upper().startswith("COMMIT")) == 1
    again = store.get_release(release.id or 0)
    assert again is not None and len(again.steps) == 17 and again.steps[0].state == StepState.OK


def finished() -> Release:
    """A finished release whose `data["steps"]` holds copies of its steps' result data, as the
    engine writes them, plus one copy written apart (a cancelled push) and one of no step."""
    release = sample()
    release.steps.append(StepRecord(name="migrations_push", title="Push", phase="deploy", position=2))
    for record, data in zip(release.steps, ({"tested_sha": "abc"}, {"status": "ok", "rows": [1, 2]},
                                            {"applied": ["v1"]}), strict=True):
        record.state = StepState.OK
        record.result = StepResult.ok(f"{record.name} done", details="all good", data=data,
                                      links=[Link(label="log", url=f"https://x/{record.name}")])
    release.data = {"required_steps": ["tests"], "workspace": {"sha": "abc"},
                    "steps": {"tests": release.steps[0].result.data,  # type: ignore[union-attr]
                              "health": release.steps[1].result.data,  # type: ignore[union-attr]
                              "migrations_push": {"applied": ["v1", "v2"], "cancelled": True},
                              "gone": {"kept": "as written"}}}
    release.status = ReleaseStatus.SUCCEEDED
    release.git_sha = "abc" * 13 + "a"
    release.fields = {name: f"{name} of this one" for name in TEMPLATE_FIELDS if name != "Git SHA"}
    release.fields["Git SHA"] = release.git_sha
    return release


def test_a_release_body_holds_its_data_and_steps_once_compressed(store: Store) -> None:
    """Data and steps live in the release's body, one compressed JSON document with its format
    marker; the copies in `data["steps"]` are kept as written (exact, and nearly free there)."""
    release = store.create_release(finished())
    blob = next(iter(store.db.query("select body from releases where id = ?", [release.id])))["body"]
    stored = json.loads(zlib.decompress(blob))
    assert stored["v"] == 1 and stored["data"] == release.data
    assert [s["name"] for s in stored["steps"]] == ["tests", "health", "migrations_push"]
    assert stored["steps"][1]["result"]["data"] == {"status": "ok", "rows": [1, 2]}
    assert len(blob) < len(json.dumps(stored)) / 2
    loaded = store.get_release(release.id or 0)
    assert loaded is not None and loaded.model_dump() == release.model_dump()
    assert list(loaded.data["steps"]) == ["tests", "health", "migrations_push", "gone"]


def test_a_step_saved_alone_leaves_the_release_rows_copy_as_it_was(store: Store) -> None:
    release = store.create_release(finished())
    before = release.model_dump()["data"]
    record = release.step("health")
    record.result = StepResult.warn("degraded", data={"status": "degraded"})
    store.save_step(release, record)  # e.g. another process took the release over meanwhile
    loaded = store.get_release(release.id or 0)
    assert loaded is not None and loaded.data == before
    assert loaded.step("health").result.data == {"status": "degraded"}  # type: ignore[union-attr]
    release.data["steps"]["health"] = record.result.data
    store.save(release, record)
    again = store.get_release(release.id or 0)
    assert again is not None and again.data["steps"]["health"] == {"status": "degraded"}


def old_layout_rows(number: int, release: Release) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`release` as a log before m007 held it: a `releases` row with its `data` (every copy in
    it) and one `steps` row per step, the JSON of each field as text."""
    release.id = number
    row = rows.release_columns(release) | {"data": json.dumps(release.data, default=str)}
    steps = []
    for record in release.steps:
        entry = rows.step_entry(record)
        result = entry.pop("result") or {}
        steps.append(entry | {"release_id": number, "outcome": result.get("outcome"),
                              "summary": result.get("summary"), "details": result.get("details"),
                              "links": json.dumps(result["links"]) if result else None,
                              "output_tail": result.get("output_tail"),
                              "data": json.dumps(result["data"]) if result else None,
                              "gate": json.dumps(entry["gate"]) if entry["gate"] else None})
    return row, steps


@pytest.mark.parametrize("written_before", ["m005_step_data_once", "m007_release_body"])
def test_the_migrations_keep_a_log_in_an_old_layout_whole(tmp_path: Path, written_before: str) -> None:
    """A log written before m005 (every step's data twice) or before m007 (step rows, copies
    folded: m005's layout) reads back field for field, and afterwards holds each release in one
    compressed body, with no `steps` table left."""
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(str(path))
    migrations.apply(db, stop_before=written_before)
    releases = [finished() for _ in range(3)]
    releases[2].steps[1].gate = Gate(key="k", prompt="Go?", actions=[GateAction(id="go", label="Go")])
    releases[2].steps[2].state, releases[2].steps[2].result = StepState.PENDING, None
    releases[2].steps[2].started_at = datetime(2026, 12, 6, 3, 2, 1, 123456, tzinfo=UTC)
    for number, release in enumerate(releases, start=1):
        release.git_sha = f"{number}" * 40
        release.fields = {name: f"{name} of #{number}" for name in TEMPLATE_FIELDS if name != "Git SHA"}
        release.fields["Git SHA"] = release.git_sha
        release.notes = f"release {number}"
        row, steps = old_layout_rows(number, release)
        if written_before == "m007_release_body":  # as the m005-era store wrote it
            row |= legacy.fold_steps(row["data"], {s["name"]: s["data"] for s in steps if s["data"]})
            assert "tests" in json.loads(row["folded_steps"])
        db.table("releases").insert(row)
        db.table("steps").insert_all(steps)
    db.close()

    store = Store(path)
    for release in releases:
        loaded = store.get_release(release.id or 0)
        assert loaded is not None and loaded.model_dump() == release.model_dump()
    assert [r.id for r in store.list_releases()] == [3, 2, 1]
    assert "steps" not in store.db.table_names()
    bodies = [json.loads(zlib.decompress(r["body"])) for r in store.db.query("select body from releases")]
    assert [b["data"] for b in bodies] == [r.data for r in releases]  # every copy filled back in


def test_the_releases_of_the_last_days_are_read_through_an_index() -> None:
    """App Home's DORA window: the releases started since a moment, newest first, found through
    (environment, started_at) on any size of log, not by reading every release with its steps."""
    store = Store(":memory:")
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    for days, environment in ((40, "staging"), (20, "staging"), (3, "staging"), (3, "production")):
        release = sample()
        release.environment = environment
        release.started_at = now - timedelta(days=days)
        store.create_release(release)
    found = store.releases_since("staging", now - timedelta(days=31))
    assert [(now - r.started_at).days for r in found] == [3, 20]
    assert all(r.steps for r in found)  # with their steps, as DORA reads the deploy step
    plan = " ".join(r["detail"] for r in store.db.query(
        "explain query plan select * from releases where environment = ? and started_at >= ? "
        "order by started_at desc", ["staging", "2026-11-05"]))
    assert "idx_releases_environment_started_at" in plan and "TEMP B-TREE" not in plan


def test_a_listing_reads_states_not_results_and_agrees_with_the_full_read(store: Store) -> None:
    """`log`, `/release log` and App Home list releases with their steps' states and times only;
    what they show (status, counts, skipped, duration) is the same as from the full read."""
    for n in range(3):
        release = sample()
        release.status = ReleaseStatus.SUCCEEDED
        release.finished_at = release.started_at + timedelta(minutes=n + 1)
        release.step("tests").state = StepState.OK
        release.step("tests").result = StepResult.ok("5 passed", details="jest: 5 passed")
        release.step("health").state = StepState.SKIPPED
        release.step("health").result = StepResult.skipped("no STAGING_URL")
        store.create_release(release)
    full = store.list_releases(20, "staging")
    light = store.release_summaries(20, "staging")
    assert [r.id for r in light] == [r.id for r in full] and len(light) == 3
    for a, b in zip(light, full, strict=True):
        assert (a.status, a.counts(), a.duration_seconds, a.git_sha) == (
            b.status, b.counts(), b.duration_seconds, b.git_sha)
        assert [(s.name, s.state, s.started_at) for s in a.steps] == [
            (s.name, s.state, s.started_at) for s in b.steps]
        assert all(s.result is None for s in a.steps) and any(s.result for s in b.steps)
    assert store.release_summaries(20, "production") == []
