"""The Supabase CLI wrapper against the real CLI and a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.providers.supabase_cli import (
    MigrationHistoryMismatchError,
    MigrationOrderError,
    MigrationPushError,
    SupabaseCli,
    SupabaseCliError,
    split_db_url,
)
from sandbox.services import PostgresServer
from tests.helpers import migration_history

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"


@pytest.fixture
def cli(supabase_cli: Path) -> SupabaseCli:
    return SupabaseCli(binary=supabase_cli, timeout=120)


@pytest.fixture
def db(postgres_server: PostgresServer, postgres_db: str) -> tuple[PostgresServer, str, str]:
    """(server, database name, URL) of a fresh database."""
    return postgres_server, urlsplit(postgres_db).path.lstrip("/"), postgres_db


def write_migration(workdir: Path, version: str, name: str, sql: str) -> str:
    folder = workdir / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{version}_{name}.sql").write_text(sql)
    return f"{version}_{name}.sql"


def tables(server: PostgresServer, database: str) -> list[str]:
    rows = server.query(
        "select tablename from pg_tables where schemaname = 'public' order by 1", database=database
    )
    return [row[0] for row in rows]




async def test_push_two_migrations_records_history(
    tmp_path: Path, db: tuple[PostgresServer, str, str], cli: SupabaseCli
) -> None:
    server, name, url = db
    write_migration(tmp_path, V1, "notes", "create table notes (id int primary key);")
    write_migration(tmp_path, V2, "tags", "create table tags (id int primary key);")

    rows = await cli.list_migrations(tmp_path, db_url=url)
    assert [(r.local, r.remote, r.pending) for r in rows] == [(V1, None, True), (V2, None, True)]
    assert rows[0].time is not None and rows[0].time.isoformat() == "2025-01-01T00:00:00+00:00"

    result = await cli.push(tmp_path, db_url=url)
    assert result.applied == [V1, V2]
    assert result.migrations == [f"{V1}_notes.sql", f"{V2}_tags.sql"]
    assert result.returncode == 0 and not result.up_to_date and not result.dry_run
    assert tables(server, name) == ["notes", "tags"]
    assert migration_history(server, name) == [V1, V2]

    rows = await cli.list_migrations(tmp_path, url)
    assert [(r.local, r.remote) for r in rows] == [(V1, V1), (V2, V2)]
    assert all(r.applied for r in rows)

    again = await cli.push(tmp_path, url)
    assert again.up_to_date and again.applied == []


async def test_dry_run_applies_nothing(
    tmp_path: Path, db: tuple[PostgresServer, str, str], cli: SupabaseCli
) -> None:
    server, name, url = db
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")
    result = await cli.push(tmp_path, db_url=url, dry_run=True)
    assert result.dry_run and result.applied == []
    assert result.migrations == [f"{V1}_notes.sql"]
    assert tables(server, name) == []


async def test_failing_middle_migration_names_it_and_keeps_the_first(
    tmp_path: Path, db: tuple[PostgresServer, str, str], cli: SupabaseCli
) -> None:
    server, name, url = db
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")
    bad = write_migration(tmp_path, V2, "broken", "create table half (id int);\nselect * from no_such_table;")
    write_migration(tmp_path, V3, "tags", "create table tags (id int);")

    with pytest.raises(MigrationPushError) as caught:
        await cli.push(tmp_path, db_url=url)
    error = caught.value
    assert error.failed == bad
    assert error.failed_version == V2
    assert bad in str(error)
    assert "no_such_table" in error.message
    assert error.applied == [V1]
    assert error.returncode == 1
    # Each migration runs in its own transaction: the failing one left nothing behind.
    assert tables(server, name) == ["notes"]
    assert migration_history(server, name) == [V1]


async def test_older_than_remote_is_refused_with_the_cli_advice(
    tmp_path: Path, db: tuple[PostgresServer, str, str], cli: SupabaseCli
) -> None:
    server, name, url = db
    write_migration(tmp_path, V2, "tags", "create table tags (id int);")
    await cli.push(tmp_path, db_url=url)
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")

    with pytest.raises(MigrationOrderError) as caught:
        await cli.push(tmp_path, db_url=url)
    error = caught.value
    assert error.suggestion is not None and "--include-all" in error.suggestion
    assert f"supabase/migrations/{V1}_notes.sql" in error.suggestion
    assert error.versions == [V1]
    assert "before the last migration on remote" in error.message
    assert migration_history(server, name) == [V2]

    result = await cli.push(tmp_path, db_url=url, include_all=True)
    assert result.applied == [V1]
    assert migration_history(server, name) == [V1, V2]


async def test_remote_version_missing_locally_is_refused(
    tmp_path: Path, db: tuple[PostgresServer, str, str], cli: SupabaseCli
) -> None:
    _, _, url = db
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")
    await cli.push(tmp_path, db_url=url)
    (tmp_path / "supabase" / "migrations" / f"{V1}_notes.sql").unlink()
    write_migration(tmp_path, V2, "tags", "create table tags (id int);")
    with pytest.raises(MigrationHistoryMismatchError) as caught:
        await cli.push(tmp_path, db_url=url)
    assert caught.value.suggestion is not None
    assert f"migration repair --status reverted {V1}" in caught.value.suggestion


async def test_down_last_one_removes_table_and_history_row(
    tmp_path: Path, db: tuple[PostgresServer, str, str], cli: SupabaseCli
) -> None:
    server, name, url = db
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")
    write_migration(tmp_path, V2, "tags", "create table tags (id int);")
    await cli.push(tmp_path, db_url=url)

    result = await cli.down(tmp_path, 1, url)
    assert result.reverted == [V2]
    assert result.version == V1
    assert tables(server, name) == ["notes"]
    assert migration_history(server, name) == [V1]
    # The Supabase-shaped schemas belong to supabase_admin, so the reset leaves them alone.
    assert server.query("select count(*) from auth.users", database=name) == [["0"]]

    with pytest.raises(SupabaseCliError, match="--last must be smaller"):
        await cli.down(tmp_path, 5, db_url=url)
    with pytest.raises(ValueError):
        await cli.down(tmp_path, 0, db_url=url)


async def test_password_never_reaches_errors_or_argv(
    tmp_path: Path, postgres_server: PostgresServer, cli: SupabaseCli
) -> None:
    secret = "not-the-password-4711"
    url = postgres_server.url.replace(postgres_server.password, secret)
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")
    with pytest.raises(SupabaseCliError) as caught:
        await cli.list_migrations(tmp_path, db_url=url)
    error = caught.value
    assert "password authentication failed" in error.message
    assert error.code is not None and error.code.endswith("DbConnectError")
    for text in (str(error), error.stdout, error.stderr):
        assert secret not in text
        assert postgres_server.password not in text


def test_split_db_url_moves_the_password_out() -> None:
    url, password = split_db_url("postgresql://postgres:p%40ss%3Aw@127.0.0.1:5432/db?sslmode=disable")
    assert url == "postgresql://postgres@127.0.0.1:5432/db?sslmode=disable"
    assert password == "p@ss:w"
    assert split_db_url("postgresql://u@h/db") == ("postgresql://u@h/db", None)


async def test_missing_workdir_and_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(SupabaseCliError, match="does not exist"):
        await SupabaseCli(binary="/bin/true").list_migrations(tmp_path / "nope", "postgresql://x")
    with pytest.raises(SupabaseCliError, match="Supabase CLI not found"):
        await SupabaseCli(binary=tmp_path / "no-cli").list_migrations(tmp_path, "postgresql://x")


async def test_push_timeout_reports_what_was_applied(
    tmp_path: Path, db: tuple[PostgresServer, str, str], supabase_cli: Path
) -> None:
    server, name, url = db
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")
    slow = write_migration(tmp_path, V2, "slow", "create table slow (id int);\nselect pg_sleep(120);")
    cli = SupabaseCli(binary=supabase_cli, timeout=10)
    with pytest.raises(MigrationPushError) as caught:
        await cli.push(tmp_path, db_url=url)
    error = caught.value
    assert error.timed_out
    assert error.failed == slow
    assert error.applied == [V1]
    assert migration_history(server, name) == [V1]


async def test_runs_without_a_writable_home(
    tmp_path: Path, db: tuple[PostgresServer, str, str], cli: SupabaseCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, url = db
    monkeypatch.setenv("HOME", str(tmp_path / "no-such-home"))
    write_migration(tmp_path, V1, "notes", "create table notes (id int);")
    rows = await cli.list_migrations(tmp_path, db_url=url)
    assert [row.version for row in rows] == [V1]
    assert not (tmp_path / "no-such-home").exists()
