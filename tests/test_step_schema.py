"""The `schema_current` step: the release's migration files against staging's history.

Two sources: the real Supabase CLI (`migration list --db-url`) against a real PostgreSQL
database, and the Supabase Management API emulator (`GET /v1/projects/{ref}/database/migrations`)
with its scripted failures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.config import Settings
from bot.providers.supabase_cli import SupabaseCli
from bot.runbook.model import Outcome
from bot.steps.registry import STEPS
from sandbox.server import CALLS_KEY, FAULTS_KEY, serve
from sandbox.services import free_port
from sandbox.supabase_api import Migration, SupabaseState, create_supabase_app
from sandbox.workspace import Workspace, create_workspace
from tests.helpers import StepHarness, make_settings, phase_in_default_runbook

pytest_plugins = ["tests.conftest_services"]

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
NEW = "20250201000000"
TEMPLATE = [(V1, "create_profiles"), (V2, "create_practices"), (V3, "create_reflections")]


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """The sample app (three migrations) checked out in `app/`."""
    return create_workspace(tmp_path / "ws")


def _add_local_migration(workspace: Workspace, version: str, name: str, sql: str) -> None:
    (workspace.app / "supabase" / "migrations" / f"{version}_{name}.sql").write_text(sql)


# --- Supabase CLI against real PostgreSQL ----------------------------------------------------


@pytest.fixture
def cli(supabase_cli: Path) -> SupabaseCli:
    return SupabaseCli(binary=supabase_cli, timeout=120)


def _cli_settings(workspace: Workspace, db_url: str, supabase_cli: Path) -> Settings:
    return make_settings(APP_WORKSPACE=str(workspace.app), SUPABASE_DB_URL=db_url,
                         SUPABASE_CLI=str(supabase_cli), COMMAND_TIMEOUT_SECONDS=120)


async def test_cli_schema_current(
    workspace: Workspace, postgres_db: str, supabase_cli: Path, cli: SupabaseCli
) -> None:
    pushed = await cli.push(workspace.app, db_url=postgres_db)
    assert pushed.applied == [V1, V2, V3]
    harness = StepHarness(_cli_settings(workspace, postgres_db, supabase_cli))
    result = await harness.run("schema_current")
    assert result.outcome == Outcome.OK, result.summary
    assert result.summary == (
        f"All 3 migrations are applied on staging (newest {V3}_create_reflections)"
    )
    assert result.data["missing"] == [] and result.data["remote_only"] == []
    assert result.data["source"] == "Supabase CLI (SUPABASE_DB_URL)"
    assert result.data["applied"] == [V1, V2, V3]
    for version, name in TEMPLATE:
        assert version in result.details and name in result.details
    assert "applied" in result.details and "NO" not in result.details
    password = urlsplit(postgres_db).password
    assert password and password not in result.model_dump_json()
    assert harness.progress == ["Reading staging's migration history…"]


async def test_cli_schema_behind_names_the_missing_migration(
    workspace: Workspace, postgres_db: str, supabase_cli: Path, cli: SupabaseCli
) -> None:
    await cli.push(workspace.app, db_url=postgres_db)
    _add_local_migration(workspace, NEW, "add_journal", "create table public.journal (id int);\n")
    result = await StepHarness(_cli_settings(workspace, postgres_db, supabase_cli)).run(
        "schema_current")
    assert result.outcome == Outcome.FAIL
    assert result.summary == f"1 of 4 migrations not applied on staging: {NEW}_add_journal"
    assert result.data["missing"] == [NEW]
    assert f"{NEW}  add_journal" in result.details and "NO" in result.details


async def test_cli_migrations_a_person_skipped_warn_naming_them(
    workspace: Workspace, postgres_db: str, supabase_cli: Path, cli: SupabaseCli
) -> None:
    await cli.push(workspace.app, db_url=postgres_db)
    _add_local_migration(workspace, NEW, "add_journal", "create table public.journal (id int);\n")
    harness = StepHarness(_cli_settings(workspace, postgres_db, supabase_cli))
    harness.release.data["steps"] = {"migrations_review": {
        "decision": "skip", "decided_by": "U0BOB", "pending": [NEW], "skipped": [NEW],
        "skip_reason": "journal ships next sprint"}}
    result = await harness.run("schema_current")
    assert result.outcome == Outcome.WARN, result.summary
    assert result.summary == (
        f"1 of 4 migrations not applied on staging, skipped at the review by <@U0BOB>: "
        f"journal ships next sprint: {NEW}_add_journal")
    assert result.data["skipped"] == [NEW] and "reopens" not in result.data


async def test_cli_missing_migrations_nobody_skipped_fail_and_reopen_the_review(
    workspace: Workspace, postgres_db: str, supabase_cli: Path, cli: SupabaseCli
) -> None:
    await cli.push(workspace.app, db_url=postgres_db)
    _add_local_migration(workspace, NEW, "add_journal", "create table public.journal (id int);\n")
    _add_local_migration(workspace, "20250202000000", "add_tags", "create table public.tags (id int);\n")
    harness = StepHarness(_cli_settings(workspace, postgres_db, supabase_cli))
    harness.release.data["steps"] = {"migrations_review": {
        "decision": "skip", "decided_by": "U0BOB", "pending": [NEW], "skipped": [NEW]}}
    result = await harness.run("schema_current")
    assert result.outcome == Outcome.FAIL
    assert result.summary == ("1 of 5 migrations not applied on staging: 20250202000000_add_tags "
                              "(1 more skipped at the review by <@U0BOB>)")
    assert result.data["reopens"] == ["migrations_review", "migrations_push"]
    # A review skipped by the runbook (nobody chose it) excuses nothing.
    harness.release.data["steps"] = {"migrations_review": {"skip_reason": "no CLI"}}
    again = await harness.run("schema_current")
    assert again.outcome == Outcome.FAIL and again.data["skipped"] == []


async def test_cli_nothing_applied_lists_every_migration(
    workspace: Workspace, postgres_db: str, supabase_cli: Path
) -> None:
    result = await StepHarness(_cli_settings(workspace, postgres_db, supabase_cli)).run(
        "schema_current")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        f"3 of 3 migrations not applied on staging: {V1}_create_profiles, "
        f"{V2}_create_practices, {V3}_create_reflections"
    )


async def test_cli_remote_only_migration_warns(
    workspace: Workspace, postgres_db: str, supabase_cli: Path, cli: SupabaseCli
) -> None:
    _add_local_migration(workspace, NEW, "add_journal", "create table public.journal (id int);\n")
    await cli.push(workspace.app, db_url=postgres_db)
    (workspace.app / "supabase" / "migrations" / f"{NEW}_add_journal.sql").unlink()
    result = await StepHarness(_cli_settings(workspace, postgres_db, supabase_cli)).run(
        "schema_current")
    assert result.outcome == Outcome.WARN
    assert result.summary.endswith(f"; staging also has 1 not in the release: {NEW}")
    assert result.data["remote_only"] == [NEW]
    assert "remote only" in result.details


async def test_cli_unreachable_database_fails_without_the_password(
    workspace: Workspace, postgres_db: str, supabase_cli: Path
) -> None:
    parts = urlsplit(postgres_db)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{free_port()}"
    closed = urlunsplit(parts._replace(netloc=netloc))
    result = await StepHarness(_cli_settings(workspace, closed, supabase_cli)).run(
        "schema_current")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith("The Supabase CLI could not list staging's migrations: ")
    assert parts.password and parts.password not in result.model_dump_json()


# --- Management API emulator -----------------------------------------------------------------


@pytest.fixture
def api_state() -> SupabaseState:
    return SupabaseState(migrations=[Migration(v, n) for v, n in TEMPLATE])


@pytest.fixture
async def api(api_state: SupabaseState) -> AsyncIterator[tuple[str, Any]]:
    app = create_supabase_app(api_state)
    async with serve(app) as url:
        yield url, app


def _api_settings(workspace: Workspace, url: str, state: SupabaseState, **extra: Any) -> Settings:
    values: dict[str, Any] = {"APP_WORKSPACE": str(workspace.app), "SUPABASE_API_URL": url,
                              "SUPABASE_PROJECT_REF": state.ref,
                              "SUPABASE_ACCESS_TOKEN": state.access_token,
                              "HTTP_TIMEOUT_SECONDS": 1}
    values.update(extra)
    return make_settings(**values)


async def test_api_schema_current(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, app = api
    result = await StepHarness(_api_settings(workspace, url, api_state)).run("schema_current")
    assert result.outcome == Outcome.OK, result.summary
    assert result.summary == f"All 3 migrations are applied on staging (newest {V3}_create_reflections)"
    assert result.data["source"] == f"Management API (project {api_state.ref})"
    assert f"/v1/projects/{api_state.ref}/database/migrations" in [c["path"] for c in app[CALLS_KEY]]


async def test_api_schema_behind(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, _ = api
    api_state.migrations = api_state.migrations[:2]
    result = await StepHarness(_api_settings(workspace, url, api_state)).run("schema_current")
    assert result.outcome == Outcome.FAIL
    assert result.summary == f"1 of 3 migrations not applied on staging: {V3}_create_reflections"
    assert result.data["missing"] == [V3]


async def test_api_remote_only_warns(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, _ = api
    api_state.migrations.append(Migration(NEW, "hotfix"))
    result = await StepHarness(_api_settings(workspace, url, api_state)).run("schema_current")
    assert result.outcome == Outcome.WARN
    assert result.data["remote_only"] == [NEW]


async def test_cli_wins_when_db_url_is_set(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState, postgres_db: str,
    supabase_cli: Path,
) -> None:
    url, app = api
    settings = _api_settings(workspace, url, api_state, SUPABASE_DB_URL=postgres_db,
                             SUPABASE_CLI=str(supabase_cli), COMMAND_TIMEOUT_SECONDS=120)
    result = await StepHarness(settings).run("schema_current")
    assert result.data["source"] == "Supabase CLI (SUPABASE_DB_URL)"
    assert result.outcome == Outcome.FAIL  # nothing pushed to this database
    assert app[CALLS_KEY] == []


async def test_api_401_fails_clearly(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, _ = api
    settings = _api_settings(workspace, url, api_state, SUPABASE_ACCESS_TOKEN="sbp_wrong_token")
    result = await StepHarness(settings).run("schema_current")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith(
        "Could not read staging's migration history: Supabase Management API: 401: ")
    assert "SUPABASE_ACCESS_TOKEN" in result.summary
    assert "sbp_wrong_token" not in result.model_dump_json()


async def test_api_429_with_retry_after_is_retried(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, app = api
    app[FAULTS_KEY].add(r"GET .*/database/migrations", 429, retry_after=1)
    result = await StepHarness(_api_settings(workspace, url, api_state)).run("schema_current")
    assert result.outcome == Outcome.OK, result.summary
    assert len([c for c in app[CALLS_KEY] if c["path"].endswith("/migrations")]) == 2


async def test_api_persistent_429_fails(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, app = api
    app[FAULTS_KEY].add(r"GET .*/database/migrations", 429, retry_after=0, times=5)
    result = await StepHarness(_api_settings(workspace, url, api_state)).run("schema_current")
    assert result.outcome == Outcome.FAIL
    assert "rate limited (429" in result.summary


async def test_api_500_then_success(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, app = api
    app[FAULTS_KEY].add(r"GET .*/database/migrations", 500, times=1)
    result = await StepHarness(_api_settings(workspace, url, api_state)).run("schema_current")
    assert result.outcome == Outcome.OK, result.summary


async def test_api_persistent_500_fails(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, app = api
    app[FAULTS_KEY].add(r"GET .*/database/migrations", 500, times=5)
    result = await StepHarness(_api_settings(workspace, url, api_state)).run("schema_current")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Could not read staging's migration history: Supabase Management API: server error 500 "
        "(gave up after 3 attempts)"
    )


async def test_api_timeout_fails(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, app = api
    app[FAULTS_KEY].add(r"GET .*/database/migrations", 0, delay=3, times=5)
    settings = _api_settings(workspace, url, api_state, HTTP_TIMEOUT_SECONDS=0.3)
    result = await StepHarness(settings).run("schema_current")
    assert result.outcome == Outcome.FAIL
    assert "timed out after 0.3s" in result.summary


async def test_api_malformed_json_fails(
    workspace: Workspace, api: tuple[str, Any], api_state: SupabaseState
) -> None:
    url, app = api
    app[FAULTS_KEY].add(r"GET .*/database/migrations", 200, body="{not json")
    result = await StepHarness(_api_settings(workspace, url, api_state)).run("schema_current")
    assert result.outcome == Outcome.FAIL
    assert "malformed JSON" in result.summary


def test_requirements() -> None:
    sdef = STEPS["schema_current"]
    assert phase_in_default_runbook("schema_current") == "validate"
    reason = sdef.skip_reason(make_settings(APP_WORKSPACE="/tmp"))
    assert reason == (
        "missing settings: SUPABASE_DB_URL or SUPABASE_PROJECT_REF+SUPABASE_ACCESS_TOKEN"
    )
    assert sdef.skip_reason(make_settings(APP_WORKSPACE="/tmp", SUPABASE_DB_URL="postgresql://x")) is None
