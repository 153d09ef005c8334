"""The knowledge base: releases and rollbacks committed to a real git repository and pushed to a
real bare remote; a push that fails is kept and lands with the next release; `log export`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError

from bot import kb as kb_module
from bot.app import build_runtime
from bot.chat.console import ConsoleChat
from bot.cli import main
from bot.kb import KnowledgeBase, add_retry_job, file_name
from bot.rollback.model import Choices
from bot.runbook.model import Release, ReleaseStatus, StepResult
from bot.runbook.step import StepContext
from bot.store import Store
from bot.telemetry import Reporters
from sandbox.workspace import run_git
from tests.helpers import make_settings
from tests.test_engine import SEQUENTIAL, make_engine, ok
from tests.test_rollback import Env, add_release, cli_env, env  # noqa: F401 - env is a fixture


def bare_remote(path: Path) -> Path:
    path.mkdir(parents=True)
    run_git(path, "init", "-q", "--bare", "-b", "main")
    return path


def remote_log(remote: Path) -> list[str]:
    return run_git(remote, "log", "--format=%s", "main").splitlines()


def remote_files(remote: Path) -> list[str]:
    return run_git(remote, "ls-tree", "-r", "--name-only", "main").splitlines()


def remote_text(remote: Path, path: str) -> str:
    return run_git(remote, "show", f"main:{path}")


def engine_with_kb(tmp_path: Path, remote: Path, **settings: Any) -> tuple[Any, Store, KnowledgeBase]:
    """The real engine with fake steps; the knowledge base sits beside the recording reporter."""
    engine, recorder, store = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL)
    values = {"KB_REPOSITORY": str(remote), "KB_CHECKOUT": str(tmp_path / "checkout"), **settings}
    found = KnowledgeBase.from_settings(make_settings(**values), store)
    assert found is not None
    engine.reporter = Reporters(recorder, found)
    return engine, store, found


async def release_once(engine: Any, ref: str = "main") -> Release:
    release = await engine.start(ref=ref, user="U0ALICE", channel="C1")
    return await engine.wait(release.id or 0)


async def test_a_finished_release_is_committed_and_pushed_as_the_guides_table(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path / "kb.git")
    engine, _store, kb = engine_with_kb(tmp_path, remote)
    done = await release_once(engine, ref="release/1.2.0")
    await kb.drain()
    assert done.status == ReleaseStatus.SUCCEEDED
    assert remote_log(remote) == ["Release #1 of release/1.2.0 to staging: succeeded"]
    name = f"releases/{file_name(done)}"
    assert remote_files(remote) == [name]
    text = remote_text(remote, name)
    assert text.startswith("# Release #1 · release/1.2.0 → staging · succeeded\n")
    assert "| Field | Notes |\n| ----- | ----- |\n| Release Date |" in text
    for field in ("Git SHA", "Migrations Applied", "Manual Tests", "Rollback Trigger (if used)"):
        assert f"\n| {field} |" in text
    assert "| a | ok | fine |" in text and "| c | ok | fine |" in text
    assert kb.last_error is None and await kb.pending() == 0


async def test_a_push_that_fails_never_fails_the_release_and_lands_with_the_next(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path / "kb.git")
    engine, _store, kb = engine_with_kb(tmp_path, remote, KB_PATH="audit/staging")
    await release_once(engine)
    await kb.drain()
    assert len(remote_log(remote)) == 1

    gone = remote.rename(tmp_path / "elsewhere.git")  # the remote disappears
    second = await release_once(engine)
    await kb.drain()
    assert second.status == ReleaseStatus.SUCCEEDED
    assert kb.last_error is not None and kb.last_error.startswith("git push failed: fatal:")
    assert await kb.pending() == 1
    assert len(run_git(gone, "log", "--format=%s", "main").splitlines()) == 1

    gone.rename(remote)  # back again: the next release pushes both
    third = await release_once(engine)
    await kb.drain()
    assert remote_log(remote) == [f"Release #{n} of main to staging: succeeded" for n in (3, 2, 1)]
    assert sorted(remote_files(remote)) == sorted(f"audit/staging/{file_name(r)}"
                                                  for r in (second, third, await_first(engine)))
    assert kb.last_error is None and await kb.pending() == 0


def await_first(engine: Any) -> Release:
    found = engine.store.get_release(1)
    assert found is not None
    return found


async def test_the_retry_job_pushes_what_a_failed_push_left(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path / "kb.git")
    engine, store, kb = engine_with_kb(tmp_path, remote)
    moved = remote.rename(tmp_path / "moved.git")
    await release_once(engine)
    await kb.drain()
    assert await kb.pending() == 1
    assert await kb.retry() is False  # still gone
    moved.rename(remote)
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.start(paused=True)
    try:
        add_retry_job(scheduler, store)
        add_retry_job(scheduler, store)  # added again: replaced, never duplicated
        job = scheduler.get_job("kb-retry", jobstore="kb")
        assert job is not None and len(scheduler.get_jobs()) == 1
        assert await job.func() is True
    finally:
        scheduler.shutdown(wait=False)
    assert remote_log(remote) == ["Release #1 of main to staging: succeeded"]


async def test_a_remote_that_moved_on_and_a_first_clone_that_failed_are_both_handled(
        tmp_path: Path) -> None:
    remote = tmp_path / "kb.git"  # does not exist yet: the first clone fails
    engine, _store, kb = engine_with_kb(tmp_path, remote)
    await release_once(engine)
    await kb.drain()
    assert await kb.pending() == 1
    bare_remote(remote)
    other = tmp_path / "someone"  # a person adds a page meanwhile
    run_git(tmp_path, "clone", "-q", str(remote), str(other))
    (other / "README.md").write_text("Release log of the team.\n")
    run_git(other, "add", "README.md")
    run_git(other, "commit", "-q", "-m", "Team readme")
    run_git(other, "push", "-q", "origin", "HEAD:main")
    await release_once(engine)
    await kb.drain()
    assert remote_log(remote) == ["Release #2 of main to staging: succeeded",
                                  "Release #1 of main to staging: succeeded", "Team readme"]
    assert await kb.pending() == 0


async def test_a_rollback_rewrites_the_release_file_with_its_trigger(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path / "kb.git")
    settings = make_settings(KB_REPOSITORY=str(remote), KB_CHECKOUT=str(tmp_path / "checkout"),
                             DATABASE_PATH=str(tmp_path / "log.db"))
    runtime = build_runtime(settings, ConsoleChat(out=io.StringIO()), store=Store(":memory:"))
    release = Release(environment="staging", ref="main", started_by="U0ALICE",
                      status=ReleaseStatus.SUCCEEDED, git_sha="ab" * 20)
    runtime.store.create_release(release)
    await runtime.rollbacks.run(release.id or 0, Choices(reason="coach times out",
                                                           deployment=False), "U0BOB")
    found = kb_module.for_store(runtime.store)
    assert found is not None
    await found.drain()
    assert remote_log(remote)[0].startswith("Rollback of release #1 of main (abababab) on staging by U0BOB")
    text = remote_text(remote, f"releases/{file_name(release)}")
    assert "| Rollback Trigger (if used) | coach times out (by U0BOB," in text


async def test_a_release_whose_step_prints_a_secret_is_written_redacted(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path / "kb.git")

    async def leaky(ctx: StepContext) -> StepResult:
        return StepResult.ok("connected to postgres://app:hunter2-pw@db.internal/app")

    engine, _recorder, store = make_engine({"a": leaky, "b": ok(), "c": ok()}, SEQUENTIAL)
    found = KnowledgeBase.from_settings(make_settings(
        KB_REPOSITORY=str(remote), KB_CHECKOUT=str(tmp_path / "c")), store)
    assert found is not None
    engine.reporter = Reporters(engine.reporter, found)
    done = await release_once(engine)
    await found.drain()
    text = remote_text(remote, f"releases/{file_name(done)}")
    assert "hunter2-pw" not in text and "db.internal" in text


def test_kb_path_outside_the_repository_is_refused_by_name(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("../etc", "/etc", "releases/../../x"):
        with pytest.raises(ValidationError, match="KB_PATH"):
            make_settings(KB_REPOSITORY="/tmp/x", KB_PATH=bad)
    assert KnowledgeBase.from_settings(make_settings()) is None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KB_PATH", "../outside")
    with pytest.raises(SystemExit) as stopped:  # load_settings names the setting and stops
        main(["log", "export"])
    assert stopped.value.code == 2
    assert "setting KB_PATH is invalid" in capsys.readouterr().err


# --- `release-bot log export` ------------------------------------------------------------------
@pytest.fixture
def logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    db = tmp_path / "log.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_PATH", str(db))
    store = Store(str(db))
    for day, ref in ((1, "old"), (5, "new"), (6, "newer")):
        release = Release(environment="staging", ref=ref, started_by="U1",
                          status=ReleaseStatus.SUCCEEDED, fields={"Manual Tests": "a | b"})
        release.started_at = release.started_at.replace(year=2026, month=12, day=day)
        store.create_release(release)
    return store


def test_log_export_json_csv_and_markdown_since_a_date(logged: Store, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    assert main(["log", "export", "--format", "json", "--since", "2026-12-05"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["ref"] for r in rows] == ["new", "newer"]
    assert rows[0]["fields"]["Manual Tests"] == "a | b" and "steps" in rows[0]

    assert main(["log", "export", "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["ref"] for r in table] == ["old", "new", "newer"]
    assert table[0]["Manual Tests"] == "a | b" and "Rollback Trigger (if used)" in table[0]

    out = tmp_path / "export.md"
    assert main(["log", "export", "--since", "2026-12-06T00:00:00", "--output", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Release #3 · newer → staging · succeeded")
    assert "| Manual Tests | a \\| b |" in text and text.count("# Release #") == 1


def test_log_export_with_a_bad_date_says_so(logged: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "export", "--since", "last tuesday"]) == 2
    assert "--since takes a date" in capsys.readouterr().err


async def test_a_rollback_from_the_command_line_lands_before_the_command_exits(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    remote = bare_remote(tmp_path / "kb.git")
    db = cli_env(monkeypatch, env, tmp_path, KB_REPOSITORY=str(remote),
                 KB_CHECKOUT=str(tmp_path / "checkout"))
    store = Store(str(db))
    add_release(store, dep=env.old)
    current = add_release(store, dep=env.new)
    monkeypatch.setattr("bot.rollback_cli.interactive", lambda: False)
    code = await asyncio.to_thread(main, ["rollback", "--reason", "broken coach", "--user", "oncall",
                                          "--yes"])
    assert code == 0
    assert remote_log(remote) == [f"Rollback of release #{current.id} of release/1.2.0 "
                                  f"({(current.git_sha or '')[:8]}) on staging by oncall: rolled_back"]
    text = remote_text(remote, f"releases/{file_name(current)}")
    assert "· rolled_back" in text and "broken coach (by oncall" in text


async def test_a_chat_reporter_that_fails_does_not_keep_the_release_out_of_the_knowledge_base(
        tmp_path: Path) -> None:
    remote = bare_remote(tmp_path / "kb.git")
    found = KnowledgeBase.from_settings(make_settings(KB_REPOSITORY=str(remote),
                                                      KB_CHECKOUT=str(tmp_path / "checkout")))
    assert found is not None

    class SlackDown:
        async def release_finished(self, release: Release) -> None:
            raise ConnectionError("slack is down")

    release = Release(id=7, environment="staging", ref="main", started_by="U1",
                      status=ReleaseStatus.SUCCEEDED)
    with pytest.raises(ConnectionError):  # the engine still hears the chat's failure
        await Reporters(SlackDown(), found).release_finished(release)
    await found.drain()
    assert remote_log(remote) == ["Release #7 of main to staging: succeeded"]
    with pytest.raises(AttributeError):
        Reporters(SlackDown()).__wrapped__  # noqa: B018 - Python's probes are not engine events


async def test_a_stopping_bot_finishes_the_page_it_was_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.slack_e2e import SlackHarness
    from tests.test_hostile_input import tiny

    remote = bare_remote(tmp_path / "kb.git")
    real_publish = KnowledgeBase.publish

    async def slow_publish(self: KnowledgeBase, release: Release, message: str) -> bool:
        await asyncio.sleep(1.0)  # still writing when the bot is told to stop
        return await real_publish(self, release, message)

    monkeypatch.setattr(KnowledgeBase, "publish", slow_publish)
    async with SlackHarness(tmp_path, **tiny(tmp_path, KB_REPOSITORY=str(remote),
                                             KB_CHECKOUT=str(tmp_path / "checkout"))) as slack:
        reply, _ = await slack.command("start main")
        assert reply.status_code == 200
        done = await slack.finished(1)
        assert done is not None and done.status == ReleaseStatus.SUCCEEDED
    # the harness has stopped the bot as `serve` does on SIGTERM: the page is on the remote
    assert remote_log(remote) == ["Release #1 of main to staging: succeeded"]


def test_a_release_page_ends_with_every_steps_whole_result() -> None:
    from bot.kb import release_markdown
    from bot.runbook.model import Link, StepRecord, StepResult, StepState

    release = Release(environment="staging", ref="main", started_by="U1", id=7,
                      status=ReleaseStatus.SUCCEEDED,
                      steps=[StepRecord(name="health", title="Health", phase="validate",
                                        state=StepState.OK, result=StepResult.ok(
                                            "Healthy", details="```\nsupabase  ok\n```",
                                            links=[Link(label="/api/health", url="https://s.example/h")])),
                             StepRecord(name="lint", title="Lint", phase="prepare", state=StepState.OK,
                                        result=StepResult.ok("clean"))])
    page = release_markdown(release)
    assert page.endswith("Step results:\n\n## Health (health): ok\n\n```\nsupabase  ok\n```\n"
                         "- /api/health: https://s.example/h\n")
    assert "## Lint" not in page  # a summary alone is already in the steps table
