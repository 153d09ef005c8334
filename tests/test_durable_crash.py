"""Crash tests: `kill -9` the real bot (and Litestream) during long steps, then Retry.

The runbook is the guide's prepare and deploy phases: the migration gate, `supabase db push`
(the real CLI against a real PostgreSQL), the GitHub merge, the Vercel deployment with its build
poll, and the build logs. The bot is killed twice, each time with its disk wiped (the log comes
back from the `file://` replica):

1. during `supabase db push`: the migration holds the push inside its transaction until the
   kill; the database then drops the dead client's session, so nothing was applied;
2. during the Vercel build poll: the deployment keeps building past the kill.

After each restart the log is intact and consistent (no step both running and finished), the
release is interrupted at the step that was running, and Retry continues from that step: the
migration is applied once, the branch merged once, and one deployment is made for the SHA.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bot.runbook.model import Release, ReleaseStatus, StepState
from sandbox.demo import RELEASE_REF, Sandbox
from sandbox.github import create_github_app
from sandbox.services import PostgresServer
from sandbox.staging_app import create_staging_app
from sandbox.vercel import NEVER, READY, BuildScript, create_vercel_app
from sandbox.workspace import create_workspace
from tests.bot_process import (
    ProcessHarness,
    approve,
    consistent,
    finished,
    press_retry,
    serve_cancelling,
)
from tests.helpers import migration_history

pytestmark = pytest.mark.timeout(600)

RUNBOOK = """
name: crash
phases:
  - name: prepare
    steps:
      - name: migrations_review
      - name: migrations_push
  - name: deploy
    steps:
      - name: merge
      - name: deploy
      - name: build_logs
"""
VERSION = "20250301000000"
# While the table `crash_hold` exists, applying this migration sleeps inside its transaction:
# the push is under way and has committed nothing when the bot is killed.
SLOW_MIGRATION = """create table public.reflections_mood (id int primary key, mood int);
do $$
begin
  if exists (select 1 from pg_tables where schemaname = 'public' and tablename = 'crash_hold') then
    perform pg_sleep(600);
  end if;
end
$$;
"""
APPROVER = "U0BOSS"


def sandbox_for(tmp_path: Path) -> Sandbox:
    """GitHub and Vercel emulators seeded from a workspace whose release brings the slow migration."""
    sandbox = Sandbox(tmp_path / "sandbox", io.StringIO())
    ws = create_workspace(tmp_path / "sandbox" / "workspace")
    ws.add_release_branch("1.2.0")
    ws.add_migration(RELEASE_REF, "reflections_mood", SLOW_MIGRATION, version=VERSION)
    sandbox.workspace = ws
    sandbox.seed_github(ws)
    sandbox.seed_vercel()
    sandbox.vercel.build_script = BuildScript(queued_polls=1, building_polls=1, outcome=NEVER)
    return sandbox


def bot_settings(sandbox: Sandbox, urls: dict[str, str], runbook: Path, db_url: str,
                 supabase_cli: Path, replica: str) -> dict[str, Any]:
    values = sandbox.settings_values(urls, runbook)
    for name in ("DATABASE_PATH", "RELEASE_CHANNEL", "ENGINEERING_CHANNEL", "SUPABASE_API_URL",
                 "SUPABASE_ACCESS_TOKEN", "SUPABASE_PROJECT_REF", "POSTHOG_HOST",
                 "POSTHOG_PERSONAL_API_KEY", "STAGING_REDIS_URL"):
        values.pop(name, None)
    values.update({"SUPABASE_DB_URL": db_url, "SUPABASE_CLI": supabase_cli,
                   "RELEASE_APPROVERS": APPROVER, "LITESTREAM_REPLICA_URL": replica,
                   "COMMAND_TIMEOUT_SECONDS": 300})
    return values


def others(database: str) -> str:
    """pg_stat_activity's sessions on the test's database other than the asking one."""
    return f"from pg_stat_activity where datname = '{database}' and pid <> pg_backend_pid()"


def sleeping_backends(server: PostgresServer, database: str) -> list[str]:
    rows = server.query(f"select pid {others(database)} and query ilike '%pg_sleep%'")
    return [row[0] for row in rows]


def drop_dead_sessions(server: PostgresServer, database: str) -> None:
    """What the server does when it notices the killed client: end its session (rolls back)."""
    server.query(f"select pg_terminate_backend(pid) {others(database)}")


def step_running(name: str) -> Any:
    return lambda r: r.step(name).state == StepState.RUNNING


async def crash(bot: ProcessHarness, replica: str, name: str) -> Release:
    """Once the replica holds release #1 in step `name`: kill -9, wipe the disk, restart."""
    await bot.replica_shows(replica, lambda s: (r := s.get_release(1)) is not None
                            and r.step(name).state == StepState.RUNNING, f"#1 in {name}")
    bot.kill9()
    bot.wipe_disk()
    await bot.stop_bot()
    await bot.start_bot()
    release = await bot.wait_release(1, finished, "interrupted after the restart")
    assert release.status == ReleaseStatus.INTERRUPTED, release.status
    assert release.step(name).state == StepState.INTERRUPTED
    consistent(release)
    return release


async def test_kill_9_during_the_push_and_the_build_poll_then_retry(
        tmp_path: Path, postgres_server: PostgresServer, postgres_db: str,
        supabase_cli: Path) -> None:
    from bot.providers.supabase_cli import SupabaseCli

    sandbox = sandbox_for(tmp_path)
    assert sandbox.workspace is not None
    await SupabaseCli(binary=supabase_cli, timeout=120).push(sandbox.workspace.app, db_url=postgres_db)
    database = postgres_db.rsplit("/", 1)[1].split("?")[0]
    main = migration_history(postgres_server, database)
    postgres_server.query("create table public.crash_hold (id int)", database=database)
    runbook = tmp_path / "runbook.yml"
    runbook.write_text(RUNBOOK)
    replica = f"file://{tmp_path / 'replica'}"
    github, vercel = sandbox.github, sandbox.vercel

    async with (serve_cancelling(create_github_app(github)) as github_url,
                serve_cancelling(create_vercel_app(vercel)) as vercel_url,
                serve_cancelling(create_staging_app(sandbox.staging)) as staging_url):
        urls = {"github": github_url, "vercel": vercel_url, "staging": staging_url,
                "posthog": "http://127.0.0.1:9", "supabase": "http://127.0.0.1:9"}
        settings = bot_settings(sandbox, urls, runbook, postgres_db, supabase_cli, replica)
        async with ProcessHarness(tmp_path, **settings) as bot:
            await bot.command(f"start {RELEASE_REF}", user=APPROVER)
            await approve(bot, 1, APPROVER)

            # --- 1. killed inside `supabase db push` ---------------------------------------
            await bot.wait_for(lambda: sleeping_backends(postgres_server, database), 120,
                               "the push applying the migration")
            await bot.wait_release(1, step_running("migrations_push"), "pushing")
            bot_pid = bot.proc.pid if bot.proc else 0
            before = await crash(bot, replica, "migrations_push")
            assert bot.proc is not None and bot.proc.pid != bot_pid
            drop_dead_sessions(postgres_server, database)
            postgres_server.query("drop table public.crash_hold", database=database)
            assert migration_history(postgres_server, database) == main  # the killed push committed nothing
            review = before.step("migrations_review")
            assert review.state == StepState.OK and review.result is not None
            assert review.result.summary.startswith(f"1 migration approved by <@{APPROVER}>")
            assert [before.step(n).state for n in ("merge", "deploy", "build_logs")] == [
                StepState.PENDING] * 3
            assert github.merges == []

            # Retry: from the push; the gate is not asked again.
            await press_retry(bot, before, APPROVER)
            deploying = await bot.wait_release(1, step_running("deploy"), "deploying after Retry")
            assert deploying.git_sha
            await bot.wait_for(lambda: [d for d in vercel.deployments.values()
                                        if d.sha == deploying.git_sha and d.polls >= 2], 60,
                               "the build poll")
            # --- 2. killed during the build poll --------------------------------------------
            polled = await crash(bot, replica, "deploy")
            assert polled.step("migrations_review").result == review.result  # not asked again
            pushed = polled.step("migrations_push")
            assert pushed.state == StepState.OK and pushed.result is not None
            assert pushed.result.data["applied"] == [VERSION]
            merged = polled.step("merge")
            assert merged.state == StepState.OK and polled.git_sha
            assert len(github.merges) == 1
            ours = [d for d in vercel.deployments.values() if d.sha == polled.git_sha]
            assert len(ours) == 1 and ours[0].state == "BUILDING"
            ours[0].script.outcome = READY  # the build finishes while the bot is down

            await press_retry(bot, polled, APPROVER)
            done = await bot.wait_release(1, finished, "finished after the second Retry", 180)
            assert done.status == ReleaseStatus.SUCCEEDED, [s.result for s in done.steps]
            consistent(done)
            assert done.step("merge").result == merged.result and len(github.merges) == 1
            assert [d.id for d in vercel.deployments.values() if d.sha == done.git_sha] == [ours[0].id]
            assert done.step("deploy").result is not None
            assert ours[0].id in str(done.step("deploy").result.model_dump())
            assert migration_history(postgres_server, database) == [*main, VERSION]
            rows = postgres_server.query("select count(*) from public.reflections_mood",
                                         database=database)
            assert rows == [["0"]]
