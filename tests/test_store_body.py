"""The release body: a release saved step by step reads back as saved, listings agree with the
full read, and no secret lands in the file, not even inside a compressed body."""

from __future__ import annotations

import json
import sqlite3
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.redact import MASK
from bot.runbook.model import (
    TEMPLATE_FIELDS,
    Gate,
    GateAction,
    Link,
    Release,
    ReleaseStatus,
    StepRecord,
    StepResult,
    StepState,
)
from bot.store import Store

AT = datetime(2026, 12, 6, 3, 0, 0, 123456, tzinfo=UTC)
TOKEN = "xoxb-123456789012-abcdefghijklmnop"
DB_URL = "postgres://app:hunter2hunter2@db.example/x"


def release_of(phases: dict[str, list[str]]) -> Release:
    steps = [StepRecord(name=name, title=name.title(), phase=phase, position=position)
             for position, (phase, name) in enumerate((p, n) for p, names in phases.items() for n in names)]
    return Release(environment="staging", ref="release/1.2.0", started_by="U1", channel="C1",
                   started_at=AT, fields=dict.fromkeys(TEMPLATE_FIELDS, ""), steps=steps)


def run(record: StepRecord, minute: int) -> None:
    record.state, record.started_at = StepState.RUNNING, AT + timedelta(minutes=minute)


def finish(record: StepRecord, minute: int, **data: object) -> None:
    record.state, record.finished_at = StepState.OK, AT + timedelta(minutes=minute, seconds=30)
    record.result = StepResult.ok(f"{record.name} passed", details=f"```{record.name} table```",
                                  links=[Link(label="log", url=f"https://ci.example/{record.name}")],
                                  output_tail="last lines", data=dict(data))


def test_a_release_saved_step_by_step_reads_back_as_saved(tmp_path: Path) -> None:
    """The engine's writes one by one, the two checks of one phase saved alternately by two
    connections (two processes, or two threads of one), each rewriting the release's body: the
    read-back equals the release the engine holds."""
    path = tmp_path / "log.db"
    release = Store(path).create_release(release_of({"prepare": ["tests"],
                                                     "validate": ["health", "smoke"],
                                                     "finish": ["notes"]}))
    one, other = Store(path), Store(path)
    tests = release.step("tests")
    run(tests, 0)
    one.save_step(release, tests)
    finish(tests, 0, tested_sha="a" * 40, passed=5)
    release.data.setdefault("steps", {})["tests"] = tests.result.data  # type: ignore[union-attr]
    one.save(release, tests)
    health, smoke = release.step("health"), release.step("smoke")
    run(health, 1)
    one.save_step(release, health)
    run(smoke, 1)
    other.save_step(release, smoke)
    finish(health, 1, status="ok")
    one.save_step(release, health)
    finish(smoke, 2, serving_sha="b" * 40)
    other.save_step(release, smoke)
    release.data["steps"] |= {"health": {"status": "ok"}, "smoke": {"serving_sha": "b" * 40}}
    gate = release.step("notes")
    gate.state, gate.gate = StepState.WAITING, Gate(key="notes", prompt="Post the notes?",
                                                    actions=[GateAction(id="post", label="Post")])
    release.status = ReleaseStatus.WAITING
    other.save(release, gate)

    loaded = Store(path).get_release(release.id or 0)
    assert loaded is not None and loaded.model_dump() == release.model_dump()
    assert [s.state for s in loaded.steps] == [StepState.OK, StepState.OK, StepState.OK, StepState.WAITING]


def test_a_step_saved_for_a_release_discarded_meanwhile_writes_nothing(store: Store) -> None:
    release = store.create_release(release_of({"prepare": ["tests"]}))
    store.discard_release(release.id or 0)
    finish(release.step("tests"), 0)
    store.save_step(release, release.step("tests"))
    assert store.get_release(release.id or 0) is None
    assert store.db.execute("select count(*) from releases").fetchone()[0] == 0


def test_a_listing_builds_the_same_steps_as_the_full_read_from_the_body(store: Store) -> None:
    """Listings decompress each body and build its steps unvalidated, without results: names,
    titles, phases, places, states and times are those of the full read."""
    for n in range(3):
        release = store.create_release(release_of({"prepare": ["tests", "lint"], "validate": ["health"]}))
        for minute, record in enumerate(release.steps[: n + 1]):
            run(record, minute)
            finish(record, minute, n=n)
            store.save_step(release, record)
        release.status, release.finished_at = ReleaseStatus.SUCCEEDED, AT + timedelta(hours=n)
        store.save(release)
    full, light = store.list_releases(20, "staging"), store.release_summaries(20, "staging")
    assert [r.id for r in light] == [r.id for r in full] == [3, 2, 1]

    def shown(release: Release) -> list[tuple[object, ...]]:
        return [(s.name, s.title, s.phase, s.position, s.state, s.started_at, s.finished_at)
                for s in release.steps]

    for a, b in zip(light, full, strict=True):
        assert shown(a) == shown(b) and (a.status, a.finished_at, a.counts()) == (
            b.status, b.finished_at, b.counts())
        assert all(s.result is None for s in a.steps) and any(s.result for s in b.steps)


def test_no_secret_lands_in_the_file_not_even_inside_a_body(tmp_path: Path) -> None:
    """Free text with a token and a database URL, in every place a release keeps text: the
    file's bytes and every body, decompressed, hold the mask and never the secret."""
    path = tmp_path / "log.db"
    store = Store(path)
    release = release_of({"deploy": ["migrations_push"]})
    release.notes = f"token {TOKEN}"
    release.data = {"steps": {"migrations_push": {"note": f"pushed to {DB_URL}"}}, "sha": "c" * 40}
    record = release.step("migrations_push")
    record.state = StepState.FAIL
    record.result = StepResult.fail(f"push failed: {DB_URL}", details=f"```{TOKEN}```",
                                    output_tail=f"error: could not connect to {DB_URL}",
                                    data={"error": f"auth {TOKEN}", "tested_sha": "c" * 40})
    record.gate = Gate(key="retry", prompt=f"Retry against {DB_URL}?",
                       actions=[GateAction(id="retry", label="Retry")])
    store.create_release(release)
    store.save_step(release, record)
    release.status = ReleaseStatus.SUCCEEDED  # so its body becomes the log's preset dictionary too
    store.save(release, record)
    store.db.conn.close()

    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("log.db"))
    with sqlite3.connect(path) as conn:
        (dictionary,) = conn.execute("select dictionary from body_dictionaries").fetchone()
        bodies = [zlib.decompressobj(zdict=dictionary).decompress(blob).decode()
                  for (blob,) in conn.execute("select body from releases")]
    assert len(bodies) == 1 and json.loads(bodies[0])["v"] == 1
    for secret in (TOKEN, "hunter2hunter2"):
        assert secret.encode() not in raw
        assert all(secret not in text for text in [*bodies, dictionary.decode()])
    assert bodies[0].count(MASK) >= 6  # the texts are there, masked
    assert "c" * 40 in bodies[0]  # ids and SHAs stay as they are


def test_steps_saved_at_the_same_moment_by_threads_and_processes_are_all_kept(tmp_path: Path) -> None:
    # Steps of one phase run at once; each save rewrites the release's body, so two saves that
    # overlapped without BEGIN IMMEDIATE would lose one of them. Four processes and four threads,
    # each with its own connection, save their own step forty times, started together.
    import multiprocessing
    import threading

    path = tmp_path / "log.db"
    names = [f"s{i}" for i in range(8)]
    created = Store(path).create_release(release_of({"validate": names}))
    assert created.id is not None
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    procs = [context.Process(target=save_many, args=(str(path), created.id, name, start))
             for name in names[:4]]
    threads = [threading.Thread(target=save_many, args=(str(path), created.id, name, start))
               for name in names[4:]]
    for worker in [*procs, *threads]:
        worker.start()
    start.set()
    for worker in [*procs, *threads]:
        worker.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    read = Store(path).get_release(created.id)
    assert read is not None
    assert [(s.name, s.state, s.result.summary if s.result else None) for s in read.steps] == [
        (name, StepState.OK, f"{name} 39") for name in names]


def save_many(path: str, release_id: int, name: str, start: object) -> None:
    """Save step `name` of release `release_id` forty times (a process or thread's work)."""
    store = Store(path)
    release = store.get_release(release_id)
    assert release is not None
    record = release.step(name)
    assert record is not None
    start.wait(60)  # type: ignore[attr-defined]
    for i in range(40):
        record.state = StepState.RUNNING if i < 39 else StepState.OK
        record.result = StepResult.ok(f"{name} {i}", data={"i": i})
        store.save_step(release, record)
