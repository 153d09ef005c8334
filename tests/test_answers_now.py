"""Answers given inside the acknowledgement (`status`, `start --dry-run`) are remembered, and
never outlive what they were read from: a change to the release log, by this process or by any
other one on the same file, is in the next answer."""

from __future__ import annotations

from pathlib import Path

from bot.memo import Remembered
from bot.runbook.model import ReleaseStatus
from bot.store import Store
from tests.slack_e2e import SlackHarness
from tests.test_hostile_input import tiny


def test_an_answer_is_remembered_while_its_version_holds_and_not_longer_than_its_age() -> None:
    now = [0.0]
    computed: list[str] = []

    def compute(text: str) -> str:
        computed.append(text)
        return text

    memo: Remembered[str] = Remembered(size=2, max_age=5.0, clock=lambda: now[0])
    assert memo.get("a", 1, lambda: compute("a1")) == "a1"
    assert memo.get("a", 1, lambda: compute("again")) == "a1"
    assert memo.get("a", 2, lambda: compute("a2")) == "a2"  # the version changed
    now[0] = 4.9
    assert memo.get("a", 2, lambda: compute("again")) == "a2"
    now[0] = 5.0
    assert memo.get("a", 2, lambda: compute("a3")) == "a3"  # too old
    assert computed == ["a1", "a2", "a3"]
    # keys come from people's text: the map never grows past its size
    for key in "bcdefg":
        memo.get(key, 1, lambda: "x")
    assert len(memo._answers) <= 2


async def answer(slack: SlackHarness, text: str) -> str:
    reply, key = await slack.command(text)
    return str((await slack.answer(reply, key))["text"])


async def test_status_changes_as_soon_as_the_log_does_in_this_process_or_another(
        tmp_path: Path) -> None:
    async with SlackHarness(tmp_path, **tiny(tmp_path)) as slack:
        reply, _ = await slack.command("start main")
        assert reply.status_code == 200
        release = await slack.finished(1)
        assert release is not None and release.status == ReleaseStatus.SUCCEEDED
        first = await answer(slack, "status")
        assert "Succeeded" in first and await answer(slack, "status") == first
        # another process (the console, an operator's script) writes to the same log file;
        # this one looks for such writes at most every VERSION_RECHECK seconds
        slack.runtime.store.VERSION_RECHECK = 0.0
        other = Store(slack.settings.DATABASE_PATH)
        changed = other.get_release(1)
        assert changed is not None
        changed.status = ReleaseStatus.ROLLED_BACK
        other.save_release(changed)
        assert "Rolled back" in await answer(slack, "status")
        slack.runtime.store.VERSION_RECHECK = 3600.0  # from now on only its own writes count
        # and this process's own writes
        changed.status = ReleaseStatus.FAILED
        slack.runtime.store.save_release(changed)
        now = await answer(slack, "status")
        assert "Failed" in now and "Rolled back" not in now
        changed.status = ReleaseStatus.SUCCEEDED
        other.save_release(changed)
        assert "Failed" in await answer(slack, "status")  # not looked for again yet
        # a named release is remembered apart from the newest one
        assert "There is no release #7." in await answer(slack, "status 7")
        assert await answer(slack, "status") == now


async def test_a_started_server_keeps_its_long_lived_objects_out_of_full_collections(
        tmp_path: Path) -> None:
    import gc

    async with SlackHarness(tmp_path, **tiny(tmp_path)) as slack:
        assert gc.get_freeze_count() > 10_000  # modules, settings, the app: frozen once started
        reply, key = await slack.command("help")
        assert "Usage" in (await slack.answer(reply, key))["text"]
    assert gc.get_freeze_count() == 0  # and given back when it stops


async def test_a_log_in_memory_shared_with_the_replay_guard_still_counts_every_write() -> None:
    # ':memory:' (a supported setting): the guard writes its keys on the log's own connection
    from datetime import UTC, datetime

    from bot.replay import SqliteSeen
    from bot.runbook.model import TEMPLATE_FIELDS, Release, StepRecord

    store = Store()
    seen = SqliteSeen.beside(store.db.conn)
    assert await seen.add("sig:1")  # the first signed request reads the guard's table
    before = store.version()
    release = Release(environment="staging", ref="main", started_by="U1", channel="C1",
                      started_at=datetime(2026, 12, 6, tzinfo=UTC),
                      fields=dict.fromkeys(TEMPLATE_FIELDS, ""),
                      steps=[StepRecord(name="a", title="A", phase="p", position=0)])
    assert store.create_release_if_free(release) is None  # `/release start` in the same moment
    assert store.version() != before
    seen.flush()
    active = store.active_release("staging")
    assert active is not None and active.id == release.id  # the guard's commit kept the release
