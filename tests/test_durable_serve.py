"""The release log survives the machine: the real `release-bot serve` under the real Litestream.

One scenario shares the bot's starts: a `file://` replica, the Slack emulator with signed
requests, the sandbox staging app, a real PostgreSQL as staging's database and the real
Supabase CLI behind the migration gate.

1. Release #1 passes the gate and succeeds. Release #2 hangs in its smoke check; while it runs,
   `log backup` writes a copy that opens and matches, and a second `serve` on the same log is
   refused with one line naming the holder. Then `kill -9` takes the process group (Litestream
   included) and the disk is wiped.
2. The restarted bot restores the log: #1 is back with its steps, fields and gate decision;
   #2 is interrupted and offers Retry. Retry finishes #2 from the smoke check without pushing
   the migrations again. Release #3 waits at its gate; `kill -9` and a wiped disk again.
3. The third start restores everything: #3 waits again (the gate is asked again) and its
   approval applies its one migration once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.runbook.model import ReleaseStatus, StepState
from sandbox.server import CALLS_KEY, FAULTS_KEY
from sandbox.services import PostgresServer
from sandbox.staging_app import StagingState, create_staging_app
from sandbox.workspace import Workspace
from tests.bot_process import (
    REPO,
    ProcessHarness,
    approve,
    bot_env,
    consistent,
    finished,
    free_port,
    press_retry,
    serve_cancelling,
    serve_command,
    wait_gate,
)
from tests.helpers import migration_history
from tests.test_migrations_gate_slack import BRANCH, MAIN, V4, V5, release_workspace

pytestmark = pytest.mark.timeout(600)

RUNBOOK = """
name: durable
phases:
  - name: prepare
    steps:
      - name: migrations_review
      - name: migrations_push
  - name: validate
    steps:
      - name: smoke
      - name: health
"""
NEXT, V6 = "release/1.3.0", "20250301000000"  # BRANCH brings V4 and V5 (release_workspace)
APPROVER = "U0BOSS"


@pytest.fixture
async def workspace_db(tmp_path: Path, postgres_server: PostgresServer, postgres_db: str,
                       supabase_cli: Path) -> tuple[Workspace, PostgresServer, str, str]:
    """A workspace: release/1.2.0 brings two migrations, release/1.3.0 one more."""
    ws = await release_workspace(tmp_path, postgres_db, supabase_cli)
    ws.add_migration(NEXT, "add_notes", "create table public.notes (id int primary key);\n",
                     version=V6, base=BRANCH)
    return ws, postgres_server, urlsplit(postgres_db).path.lstrip("/"), postgres_db


async def log_backup(bot: ProcessHarness, target: Path) -> subprocess.CompletedProcess[str]:
    """`release-bot log backup PATH` as a person runs it next to the serving bot."""
    env = bot_env({"DATABASE_PATH": str(bot.db_path)})
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot.cli", "log", "backup", str(target)],
        env=env, cwd=bot.tmp_path, capture_output=True, text=True, timeout=60, check=False)


def second_serve(bot: ProcessHarness) -> subprocess.CompletedProcess[str]:
    return subprocess.run(serve_command(free_port()), env=bot.env(), cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_release_log_survives_kill_9_and_a_wiped_disk(
        tmp_path: Path, workspace_db: tuple[Workspace, PostgresServer, str, str],
        supabase_cli: Path) -> None:
    ws, server, database, db_url = workspace_db
    replica = f"file://{tmp_path / 'replica'}"
    runbook = tmp_path / "runbook.yml"
    runbook.write_text(RUNBOOK)
    state = StagingState()
    staging_app = create_staging_app(state)
    async with serve_cancelling(staging_app) as staging_url:
        settings = {"RUNBOOK_PATH": runbook, "APP_WORKSPACE": ws.app, "SUPABASE_DB_URL": db_url,
                    "SUPABASE_CLI": supabase_cli, "RELEASE_APPROVERS": APPROVER,
                    "COMMAND_TIMEOUT_SECONDS": 120, "STAGING_URL": staging_url,
                    "HTTP_TIMEOUT_SECONDS": 110,  # the hung smoke request outlasts the kill
                    "LITESTREAM_REPLICA_URL": replica}
        async with ProcessHarness(tmp_path, **settings) as bot:
            assert "replicating the release log" in bot.output()

            # --- 1. a finished release, then one killed in the middle of a step ---------------
            await bot.command(f"start {BRANCH}", user=APPROVER)
            await approve(bot, 1, APPROVER)
            one = await bot.wait_release(1, finished, "finished", timeout=180)
            assert one.status == ReleaseStatus.SUCCEEDED, [s.result for s in one.steps]
            assert migration_history(server, database) == [*MAIN, V4, V5]

            staging_app[FAULTS_KEY].add(r"^GET /$", status=0, delay=600)  # smoke hangs until the kill
            calls = staging_app[CALLS_KEY]
            await bot.command(f"start {BRANCH}", user=APPROVER)
            await bot.wait_for(lambda: any(c["path"] == "/" for c in calls), 120, "the smoke request")
            two = await bot.wait_release(2, lambda r: r.step("smoke").state == StepState.RUNNING,
                                         "smoke running")
            assert two.status == ReleaseStatus.RUNNING

            # `log backup` while the release runs: a copy that opens and matches.
            copy = tmp_path / "backups" / "copy.db"
            done = await log_backup(bot, copy)
            assert done.returncode == 0, done.stderr
            assert "backed up 2 releases" in done.stdout
            for release_id in (1, 2):
                assert bot.release(release_id, copy) == bot.release(release_id)
            again = await log_backup(bot, copy)  # never overwrites a file
            assert again.returncode == 1 and "already exists" in again.stderr

            # A second server on the same log is refused, naming the holder.
            refused = await asyncio.to_thread(second_serve, bot)
            assert refused.returncode == 3, refused.stderr
            line = refused.stderr.strip()
            assert len(line.splitlines()) == 1, line
            assert f"pid {bot.proc.pid if bot.proc else '?'} on " in line
            assert "release-bot serve --host 127.0.0.1" in line and str(bot.db_path) in line

            await bot.replica_shows(replica, lambda s: (r := s.get_release(2)) is not None
                                    and r.step("smoke").state == StepState.RUNNING,
                                    "release #2 in its smoke step")
            bot.kill9()
            bot.wipe_disk()
            assert not bot.db_path.exists()

            # --- 2. restored: #1 intact, #2 interrupted with Retry ----------------------------
            await bot.stop_bot()
            await bot.start_bot()
            assert "restored the release log" in bot.output()
            restored = bot.release(1)
            assert restored is not None
            assert restored.model_dump() == one.model_dump()
            assert restored.fields["Migrations Applied"] == f"{V4} add_journal, {V5} add_tags"
            with bot.store() as store:
                decision = store.get_decision(1, "migrations_review", f"apply-{V4}-{V5}")
            assert decision is not None and decision.user == APPROVER
            two = await bot.wait_release(2, finished, "interrupted")
            assert two.status == ReleaseStatus.INTERRUPTED
            assert two.step("smoke").state == StepState.INTERRUPTED
            consistent(two)
            assert not any(s.state == StepState.RUNNING for s in two.steps)
            assert two.step("migrations_push").state == StepState.OK
            pushed = two.step("migrations_push").result
            await press_retry(bot, two, APPROVER)
            two = await bot.wait_release(2, lambda r: r.status == ReleaseStatus.SUCCEEDED,
                                         "succeeded after Retry")
            assert two.step("migrations_push").result == pushed  # not pushed a second time
            assert migration_history(server, database) == [*MAIN, V4, V5]
            assert sum(c["path"] == "/" for c in calls) >= 2  # smoke ran again

            # --- 3. a release waiting at its gate survives a second crash ---------------------
            await bot.command(f"start {NEXT}", user=APPROVER)
            await wait_gate(bot, 3, 1)
            await bot.replica_shows(replica, lambda s: (r := s.get_release(3)) is not None
                                    and r.status == ReleaseStatus.WAITING
                                    and (t := s.get_release(2)) is not None
                                    and t.status == ReleaseStatus.SUCCEEDED,
                                    "#2 succeeded and #3 waiting")
            bot.kill9()
            bot.wipe_disk()
            await bot.stop_bot()
            await bot.start_bot()
            assert bot.release(2) == two and bot.release(1) == one
            await wait_gate(bot, 3, 2)  # resumed, not interrupted: the gate is asked again
            three = bot.release(3)
            assert three is not None and three.step("migrations_review").state == StepState.WAITING
            await approve(bot, 3, APPROVER, count=2)
            three = await bot.wait_release(3, finished, "finished", timeout=180)
            assert three.status == ReleaseStatus.SUCCEEDED, [s.result for s in three.steps]
            assert three.fields["Migrations Applied"] == f"{V6} add_notes"
            assert migration_history(server, database) == [*MAIN, V4, V5, V6]
