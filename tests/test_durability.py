"""Durability pieces on their own: warnings, the writer lock, backups, refusals, the real binary."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot import durability, writer_lock
from bot.runbook.model import Release, ReleaseStatus, StepRecord, StepResult, StepState
from bot.store import Store
from sandbox.server import serve
from tests.bot_process import REPO, bot_env, free_port, serve_command
from tests.mock_slack_api import SlackState, create_slack_app
from tests.slack_e2e import BOT_TOKEN, SIGNING_SECRET


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=bot_env(env), cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


def seeded(path: Path, count: int = 2) -> Store:
    store = Store(path)
    for n in range(count):
        store.create_release(Release(
            environment="staging", ref=f"release/1.{n}.0", started_by="U1",
            status=ReleaseStatus.SUCCEEDED,
            steps=[StepRecord(name="health", title="Health", phase="validate", state=StepState.OK,
                              result=StepResult.ok("Healthy"))]))
    return store


def test_litestream_binary_comes_with_the_package() -> None:
    binary = durability.litestream_binary()
    assert binary is not None
    done = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.strip().startswith("0.5.")


def test_generated_config_names_the_database_and_the_replica(tmp_path: Path) -> None:
    config = yaml.safe_load(durability.litestream_config(tmp_path / "log.db", "s3://bucket/log"))
    assert config == {"dbs": [{"path": str((tmp_path / "log.db").resolve()),
                               "replica": {"url": "s3://bucket/log"}}]}
    written = durability.write_config(tmp_path / "log.db", "sftp://u:pw@host/x")
    assert written == (tmp_path / "log.db.litestream.yml").resolve()
    assert written.stat().st_mode & 0o077 == 0  # the URL may carry credentials
    durability.write_config(tmp_path / "log.db", "s3://bucket/log")  # rewritten, not piled up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.db.litestream.yml"]
    assert "s3://bucket/log" in written.read_text()


def test_a_log_created_for_litestream_gets_the_logs_page_size_and_wal(tmp_path: Path) -> None:
    """Under Litestream the log file is made before the store opens it; made there, it must
    already have the store's page size (WAL mode fixes it for good) and keep an existing one's."""
    new = tmp_path / "logs" / "release-log.db"
    durability.ensure_wal_database(new)
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("create table t (x)")
    durability.ensure_wal_database(old)
    for path, size in ((new, 16384), (old, 4096)):
        with sqlite3.connect(path) as conn:
            assert conn.execute("pragma page_size").fetchone()[0] == size
            assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
        conn.close()
    Store(new).db.conn.close()  # the store opens it as it made it
    with sqlite3.connect(new) as conn:
        assert conn.execute("pragma page_size").fetchone()[0] == 16384


def test_check_config_warns_on_a_dyno_without_a_replica(tmp_path: Path) -> None:
    db = str(tmp_path / "log.db")
    warned = cli("check-config", env={"DATABASE_PATH": db, "DYNO": "web.1"}, cwd=tmp_path)
    assert warned.returncode == 0, warned.stderr
    assert "ephemeral disk (Heroku dyno web.1)" in warned.stdout
    assert "set LITESTREAM_REPLICA_URL" in warned.stdout

    replicated = cli("check-config", env={"DATABASE_PATH": db, "DYNO": "web.1",
                                          "LITESTREAM_REPLICA_URL": "s3://bucket/log"}, cwd=tmp_path)
    assert "ephemeral" not in replicated.stdout
    assert f"replica    s3://bucket/log (litestream: {durability.litestream_binary()})" in replicated.stdout

    plain = cli("check-config", env={"DATABASE_PATH": db}, cwd=tmp_path)
    assert "ephemeral" not in plain.stdout and "replica    none" in plain.stdout


def test_a_bad_replica_url_or_an_unreachable_replica_refuses_to_start(tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s",
           "DATABASE_PATH": str(tmp_path / "d" / "log.db")}
    bad = cli("serve", "--port", str(free_port()), env={**env, "LITESTREAM_REPLICA_URL": "http://x/y"},
              cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("release-bot: LITESTREAM_REPLICA_URL must start with s3://, gs://, "
                                  "abs://, sftp://, file://")
    unreachable = cli("serve", "--port", str(free_port()), cwd=tmp_path, env={
        **env, "LITESTREAM_REPLICA_URL": f"sftp://bot:hunter2-secret@127.0.0.1:{free_port()}/log"})
    assert unreachable.returncode == 2
    assert "could not restore" in unreachable.stderr and "hunter2-secret" not in unreachable.stderr
    assert not (tmp_path / "d" / "log.db").exists()  # nothing started on an empty log


def test_writer_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    held = writer_lock.acquire(db, ["release-bot", "serve"])
    with pytest.raises(writer_lock.WriterBusy) as busy:
        writer_lock.acquire(db)
    assert f"pid {os.getpid()} on " in str(busy.value) and "(release-bot serve)" in str(busy.value)
    held.release()
    writer_lock.acquire(db).release()

    # A holder killed with SIGKILL leaves the file behind but not the lock.
    code = ("import sys,time; from bot import writer_lock; held = writer_lock.acquire(sys.argv[1]); "
            "print('held', flush=True); time.sleep(300)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(db)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(writer_lock.WriterBusy, match=f"pid {holder.pid} on "):
            writer_lock.acquire(db)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert writer_lock.lock_path(db).exists()
    writer_lock.acquire(db).release()


async def test_serve_without_replica_holds_the_log_and_warns_on_a_dyno(tmp_path: Path) -> None:
    """No replica: the same process serves (no Litestream), holds the lock, warns on a dyno."""
    db = tmp_path / "log.db"
    seeded(db).db.conn.close()
    state = SlackState(token=BOT_TOKEN)
    async with serve(create_slack_app(state)) as slack_url:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "DATABASE_PATH": str(db), "DYNO": "web.1", "SLACK_API_URL": f"{slack_url}/api/"}
        proc = await asyncio.create_subprocess_exec(
            *serve_command(free_port()), env=bot_env(env), cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        try:
            said = await asyncio.wait_for(read_until(proc, "listening on"), 120)
            assert "ephemeral disk (Heroku dyno web.1)" in said and "LITESTREAM_REPLICA_URL" in said
            assert "replicating the release log" not in said
            second = await asyncio.to_thread(
                cli, "serve", "--port", str(free_port()), env=env, cwd=tmp_path)
            assert second.returncode == 3
            assert f"is already served by pid {proc.pid} on " in second.stderr
            socket_mode = await asyncio.to_thread(
                cli, "socket", env={**env, "SLACK_APP_TOKEN": "xapp-1-x"}, cwd=tmp_path)
            assert socket_mode.returncode == 3 and "already served" in socket_mode.stderr
            shared = await asyncio.to_thread(cli, "log", "--json", env=env, cwd=tmp_path)
            assert shared.returncode == 0 and '"release/1.1.0"' in shared.stdout  # CLI still reads
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def read_until(proc: asyncio.subprocess.Process, text: str) -> str:
    """The process's output up to the line holding `text`."""
    assert proc.stdout is not None
    seen = []
    while line := (await proc.stdout.readline()).decode():
        seen.append(line)
        if text in line:
            break
    return "".join(seen)


def test_log_backup_refuses_bad_targets_and_copies_a_consistent_log(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    env = {"DATABASE_PATH": str(db)}
    missing = cli("log", "backup", str(tmp_path / "b.db"), env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "there is no release log at" in missing.stderr
    assert not db.exists() and not (tmp_path / "b.db").exists()
    no_path = cli("log", "backup", env=env, cwd=tmp_path)
    assert no_path.returncode == 2 and "needs a PATH" in no_path.stderr

    store = seeded(db, 3)
    # An open write transaction in another connection: the copy holds only committed data.
    writer = sqlite3.connect(db)
    writer.execute("begin immediate")
    writer.execute("update releases set ref = 'uncommitted' where id = 1")
    done = cli("log", "backup", str(tmp_path / "copies" / "b.db"), env=env, cwd=tmp_path)
    writer.rollback()
    writer.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"backed up 3 releases from {db} to {tmp_path / 'copies' / 'b.db'}"
    copy = Store(tmp_path / "copies" / "b.db")
    for release_id in (1, 2, 3):
        assert copy.get_release(release_id) == store.get_release(release_id)
    assert not list((tmp_path / "copies").glob(".*partial"))
    again = cli("log", "backup", str(tmp_path / "copies" / "b.db"), env=env, cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr

    show = cli("log", "show", "x", env=env, cwd=tmp_path)  # `show` still wants a number
    assert show.returncode == 2 and "needs a release id" in show.stderr


def test_a_stray_marker_does_not_skip_the_lock(tmp_path: Path) -> None:
    """Only the child of our own Litestream may skip the lock; a marker set by hand does not."""
    db = tmp_path / "log.db"
    held = writer_lock.acquire(db, ["release-bot", "serve"])
    try:
        env = {"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s", "DATABASE_PATH": str(db),
               durability.MARKER_ENV: "1"}
        refused = cli("serve", "--port", str(free_port()), env=env, cwd=tmp_path)
        assert refused.returncode == 3 and "is already served by" in refused.stderr
    finally:
        held.release()
