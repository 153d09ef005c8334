"""A release that cannot do the work is refused before anything is posted or logged.

Required steps (the default runbook's `required: true`, and the migration steps once the ref
adds migrations) must be able to run; an unknown ref is refused; a runbook printed by
`check-config --runbook` is valid and says what each left-out step needs.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_runtime
from bot.chat.console import ConsoleChat
from bot.console import ConsoleSession
from bot.providers.refs import GitHubRefs, GitRefs
from bot.redact import Redactor
from bot.runbook.loader import DEFAULT_RUNBOOK, RunbookError, parse_runbook
from bot.runbook.model import Release, ReleaseStatus, RequiredWhen, StepState
from bot.runbook.readiness import runbook_for_now
from bot.steps.registry import STEPS
from sandbox.github import GitHubState, create_github_app
from sandbox.server import serve
from sandbox.workspace import Workspace
from tests.helpers import make_settings

MIGRATION = "create table public.moods (id bigint primary key);\n"


def session(tmp_path: Path, runbook: str | None = None, **values: Any) -> tuple[ConsoleSession, ConsoleChat]:
    if runbook is not None:
        path = tmp_path / "runbook.yml"
        path.write_text(runbook)
        values["RUNBOOK_PATH"] = str(path)
    chat = ConsoleChat(out=io.StringIO())
    runtime = build_runtime(make_settings(DATABASE_PATH=":memory:", **values), chat)
    return ConsoleSession(runtime, chat, user="U1", channel="C1"), chat


def posted(chat: ConsoleChat) -> list[str]:
    """Everything said in the channel (not to the requester alone)."""
    return [s.message.text for s in chat.messages if s.kind != "ephemeral"]


def test_default_runbook_requires_the_work_and_migrations_when_added() -> None:
    runbook = parse_runbook(DEFAULT_RUNBOOK.read_text(), STEPS)
    always = {s.name for _, s in runbook.enabled_steps() if s.always_required}
    when = {s.name: s.required_when for _, s in runbook.enabled_steps() if s.required_when}
    assert always == {"tests", "lint", "merge", "deploy", "smoke", "health"}
    assert set(when) == {"migrations_review", "migrations_push", "schema_current"}
    assert all(w == RequiredWhen(ref_adds="supabase/migrations") for w in when.values())


def test_required_and_skip_contradict() -> None:
    text = "phases: [{name: v, steps: [{name: smoke, required: true, skip: not today}]}]"
    with pytest.raises(RunbookError, match="`required` and `skip` contradict"):
        parse_runbook(text, STEPS)


async def test_no_settings_is_refused_naming_each_missing_setting(tmp_path: Path) -> None:
    s, chat = session(tmp_path, RUNBOOK_PATH=None)
    await s.say("/release start main")
    answer = chat.messages[-1]
    assert answer.kind == "ephemeral"
    text = answer.message.text
    assert "not started" in text and "required steps cannot run" in text
    for needed in ("`tests`", "`lint`", "`merge`", "`deploy`", "`smoke`", "`health`",
                   "APP_WORKSPACE", "GITHUB_TOKEN", "VERCEL_TOKEN", "STAGING_URL"):
        assert needed in text, needed
    assert "check-config --runbook" in text and "RUNBOOK_PATH" in text
    assert posted(chat) == []
    assert s.runtime.store.list_releases() == []


async def test_a_release_in_which_no_step_can_run_is_refused(tmp_path: Path) -> None:
    runbook = "phases: [{name: v, steps: [{name: smoke}, {name: redis}]}, " \
              "{name: r, always: true, steps: [{name: monitoring_links}]}]"
    s, chat = session(tmp_path, runbook)
    await s.say("/release start main")
    assert "no step of the runbook can run here" in chat.messages[-1].message.text
    assert posted(chat) == [] and s.runtime.store.list_releases() == []


REPORT_ONLY = """
phases:
  - name: report
    steps: [{name: monitoring_links}]
"""


async def test_unknown_ref_is_refused_before_anything_is_posted(
        tmp_path: Path, workspace: Workspace) -> None:
    s, chat = session(tmp_path, REPORT_ONLY, APP_WORKSPACE=str(workspace.app))
    await s.say("/release start release/does-not-exist")
    text = chat.messages[-1].message.text
    assert chat.messages[-1].kind == "ephemeral"
    assert "`release/does-not-exist` is not a branch, tag or commit" in text
    assert len(text.splitlines()) == 1
    assert posted(chat) == [] and s.runtime.store.list_releases() == []
    # A branch, a tag-less SHA of origin and `main` are all known.
    for ref in ("release/1.2.0", workspace.sha("release/1.2.0")[:12]):
        verdict = await s.runtime.service.readiness(ref)
        assert verdict.ref_problem is None, verdict.ref_problem
    await s.say("/release start main")
    release = s.runtime.store.latest_release("staging")
    assert release is not None
    assert (await s.runtime.engine.wait(release.id or 0)).status == ReleaseStatus.SUCCEEDED


MIGRATION_RUNBOOK = """
phases:
  - name: prepare
    steps:
      - name: migrations_push
        required: {ref_adds: supabase/migrations}
  - name: report
    steps: [{name: monitoring_links}]
"""


async def test_migration_steps_become_required_when_the_ref_adds_migrations(
        tmp_path: Path, workspace: Workspace) -> None:
    workspace.add_migration("release/2.0.0", "moods", MIGRATION, version="20250401000000")
    s, chat = session(tmp_path, MIGRATION_RUNBOOK, APP_WORKSPACE=str(workspace.app))
    await s.say("/release start release/2.0.0")
    text = chat.messages[-1].message.text
    assert "`migrations_push`" in text and "SUPABASE_DB_URL" in text
    assert "adds 1 file(s) under supabase/migrations/: 20250401000000_moods.sql" in text
    assert posted(chat) == [] and s.runtime.store.list_releases() == []

    # A ref without new migrations runs; the step that cannot run is skipped and counted apart.
    await s.say("/release start release/1.2.0")
    release = s.runtime.store.latest_release("staging")
    assert release is not None
    done = await s.runtime.engine.wait(release.id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED
    assert done.step("migrations_push").state == StepState.SKIPPED
    verdict = [text for text in posted(chat) if "Succeeded in" in text]
    assert verdict and "· 1 skipped" in verdict[-1]  # the watch's own line may follow it


async def test_git_refs_find_added_files_relative_to_the_staging_branch(workspace: Workspace) -> None:
    workspace.add_migration("release/2.0.0", "moods", MIGRATION, version="20250401000000")
    refs = GitRefs(workspace.app, Redactor())
    assert await refs.added_files("release/2.0.0", "main", "supabase/migrations/") == [
        "supabase/migrations/20250401000000_moods.sql"]
    assert await refs.added_files("release/1.2.0", "main", "supabase/migrations/") == []
    assert await refs.added_files("release/none", "main", "supabase/migrations/") is None


async def test_github_refs_answer_from_the_api() -> None:
    state = GitHubState(repo="acme/app")
    state.add_commit("main", "init")
    state.branch_from("release/2.0.0", "main")
    state.add_commit("release/2.0.0", "Add moods", added=["supabase/migrations/2_moods.sql",
                                                         "src/moods.ts"])
    async with serve(create_github_app(state)) as url:
        refs = GitHubRefs(make_settings(GITHUB_API_URL=url, GITHUB_TOKEN=state.token,
                                        GITHUB_REPOSITORY="acme/app"))
        assert await refs.missing_ref("release/2.0.0") is None
        assert "not a branch, tag or commit of acme/app" in (await refs.missing_ref("nope") or "")
        assert await refs.added_files("release/2.0.0", "main", "supabase/migrations/") == [
            "supabase/migrations/2_moods.sql"]


async def test_a_required_step_that_cannot_run_fails_rather_than_skips(tmp_path: Path) -> None:
    # Reached only when the pre-check is bypassed (the engine called directly, or settings
    # changed before a retry): the engine still never lets a required step pass as skipped.
    runbook = "phases: [{name: v, steps: [{name: smoke, required: true}, {name: redis}]}]"
    s, _ = session(tmp_path, runbook)
    release = await s.runtime.engine.start(ref="main", user="U1", channel="C1")
    done = await s.runtime.engine.wait(release.id or 0)
    assert done.status == ReleaseStatus.FAILED
    assert done.step("smoke").state == StepState.FAIL
    assert "Required, but cannot run: missing settings: STAGING_URL" in done.step("smoke").result.summary


def test_runbook_for_now_is_valid_and_names_what_left_out_steps_need(tmp_path: Path) -> None:
    registry = STEPS
    default = parse_runbook(DEFAULT_RUNBOOK.read_text(), registry)
    settings = make_settings(APP_WORKSPACE=str(tmp_path), STAGING_URL="https://staging.example")
    text = runbook_for_now(default, registry, settings, "default", refs_known=True)
    runbook = parse_runbook(text, registry)
    kept = {s.name: s for _, s in runbook.enabled_steps()}
    assert {"tests", "lint", "smoke", "health", "monitoring_links"} <= set(kept)
    assert kept["tests"].always_required and kept["smoke"].always_required
    # Conditional steps stay while added files can be looked up, so migrations are still guarded.
    assert kept["migrations_push"].required_when is not None
    for name in ("merge", "deploy", "redis", "telemetry_fresh"):
        assert name not in kept
    assert "- name: merge   left out (required there): set GITHUB_TOKEN, GITHUB_REPOSITORY" in text
    assert "- name: redis   left out: set STAGING_REDIS_URL" in text
    blind = runbook_for_now(default, registry, make_settings(STAGING_URL="https://s.example"),
                            "default", refs_known=False)
    assert "migrations_push" not in {s.name for _, s in parse_runbook(blind, registry).enabled_steps()}


async def test_a_busy_environment_is_answered_before_git_is_asked(
        tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    # The running release may be fetching in APP_WORKSPACE; a second start must not fetch there.
    s, chat = session(tmp_path, REPORT_ONLY, APP_WORKSPACE=str(workspace.app))
    s.runtime.store.create_release(Release(environment="staging", ref="release/1.1.0",
                                           started_by="U2", status=ReleaseStatus.WAITING))

    def no_git(*args: object) -> None:
        raise AssertionError("git was asked while another release holds the environment")

    monkeypatch.setattr("bot.service.ref_source", no_git)
    await s.say("/release start release/1.2.0")
    assert "Release #1 (release/1.1.0) is still waiting" in chat.messages[-1].message.text
    assert len(s.runtime.store.list_releases()) == 1
