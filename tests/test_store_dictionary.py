"""Release bodies compressed against a preset dictionary: an earlier succeeded release's own body.

Each release reads back exactly as written whichever dictionary it was packed against; a new
dictionary follows every `DICTIONARY_EVERY` releases, made only by a succeeded one; a missing or
wrong dictionary fails loudly; a failed save leaves none behind; and the README's recipe for
reading a body by hand, without the bot, still reads one.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.runbook.model import TEMPLATE_FIELDS, Link, Release, ReleaseStatus, StepRecord, StepResult, StepState
from bot.store import Store, body, releases

ROOT = Path(__file__).resolve().parents[1]
AT = datetime(2026, 12, 6, 3, 0, 0, 123456, tzinfo=UTC)
STEPS = ["telemetry_fresh", "tests", "lint", "deploy", "smoke", "health", "redis", "schema_current"]


def release_number(n: int, status: ReleaseStatus = ReleaseStatus.SUCCEEDED) -> Release:
    """The n-th release of one app: the same steps and tables, new SHAs, ids, times and counts."""
    sha = hashlib.sha256(f"release {n}".encode()).hexdigest()[:40]
    started = AT + timedelta(hours=n)
    steps = []
    for position, name in enumerate(STEPS):
        result = StepResult.ok(
            f"{name}: staging answered as expected for {sha[:7]}",
            details="\n".join(f"| {name} check {i} | ok | {(n * 7 + i) % 97} ms |" for i in range(10)),
            links=[Link(label="Vercel deployment", url=f"https://vercel.com/acme/app/dpl_{sha[:24]}")],
            data={"sha": sha, "deployment_id": f"dpl_{sha[:24]}", "ms": (n * 13 + position) % 500,
                  "checked": [f"{name}-item-{i}" for i in range(8)]})
        steps.append(StepRecord(name=name, title=name.replace("_", " ").title(), phase="checks",
                                position=position, state=StepState.OK, result=result,
                                started_at=started + timedelta(seconds=position),
                                finished_at=started + timedelta(seconds=position, milliseconds=n % 1000)))
    fields = dict.fromkeys(TEMPLATE_FIELDS, "") | {"Git SHA": sha}
    return Release(environment="staging", ref=f"release/1.{n}.0", git_sha=sha, started_by="U1",
                   channel="C1", status=status, started_at=started, fields=fields, steps=steps,
                   data={"steps": {s.name: s.result.data for s in steps if s.result}})


def write(store: Store, release: Release) -> Release:
    """As the engine writes a release: created running, then saved with its final status."""
    final = release.status
    release.status = ReleaseStatus.RUNNING
    store.create_release(release)
    release.status = final
    store.save(release, *release.steps)
    return release


def dictionary_rows(store: Store) -> list[tuple[int, int]]:
    found = store.db.execute("select id, made_from from body_dictionaries order by id")
    return [(row[0], row[1]) for row in found]


def body_row(store: Store, release_id: int) -> tuple[bytes, int | None]:
    found = store.db.execute("select body, body_dictionary from releases where id = ?",
                             [release_id]).fetchone()
    return found[0], found[1]


def test_a_succeeded_release_makes_the_dictionary_the_next_ones_are_packed_against(store: Store) -> None:
    first = write(store, release_number(1))
    assert dictionary_rows(store) == [(1, first.id)]
    later = [write(store, release_number(n)) for n in range(2, 6)]
    assert dictionary_rows(store) == [(1, first.id)]  # still young: no new one

    for release in [first, *later]:
        loaded = store.get_release(release.id or 0)
        assert loaded is not None and loaded.model_dump() == release.model_dump()
    listed = store.list_releases(10)
    assert [r.model_dump() for r in listed] == [r.model_dump() for r in reversed([first, *later])]

    blob, dictionary = body_row(store, later[-1].id or 0)
    assert dictionary == 1
    stored = body.unpack(blob, store.db.execute("select dictionary from body_dictionaries").fetchone()[0])
    alone = zlib.compress(body.dump(stored["data"], stored["steps"]), body.LEVEL)
    assert len(blob) * 2 < len(alone), (len(blob), len(alone))  # what is new, not all of it again


def test_a_new_dictionary_every_so_many_releases_and_only_from_a_succeeded_one(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(releases, "DICTIONARY_EVERY", 3)
    outcomes = [ReleaseStatus.FAILED, ReleaseStatus.SUCCEEDED, ReleaseStatus.SUCCEEDED,
                ReleaseStatus.SUCCEEDED, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED,
                ReleaseStatus.SUCCEEDED, ReleaseStatus.SUCCEEDED]
    written = [write(store, release_number(n, status)) for n, status in enumerate(outcomes, start=1)]
    # #1 failed: none yet; #2 makes the first; #3, #4 are younger than 3; #5 and #6 did not
    # succeed; #7 is the first succeeded one 3 or more after #2
    assert dictionary_rows(store) == [(1, 2), (2, 7)]
    assert [body_row(store, r.id or 0)[1] for r in written] == [None, 1, 1, 1, 1, 1, 2, 2]
    for release in written:
        loaded = store.get_release(release.id or 0)
        assert loaded is not None and loaded.model_dump() == release.model_dump()

    # a later save of a release already written repacks it against the newest dictionary
    store.save(written[2], *written[2].steps)
    assert body_row(store, written[2].id or 0)[1] == 2
    assert dictionary_rows(store) == [(1, 2), (2, 7)]  # and makes none: it is not 3 newer than #7
    loaded = store.get_release(written[2].id or 0)
    assert loaded is not None and loaded.model_dump() == written[2].model_dump()


def test_a_step_saved_while_running_is_packed_against_the_newest_dictionary(store: Store) -> None:
    write(store, release_number(1))
    running = release_number(2, ReleaseStatus.RUNNING)
    store.create_release(running)
    record = running.step("deploy")
    record.result = StepResult.fail("deploy failed: build error", details="```ERR```", data={"exit": 1})
    record.state = StepState.FAIL
    store.save_step(running, record)
    assert body_row(store, running.id or 0)[1] == 1
    loaded = store.get_release(running.id or 0)
    assert loaded is not None and loaded.step("deploy").result == record.result


def test_a_huge_body_makes_a_dictionary_of_what_zlib_can_use(store: Store) -> None:
    release = release_number(1)
    release.steps[0].result.output_tail = "x" * 100_000  # type: ignore[union-attr]
    write(store, release)
    (dictionary,) = store.db.execute("select dictionary from body_dictionaries").fetchone()
    stored = store.body_of(release.id or 0)
    assert stored is not None
    # zlib reads only a dictionary's last 32 KiB, so that is what is kept: the end of the body
    assert dictionary == body.dump(stored["data"], stored["steps"])[-body.WINDOW:]
    assert len(dictionary) == body.WINDOW
    loaded = store.get_release(release.id or 0)
    assert loaded is not None and loaded.model_dump() == release.model_dump()


def test_a_missing_or_wrong_dictionary_fails_loudly_and_never_misreads(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = Store(path)
    first, second = write(store, release_number(1)), write(store, release_number(2))
    store.db.conn.close()

    with sqlite3.connect(path) as conn:
        conn.execute("update body_dictionaries set dictionary = ?", [body.dump({"other": 1}, [])])
    with pytest.raises(zlib.error):
        Store(path).get_release(second.id or 0)

    with sqlite3.connect(path) as conn:
        conn.execute("delete from body_dictionaries")
    with pytest.raises(LookupError, match=r"lacks body dictionaries \[1\]"):
        Store(path).list_releases()
    with pytest.raises(LookupError, match=r"lacks body dictionaries \[1\]"):
        Store(path).get_release(first.id or 0)  # the release it was made from needs it too


def test_a_save_that_fails_leaves_no_dictionary_behind(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    release = release_number(1)
    final = release.status
    release.status = ReleaseStatus.RUNNING
    store.create_release(release)
    release.status = final

    def broken(release_id: int, values: dict[str, object]) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_write", broken)
    with pytest.raises(sqlite3.OperationalError):
        store.save(release, *release.steps)
    monkeypatch.undo()
    assert dictionary_rows(store) == []
    loaded = store.get_release(release.id or 0)
    assert loaded is not None and loaded.status is ReleaseStatus.RUNNING  # as it was before

    store.save(release, *release.steps)  # the retry makes it, once
    assert dictionary_rows(store) == [(1, release.id)]


def test_the_readme_recipe_reads_a_body_by_hand(tmp_path: Path) -> None:
    """The Python the README gives for reading a body without the bot, run as written (only the
    file name and the release id changed) on a log whose bodies use a dictionary."""
    path = tmp_path / "release-log.db"
    store = Store(path)
    write(store, release_number(1))
    second = write(store, release_number(2))
    store.db.conn.close()
    assert second.id == 2

    readme = (ROOT / "README.md").read_text()
    recipes = [block for block in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
               if "body_dictionaries" in block]
    assert len(recipes) == 1
    recipe = recipes[0].replace("releases.id = 42", f"releases.id = {second.id}")
    done = subprocess.run([sys.executable, "-c", recipe], cwd=tmp_path, capture_output=True, text=True,
                          check=True)
    shown = json.loads(done.stdout)
    assert shown["v"] == 1 and [s["name"] for s in shown["steps"]] == STEPS
    assert shown["steps"][0]["result"]["data"]["sha"] == second.git_sha


def test_a_new_log_uses_16k_pages_and_an_existing_one_keeps_its_own(tmp_path: Path) -> None:
    """Rows of 2-3 KB fill 16 KB pages and waste most of 4 KB ones; a log made before keeps the
    page size it was made with (SQLite cannot change it in WAL mode) and still works."""
    new = tmp_path / "new.db"
    Store(new).db.conn.close()
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("pragma page_size = 4096")
        conn.execute("pragma journal_mode = wal")
        conn.execute("create table before_the_bot (x)")
    store = Store(old)
    release = write(store, release_number(1))
    loaded = store.get_release(release.id or 0)
    assert loaded is not None and loaded.model_dump() == release.model_dump()
    store.db.conn.close()
    sizes = {}
    for path in (new, old):
        with sqlite3.connect(path) as conn:
            sizes[path.name] = conn.execute("pragma page_size").fetchone()[0]
    assert sizes == {"new.db": 16384, "old.db": 4096}
