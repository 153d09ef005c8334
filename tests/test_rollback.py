"""Rollback core against the Vercel and Supabase emulators, the sandbox staging app, real Redis,
real PostgreSQL with the real Supabase CLI, and the `release-bot rollback` CLI without Slack."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from bot.app import Runtime, build_rollbacks, build_runtime
from bot.chat.console import ConsoleChat
from bot.chat.rollback import link_text
from bot.config import Settings
from bot.report import release_json
from bot.rollback.model import (
    BACKUP,
    CACHE,
    DEPLOYMENT,
    SCHEMA,
    Choices,
    RollbackBusy,
    ticket_links,
)
from bot.runbook.model import Outcome, Release, ReleaseStatus, StepResult, utcnow
from bot.runbook.step import StepContext, StepDef
from bot.steps.registry import STEPS
from bot.store import Store
from sandbox.server import FAULTS_KEY, serve
from sandbox.services import PostgresServer, RedisServer
from sandbox.staging_app import StagingState
from sandbox.supabase_api import Backup, SupabaseState, create_supabase_app, iso_now
from sandbox.vercel import Deployment, VercelState, create_vercel_app
from tests.helpers import make_settings

VERCEL_TOKEN = "vercel-test-token"
SUPABASE_TOKEN = "sbp_sandbox_access_token"
REF = "abcdefghijklmnopqrst"
DOMAIN = "staging.pocket.test"
OLD_SHA, NEW_SHA = "a1" * 20, "b2" * 20
V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"


@dataclass
class Env:
    """Emulated Vercel and Supabase, the staging app, and two READY deployments."""

    vercel: VercelState
    vercel_app: web.Application
    vercel_url: str
    supabase: SupabaseState
    supabase_app: web.Application
    supabase_url: str
    staging_url: str
    old: Deployment
    new: Deployment

    def values(self, **overrides: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "VERCEL_API_URL": self.vercel_url,
            "VERCEL_TOKEN": VERCEL_TOKEN,
            "VERCEL_PROJECT_ID": "prj_pocket",
            "STAGING_URL": self.staging_url,
            "STAGING_DOMAIN": DOMAIN,
            "SUPABASE_API_URL": self.supabase_url,
            "SUPABASE_ACCESS_TOKEN": SUPABASE_TOKEN,
            "SUPABASE_PROJECT_REF": REF,
            "ISSUE_TRACKER_URL": "https://linear.app/acme/issue/{id}",
            "ENGINEERING_CHANNEL": "C0ENG",
            "HTTP_TIMEOUT_SECONDS": 2,
            "RESTORE_TIMEOUT_SECONDS": 30,
        }
        values.update(overrides)
        return values

    def settings(self, **overrides: Any) -> Settings:
        return make_settings(**self.values(**overrides))

    def serving(self) -> str | None:
        return self.vercel.aliases.get(DOMAIN)


@pytest.fixture
async def env(staging: tuple[str, StagingState]) -> AsyncIterator[Env]:
    ticks = itertools.count(1_750_000_000, 60)
    vstate = VercelState(token=VERCEL_TOKEN, clock=lambda: float(next(ticks)))
    project = vstate.add_project("pocket", project_id="prj_pocket")
    old = vstate.finish(vstate.create_deployment(project, sha=OLD_SHA, ref="main"))
    new = vstate.finish(vstate.create_deployment(project, sha=NEW_SHA, ref="main"))
    vstate.assign_alias(DOMAIN, new)
    sstate = SupabaseState(ref=REF, backups=[Backup(1, iso_now())], restore_unhealthy_polls=2)
    vapp, sapp = create_vercel_app(vstate), create_supabase_app(sstate)
    async with serve(vapp) as vurl, serve(sapp) as surl:
        yield Env(vstate, vapp, vurl, sstate, sapp, surl, staging[0], old, new)


def deploy_data(dep: Deployment) -> dict[str, Any]:
    return {"deployment_id": dep.id, "url": f"https://{dep.url}", "state": "READY",
            "inspector_url": f"https://vercel.com/acme/pocket/{dep.id[4:]}", "sha": dep.sha}


def add_release(store: Store, *, status: ReleaseStatus = ReleaseStatus.SUCCEEDED,
                dep: Deployment | None = None, migrations: list[str] | None = None,
                ref: str = "release/1.2.0", channel: str | None = None,
                thread_ts: str | None = None) -> Release:
    steps: dict[str, Any] = {}
    if dep is not None:
        steps["deploy"] = deploy_data(dep)
    if migrations:
        steps["migrations_push"] = {"applied": migrations}
    release = Release(environment="staging", ref=ref, started_by="U0ALICE", status=status,
                      git_sha=dep.sha if dep else None, channel=channel, thread_ts=thread_ts,
                      finished_at=None if status.active else utcnow(), data={"steps": steps})
    release.started_at = utcnow()
    store.create_release(release)
    return release


def make_runtime(settings: Settings, store: Store | None = None,
                 steps: dict[str, StepDef] | None = None) -> tuple[Runtime, ConsoleChat]:
    chat = ConsoleChat(out=io.StringIO())
    runtime = build_runtime(settings, chat, store=store or Store(":memory:"), steps=steps)
    runtime.rollbacks.poll_seconds = 0.01
    return runtime, chat


def posts(chat: ConsoleChat, channel: str, thread_ts: str | None = None) -> list[str]:
    return [s.message.text for s in chat.messages
            if s.kind in ("post", "reply") and s.channel == channel and s.thread_ts == thread_ts]


def outcome(report: Any, action: str) -> Outcome:
    found = report.result(action)
    assert found is not None, action
    return found.outcome


# --- pure pieces -------------------------------------------------------------------------------
def test_tickets_become_links_and_full_urls_pass_through() -> None:
    links = ticket_links(["ENG-1", "https://github.com/acme/app/issues/9", "X 2"],
                         "https://linear.app/acme/issue/{id}")
    assert [(link.label, link.url) for link in links] == [
        ("ENG-1", "https://linear.app/acme/issue/ENG-1"),
        ("https://github.com/acme/app/issues/9", "https://github.com/acme/app/issues/9"),
        ("X 2", ""),  # not an ID: stays text
    ]
    assert ticket_links(["ENG-1"], None)[0].url == ""


def test_tickets_can_never_hide_a_link_or_mention_anyone() -> None:
    hostile = ["https://evil.example/x|PP-142", "<https://evil.example|PP-1>", "<!channel>",
               "http://plain.example/1", "javascript:alert(1)", "PP-1>x"]
    links = ticket_links(hostile, "https://linear.app/acme/issue/{id}")
    assert all(link.url == "" for link in links)
    shown = ", ".join(link_text(link) for link in links)
    assert "<" not in shown and ">" not in shown  # no link, no mention can form
    assert link_text(ticket_links(["https://t.example/a?b=1&c=2"], None)[0]) == \
        "<https://t.example/a?b=1&amp;c=2>"


# --- the deployment ----------------------------------------------------------------------------
async def test_plan_names_the_last_successful_releases_deployment(env: Env) -> None:
    runtime, _ = make_runtime(env.settings())
    store = runtime.store
    add_release(store, dep=env.old)
    add_release(store, status=ReleaseStatus.FAILED, dep=None)  # failed before deploying
    current = add_release(store, dep=env.new, migrations=[V2, V3])
    rollbacks = runtime.rollbacks
    newest = rollbacks.resolve(None)
    assert newest is not None and newest.id == current.id
    plan = await rollbacks.plan(current, quick=True)
    assert plan.target is not None and plan.target.id == env.old.id
    assert plan.target.source == "release #1"
    assert plan.current is not None and plan.current.id == env.new.id
    assert plan.migrations == [V2, V3]
    assert "supabase migration down --last 2" in plan.schema_command
    full = await rollbacks.plan(current)
    assert full.complete and "point in time" in full.backups_text and "#1" in full.backups_text


async def test_revert_moves_the_alias_rechecks_records_and_announces(env: Env) -> None:
    runtime, chat = make_runtime(env.settings())
    store = runtime.store
    add_release(store, dep=env.old)
    current = add_release(store, dep=env.new, channel="C0REL")
    ts = await chat.post("C0REL", runtime.reporter._parent(runtime.reporter._thread(current)))
    current.thread_ts = ts
    store.save_release(current)
    assert env.serving() == env.new.id

    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="Coach answers are empty",
                                 tickets=["ENG-42", "https://github.com/acme/app/issues/7"]),
        "U0ALICE")

    assert env.serving() == env.old.id  # the alias really moved
    assert (DOMAIN, env.old.id) == env.vercel.alias_history[-1]
    assert outcome(report, DEPLOYMENT) == Outcome.OK
    assert [name for name, _ in report.checks] == ["smoke", "health"]
    assert all(c.outcome in (Outcome.OK, Outcome.WARN) for _, c in report.checks), report.checks
    stored = store.get_release(current.id or 0)
    assert stored is not None and stored.status == ReleaseStatus.ROLLED_BACK
    trigger = stored.fields["Rollback Trigger (if used)"]
    assert "Coach answers are empty" in trigger and "U0ALICE" in trigger and "ENG-42" in trigger
    assert "https://linear.app/acme/issue/ENG-42" in trigger
    shown = release_json(stored, full=True)
    assert shown["rollback"]["reason"] == "Coach answers are empty"
    assert shown["rollback"]["actions"][0]["action"] == "deployment"
    assert shown["rollback"]["serving_deployment"]["id"] == env.old.id
    actions = store.rollback_actions(current.id or 0)
    assert [a["action"] for a in actions] == ["deployment", "check:smoke", "check:health"]

    for text in (posts(chat, "C0ENG")[-1], posts(chat, "C0REL", ts)[-1]):
        assert "U0ALICE" in text and f"release #{current.id}" in text
        assert "Coach answers are empty" in text
        assert f"<https://{env.new.url}|{env.new.id}>" in text  # reverted
        assert f"<https://{env.old.url}|{env.old.id}>" in text  # now serving
        assert "<https://linear.app/acme/issue/ENG-42|ENG-42>" in text
        assert "<https://github.com/acme/app/issues/7>" in text  # a URL is shown as itself
        assert "rolled back" in text
    parent = chat.last_parent(ts)
    assert parent is not None and "Rolled back" in parent.text
    assert "release_rollback" not in json.dumps(parent.blocks)  # no more Roll back button


async def test_without_an_earlier_release_the_previous_ready_vercel_deployment_is_used(env: Env) -> None:
    runtime, _ = make_runtime(env.settings())
    current = add_release(runtime.store, dep=env.new)
    report = await runtime.rollbacks.run(current.id or 0, Choices(reason="bad"), "U1")
    assert outcome(report, DEPLOYMENT) == Outcome.OK
    assert report.serving is not None and report.serving.source == "Vercel"
    assert env.serving() == env.old.id


async def test_production_target_uses_vercels_rollback_with_the_reason(env: Env) -> None:
    project = env.vercel.projects["prj_pocket"]
    project.production_domains = ["pocket.example"]
    old = env.vercel.finish(env.vercel.create_deployment(project, sha=OLD_SHA, ref="main",
                                                         target="production"))
    new = env.vercel.finish(env.vercel.create_deployment(project, sha=NEW_SHA, ref="main",
                                                         target="production"))
    runtime, _ = make_runtime(env.settings(VERCEL_TARGET="production"))
    add_release(runtime.store, dep=old)
    current = add_release(runtime.store, dep=new)
    report = await runtime.rollbacks.run(current.id or 0, Choices(reason="prod broke"), "U1")
    assert outcome(report, DEPLOYMENT) == Outcome.OK
    assert env.vercel.promotions[-1]["kind"] == "rollback"
    assert env.vercel.promotions[-1]["deploymentId"] == old.id
    assert env.vercel.promotions[-1]["description"] == "prod broke"
    assert env.vercel.aliases["pocket.example"] == old.id


async def test_vercel_500_on_the_alias_fails_that_action_only(
        env: Env, redis_server: RedisServer) -> None:
    env.vercel_app[FAULTS_KEY].add(r"^POST /v2/deployments/.*/aliases$", 500, times=50)
    runtime, chat = make_runtime(env.settings(STAGING_REDIS_URL=redis_server.url))
    add_release(runtime.store, dep=env.old)
    current = add_release(runtime.store, dep=env.new, status=ReleaseStatus.FAILED)
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="r", cache=True), "U1")
    failed = report.result(DEPLOYMENT)
    assert failed is not None and failed.outcome == Outcome.FAIL
    assert "500" in failed.summary and "Vercel" in failed.summary
    assert outcome(report, CACHE) == Outcome.OK  # the next action still ran
    assert env.serving() == env.new.id
    stored = runtime.store.get_release(current.id or 0)
    assert stored is not None and stored.status == ReleaseStatus.FAILED  # not rolled back
    assert stored.data["rollback"]["status"] == "not_rolled_back"
    assert "r (by U1" in stored.fields["Rollback Trigger (if used)"]
    text = posts(chat, "C0ENG")[-1]
    assert ":x: *Revert the deployment*" in text and "Failed: Revert the deployment" in text
    assert ":white_check_mark: *Flush the staging Redis cache*" in text


async def test_no_target_anywhere_is_a_clear_failure(env: Env) -> None:
    runtime, _ = make_runtime(env.settings())
    current = add_release(runtime.store, dep=env.old)  # the oldest deployment: nothing before it
    report = await runtime.rollbacks.run(current.id or 0, Choices(reason="r"), "U1")
    failed = report.result(DEPLOYMENT)
    assert failed is not None and failed.outcome == Outcome.FAIL
    assert failed.summary.startswith("No deployment to go back to")


# --- backup restore --------------------------------------------------------------------------------
async def test_backup_restore_to_before_the_release_waits_for_a_healthy_database(env: Env) -> None:
    runtime, _ = make_runtime(env.settings())
    current = add_release(runtime.store, dep=env.new)
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="r", deployment=False, backup=True, confirm_ref=REF), "U1")
    restored = report.result(BACKUP)
    assert restored is not None
    assert restored.outcome == Outcome.OK, restored.summary
    assert env.supabase.restores[-1]["kind"] == "pitr"
    assert env.supabase.restores[-1]["recovery_time_target_unix"] == \
        int(current.started_at.timestamp()) - 1
    assert not env.supabase.recovering  # health was polled until the db came back
    assert report.rolled_back  # the deployment was not asked for


async def test_a_restore_that_never_visibly_starts_is_not_reported_as_done(env: Env) -> None:
    env.supabase.restore_unhealthy_polls = 0  # the database keeps answering healthy
    runtime, _ = make_runtime(env.settings(RESTORE_TIMEOUT_SECONDS=0.5))
    current = add_release(runtime.store, dep=env.new)
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="r", deployment=False, backup=True, confirm_ref=REF), "U1")
    restored = report.result(BACKUP)
    assert restored is not None and restored.outcome == Outcome.WARN
    assert "never showed it restoring" in restored.summary


@pytest.mark.parametrize("case", ["refused", "timeout", "wrong_ref", "no_pitr"])
async def test_backup_restore_failures(env: Env, case: str) -> None:
    confirm = REF
    values: dict[str, Any] = {}
    if case == "refused":
        env.supabase.refuse_restore = "A restore is already in progress"
    elif case == "timeout":
        env.supabase.restore_unhealthy_polls = 10_000
        values["RESTORE_TIMEOUT_SECONDS"] = 0.3
    elif case == "wrong_ref":
        confirm = "abcdefghijklmnopqrsx"
    else:
        env.supabase.pitr_enabled = False
    runtime, _ = make_runtime(env.settings(**values))
    current = add_release(runtime.store, dep=env.new)
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="r", deployment=False, backup=True, confirm_ref=confirm),
        "U1")
    result = report.result(BACKUP)
    assert result is not None and result.outcome == Outcome.FAIL
    expected = {
        "refused": "A restore is already in progress",
        "timeout": "not healthy after 0.3s (last: COMING_UP)",
        "wrong_ref": "did not match",
        "no_pitr": "point-in-time recovery is not enabled",
    }[case]
    assert expected in result.summary
    if case in ("wrong_ref", "no_pitr"):
        assert env.supabase.restores == []


# --- cache -------------------------------------------------------------------------------------
async def test_cache_flush_counts_keys_on_a_real_redis(env: Env, redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    await client.mset({f"k{i}": "v" for i in range(7)})
    await client.aclose()
    runtime, _ = make_runtime(env.settings(STAGING_REDIS_URL=redis_server.url))
    current = add_release(runtime.store, dep=env.new)
    plan = await runtime.rollbacks.plan(current)
    assert plan.redis_keys == 7 and "7 keys" in plan.redis_text
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="stale", deployment=False, cache=True), "U1")
    flushed = report.result(CACHE)
    assert flushed is not None and flushed.outcome == Outcome.OK
    assert flushed.data == {"keys_before": 7, "keys_after": 0}
    assert "7 keys before, 0 after" in flushed.summary


async def test_unreachable_redis_fails_the_flush_clearly(env: Env) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime, _ = make_runtime(env.settings(STAGING_REDIS_URL=f"redis://:pw-secret-9@127.0.0.1:{port}/0"))
    current = add_release(runtime.store, dep=env.new)
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="r", deployment=False, cache=True), "U1")
    result = report.result(CACHE)
    assert result is not None and result.outcome == Outcome.FAIL
    assert f"connection to 127.0.0.1:{port} refused" in result.summary
    assert "pw-secret-9" not in json.dumps(report.summary())
    # Only the flush was asked for and it failed: the release is not marked rolled back.
    assert not report.rolled_back
    assert runtime.store.get_release(current.id or 0).status != ReleaseStatus.ROLLED_BACK


# --- schema ------------------------------------------------------------------------------------
def write_migration(workdir: Path, version: str, name: str, sql: str) -> None:
    folder = workdir / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{version}_{name}.sql").write_text(sql)


async def test_schema_revert_with_the_real_cli_drops_the_releases_tables(
        env: Env, tmp_path: Path, postgres_server: PostgresServer, postgres_db: str,
        supabase_cli: Path) -> None:
    from bot.providers.supabase_cli import SupabaseCli

    database = urlsplit(postgres_db).path.lstrip("/")
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")
    write_migration(tmp_path, V2, "tags", "create table tags (id int);")
    write_migration(tmp_path, V3, "links", "create table links (id int);")
    pushed = await SupabaseCli(binary=supabase_cli, timeout=120).push(tmp_path, db_url=postgres_db)
    assert pushed.applied == [V1, V2, V3]
    runtime, chat = make_runtime(env.settings(
        APP_WORKSPACE=str(tmp_path), SUPABASE_DB_URL=postgres_db, SUPABASE_CLI=str(supabase_cli),
        COMMAND_TIMEOUT_SECONDS=120))
    current = add_release(runtime.store, dep=env.new, migrations=[V2, V3])
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="bad schema", deployment=False, schema=True), "U1")
    result = report.result(SCHEMA)
    assert result is not None
    assert result.outcome == Outcome.OK, result.summary
    assert result.data["reverted"] == [V2, V3]
    tables = postgres_server.query(
        "select tablename from pg_tables where schemaname = 'public' order by 1", database=database)
    assert [row[0] for row in tables] == ["notes"]
    history = postgres_server.query(
        "select version from supabase_migrations.schema_migrations order by 1", database=database)
    assert [row[0] for row in history] == [V1]
    assert f"Reverted migrations {V2}, {V3}" in posts(chat, "C0ENG")[-1]


async def test_schema_revert_cli_error_is_reported(env: Env, tmp_path: Path,
                                                   postgres_server: PostgresServer,
                                                   supabase_cli: Path) -> None:
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")
    wrong = postgres_server.url.replace(postgres_server.password, "not-the-password-4711")
    runtime, _ = make_runtime(env.settings(
        APP_WORKSPACE=str(tmp_path), SUPABASE_DB_URL=wrong, SUPABASE_CLI=str(supabase_cli),
        COMMAND_TIMEOUT_SECONDS=60))
    current = add_release(runtime.store, dep=env.new, migrations=[V1])
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="r", deployment=False, schema=True), "U1")
    result = report.result(SCHEMA)
    assert result is not None and result.outcome == Outcome.FAIL
    assert "supabase migration down --last 1` failed" in result.summary
    assert "password authentication failed" in result.summary
    assert "not-the-password-4711" not in json.dumps(report.summary()) + result.details


async def test_team_schema_command_runs_as_arguments_with_the_versions(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "called.json"
    script = tmp_path / "revert.py"
    script.write_text("import json, os, sys\n"
                      f"json.dump({{'argv': sys.argv[1:], 'env': os.environ['ROLLBACK_MIGRATIONS']}}, "
                      f"open({str(out)!r}, 'w'))\n")
    command = f"{sys.executable} {script} --last {{last}} 'a b; rm -rf /'"
    runtime, _ = make_runtime(env.settings(SCHEMA_ROLLBACK_COMMAND=command, APP_WORKSPACE=str(tmp_path)))
    current = add_release(runtime.store, dep=env.new, migrations=[V2, V3])
    plan = await runtime.rollbacks.plan(current, quick=True)
    assert plan.schema_command == f"`{command}`"
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="r", deployment=False, schema=True), "U1")
    assert outcome(report, SCHEMA) == Outcome.OK
    called = json.loads(out.read_text())
    assert called == {"argv": ["--last", "2", "a b; rm -rf /"], "env": f"{V2} {V3}"}

    failing = f"{sys.executable} -c 'import sys; print(\"boom\"); sys.exit(3)'"
    runtime, _ = make_runtime(env.settings(SCHEMA_ROLLBACK_COMMAND=failing))
    current = add_release(runtime.store, dep=env.new, migrations=[V2])
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="r", deployment=False, schema=True), "U1")
    result = report.result(SCHEMA)
    assert result is not None and result.outcome == Outcome.FAIL
    assert "exited with 3" in result.summary and "boom" in result.details


async def test_schema_with_no_recorded_migrations_is_skipped(env: Env) -> None:
    runtime, _ = make_runtime(env.settings())
    current = add_release(runtime.store, dep=env.new)
    report = await runtime.rollbacks.run(
        current.id or 0, Choices(reason="r", deployment=False, schema=True), "U1")
    assert outcome(report, SCHEMA) == Outcome.SKIPPED


async def test_a_second_rollback_adds_its_trigger_and_keeps_the_first(env: Env) -> None:
    runtime, _ = make_runtime(env.settings())
    current = add_release(runtime.store, dep=env.new)
    rollbacks = runtime.rollbacks
    await rollbacks.run(current.id or 0, Choices(reason="coach is empty", deployment=False,
                                                 schema=True), "U1")
    await rollbacks.run(current.id or 0, Choices(reason="still broken", deployment=False,
                                                 schema=True, tickets=["ENG-9"]), "U2")
    stored = runtime.store.get_release(current.id or 0)
    assert stored is not None
    lines = stored.fields["Rollback Trigger (if used)"].split("\n")
    assert len(lines) == 2
    assert lines[0].startswith("coach is empty (by U1")
    assert lines[1].startswith("still broken (by U2") and "ENG-9" in lines[1]
    assert stored.data["rollback_history"][0]["reason"] == "coach is empty"


# --- concurrency and running releases ----------------------------------------------------------
async def test_second_rollback_of_the_same_release_is_told_the_first_is_under_way(env: Env) -> None:
    env.supabase.restore_unhealthy_polls = 10_000
    runtime, _ = make_runtime(env.settings(RESTORE_TIMEOUT_SECONDS=1))
    current = add_release(runtime.store, dep=env.new)
    rollbacks = runtime.rollbacks
    first = asyncio.create_task(rollbacks.run(
        current.id or 0, Choices(reason="one", deployment=False, backup=True, confirm_ref=REF), "U1"))
    for _ in range(500):  # until the restore has started
        if env.supabase.restores:
            break
        await asyncio.sleep(0.01)
    assert "already under way" in (rollbacks.busy(current.id or 0) or "")
    with pytest.raises(RollbackBusy, match="already under way"):
        await rollbacks.run(current.id or 0, Choices(reason="two"), "U2")
    # Another process sharing the release log sees the claim too.
    other = build_rollbacks(runtime.settings, runtime.store, runtime.engine, runtime.chat,
                            runtime.redactor)
    with pytest.raises(RollbackBusy, match="by <@U1>"):
        await other.run(current.id or 0, Choices(reason="three"), "U3")
    await first
    assert rollbacks.busy(current.id or 0) is None
    again = await other.run(current.id or 0, Choices(reason="four", deployment=False, cache=True),
                            "U3")
    assert again.rollback_id == 2


BLOCKED = asyncio.Event()


async def _block(ctx: StepContext) -> StepResult:
    BLOCKED.set()
    await asyncio.sleep(3600)
    return StepResult.ok("never")


BLOCK = StepDef(name="rollback_test_block", title="Blocks until cancelled", run=_block,
                describe="test step for rollback tests", timeout=None)


async def test_rolling_back_a_running_release_cancels_it_first(env: Env, tmp_path: Path) -> None:
    runbook = tmp_path / "runbook.yml"
    runbook.write_text("name: t\nphases:\n  - name: validate\n    steps:\n"
                       "      - name: rollback_test_block\n")
    runtime, chat = make_runtime(env.settings(RUNBOOK_PATH=str(runbook), RELEASE_CHANNEL="C0REL"),
                                 steps={**STEPS, BLOCK.name: BLOCK})
    add_release(runtime.store, dep=env.old)
    BLOCKED.clear()
    release = await runtime.engine.start(ref="release/2", user="U0ALICE", channel="C0REL")
    await asyncio.wait_for(BLOCKED.wait(), 5)
    stored = runtime.store.get_release(release.id or 0)
    assert stored is not None
    stored.data.setdefault("steps", {})["deploy"] = deploy_data(env.new)
    runtime.store.save_release(stored)  # as if the deploy step had run in this release
    report = await runtime.rollbacks.run(release.id or 0, Choices(reason="on fire"), "U0BOB")
    assert report.cancelled_first
    assert not runtime.engine.running(release.id or 0)
    final = runtime.store.get_release(release.id or 0)
    assert final is not None and final.status == ReleaseStatus.ROLLED_BACK
    thread = posts(chat, "C0REL", final.thread_ts)
    assert any("still running, so <@U0BOB>'s rollback cancelled it first" in t for t in thread)
    assert "cancelled first" in thread[-1]


# --- the CLI, no Slack ----------------------------------------------------------------------------
def cli_env(monkeypatch: pytest.MonkeyPatch, env: Env, tmp_path: Path, **extra: Any) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    db = tmp_path / "log.db"
    for key, value in {**env.values(DATABASE_PATH=str(db)), **extra}.items():
        monkeypatch.setenv(key, str(value))
    for key in ("SLACK_BOT_TOKEN", "REDIS_URL", "RUNBOOK_PATH"):
        monkeypatch.delenv(key, raising=False)
    return db


async def test_cli_rolls_back_without_slack_and_log_show_has_it(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    db = cli_env(monkeypatch, env, tmp_path)
    store = Store(db)
    add_release(store, dep=env.old)
    current = add_release(store, dep=env.new)
    monkeypatch.setattr("bot.rollback_cli.interactive", lambda: False)
    code = await asyncio.to_thread(main, ["rollback", "--reason", "broken coach", "--ticket",
                                          "ENG-9,ENG-10", "--user", "oncall", "--yes"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert env.serving() == env.old.id
    assert f"Rollback of release #{current.id}" in out.out
    assert "ENG-10 (https://linear.app/acme/issue/ENG-10)" in out.out
    # Plain text, not Slack markup: no emoji codes, bold markers, <links> or <@mentions>
    assert not any(mark in out.out for mark in (":rewind:", "*Reason:*", "<http", "<@", "`"))
    assert "Reason: broken coach" in out.out and "by @oncall" in out.out
    assert env.old.id in out.out and env.new.id in out.out

    assert await asyncio.to_thread(main, ["log", "show", str(current.id), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "rolled_back"
    assert shown["rollback"]["by"] == "oncall" and shown["rollback"]["tickets"][1]["id"] == "ENG-10"
    assert "broken coach" in shown["fields"]["Rollback Trigger (if used)"]


async def test_cli_confirmations(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    db = cli_env(monkeypatch, env, tmp_path)
    store = Store(db)
    current = add_release(store, dep=env.new)
    monkeypatch.setattr("bot.rollback_cli.interactive", lambda: False)
    # A backup restore needs the project ref typed, even with --yes.
    code = await asyncio.to_thread(main, ["rollback", "--reason", "r", "--backup", "--yes",
                                          "--no-deployment"])
    assert code == 2 and f"--confirm-ref {REF}" in capsys.readouterr().err
    assert env.supabase.restores == []
    # Without --yes and no terminal: refused, nothing changed.
    assert await asyncio.to_thread(main, ["rollback", "--reason", "r"]) == 2
    assert "--yes" in capsys.readouterr().err
    # At a terminal: the prompts are asked and "no" changes nothing.
    answers = iter([REF, "no"])
    monkeypatch.setattr("bot.rollback_cli.interactive", lambda: True)
    monkeypatch.setattr("bot.rollback_cli.ask", lambda prompt: next(answers))
    code = await asyncio.to_thread(main, ["rollback", str(current.id), "--reason", "r", "--backup"])
    assert code == 2 and "Nothing was changed." in capsys.readouterr().out
    assert env.supabase.restores == [] and env.serving() == env.new.id
    # Typed right and confirmed: the restore runs, and the deployment goes back to the
    # previous READY one on Vercel (no earlier release in the log).
    answers = iter([REF, "yes"])
    code = await asyncio.to_thread(main, ["rollback", str(current.id), "--reason", "r", "--backup"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert env.supabase.restores and "✔ Restore a database backup" in out
    assert env.serving() == env.old.id


async def test_cli_outside_the_project_creates_no_database(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    db = cli_env(monkeypatch, env, tmp_path)
    code = await asyncio.to_thread(main, ["rollback", "--reason", "r", "--yes"])
    assert code == 2 and not db.exists()
    assert capsys.readouterr().err.startswith(f"release-bot: no release log at {db} ")


async def test_cli_refuses_while_another_rollback_holds_the_release(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    db = cli_env(monkeypatch, env, tmp_path)
    store = Store(db)
    current = add_release(store, dep=env.new)
    store.claim_rollback(current.id or 0, "U0SLACK", utcnow(), 3600)
    code = await asyncio.to_thread(main, ["rollback", "--reason", "r", "--yes"])
    assert code == 3
    assert "already under way" in capsys.readouterr().err
    assert env.serving() == env.new.id


async def test_console_command_rolls_back_the_newest_release_when_a_reason_is_given(env: Env) -> None:
    from bot.commands import Command
    from bot.console import ConsoleSession

    runtime, chat = make_runtime(env.settings())
    add_release(runtime.store, dep=env.old)
    current = add_release(runtime.store, dep=env.new)
    session = ConsoleSession(runtime, chat, user="U0ALICE", channel="console")
    await session.say("/release rollback")
    assert "needs a reason" in chat.messages[-1].message.text
    assert env.serving() == env.new.id
    await session.say("/release rollback coach is down")
    assert env.serving() == env.old.id
    stored = runtime.store.get_release(current.id or 0)
    assert stored is not None and stored.status == ReleaseStatus.ROLLED_BACK
    assert "coach is down" in posts(chat, "C0ENG")[-1]
    replies: list[str] = []

    async def reply(message: Any) -> None:
        replies.append(message.text)

    await runtime.service.run(Command("rollback", release_id=99), user="U1", channel="c",
                              reply=reply)
    assert replies == [":warning: Release #99 does not exist."]
