"""`migrations_review` and `migrations_push` against a real PostgreSQL with the real Supabase CLI.

Staging is a fresh database holding the sample app's three migrations (pushed from `main`); the
release branch brings new ones. The steps check the release ref out in the sample workspace,
list what staging lacks, wait at the gate (answered by the harness) and push.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.config import Settings
from bot.locks import SqliteLock
from bot.providers.supabase_cli import SupabaseCli
from bot.rollback.model import applied_migrations
from bot.runbook.engine import Engine
from bot.runbook.loader import parse_runbook
from bot.runbook.model import Outcome, Release, ReleaseStatus
from bot.steps.migrations_review import PendingMigration, gate_key, review_text
from bot.steps.registry import STEPS
from bot.store import Store
from sandbox.services import PostgresServer, free_port
from sandbox.workspace import Workspace, create_workspace
from tests.helpers import StepHarness, make_settings, migration_history
from tests.test_engine import RecordingReporter

V1, V2, V3 = "20250101000000", "20250102000000", "20250103000000"
V4, V5, V6 = "20250201000000", "20250202000000", "20250203000000"
OLD = "20250102120000"  # between V2 and V3: older than staging's newest
BRANCH = "release/1.2.0"
JOURNAL = "-- A journal per user.\ncreate table public.journal (id int primary key, body text);\n"
MOOD = "alter table public.reflections add column mood text;\n"
BROKEN = "create table public.half (id int);\nselect * from public.no_such_table;\n"
TAGS = "create table public.tags (id int primary key);\n"


@pytest.fixture
def cli(supabase_cli: Path) -> SupabaseCli:
    return SupabaseCli(binary=supabase_cli, timeout=120)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return create_workspace(tmp_path / "ws")


@pytest.fixture
async def staging(postgres_server: PostgresServer, postgres_db: str, ws: Workspace,
                  cli: SupabaseCli) -> tuple[PostgresServer, str, str]:
    """(server, database, URL) of a staging database that already has main's migrations."""
    pushed = await cli.push(ws.app, db_url=postgres_db)
    assert pushed.applied == [V1, V2, V3]
    return postgres_server, urlsplit(postgres_db).path.lstrip("/"), postgres_db


def settings_for(ws: Workspace, url: str, supabase_cli: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {"APP_WORKSPACE": str(ws.app), "SUPABASE_DB_URL": url,
                              "SUPABASE_CLI": str(supabase_cli), "COMMAND_TIMEOUT_SECONDS": 120}
    return make_settings(**(values | extra))


def harness(settings: Settings, answer: str | None = None, ref: str = BRANCH) -> StepHarness:
    release = Release(id=7, environment="staging", ref=ref, started_by="U0ALICE")
    return StepHarness(settings, release, answer=(lambda gate: answer) if answer else None)


def tables(server: PostgresServer, database: str) -> list[str]:
    rows = server.query("select tablename from pg_tables where schemaname = 'public' order by 1",
                        database=database)
    return [row[0] for row in rows]




def reflection_columns(server: PostgresServer, database: str) -> list[str]:
    rows = server.query("select column_name from information_schema.columns where table_schema = "
                        "'public' and table_name = 'reflections' order by 1", database=database)
    return [row[0] for row in rows]


# --- nothing pending -------------------------------------------------------------------------------


async def test_nothing_pending_passes_without_asking(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    h = harness(settings_for(ws, url, supabase_cli), ref="main")
    review = await h.run("migrations_review")
    assert review.outcome == Outcome.OK, review.summary
    assert review.summary == "No pending migrations"
    assert review.data["pending"] == []
    assert h.gates == []
    push = await h.run("migrations_push")
    assert push.outcome == Outcome.OK and push.summary == "Nothing to push"
    assert push.data["applied"] == [] and push.fields == {"Migrations Applied": "none"}
    assert migration_history(server, name) == [V1, V2, V3]
    assert h.release.data["workspace"]["ref"] == "main"


# --- approved and pushed ---------------------------------------------------------------------------


async def test_pending_approved_then_pushed_changes_the_schema(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    ws.add_migration(BRANCH, "reflection_mood", MOOD, version=V5)
    h = harness(settings_for(ws, url, supabase_cli), answer="apply")

    review = await h.run("migrations_review")
    assert review.outcome == Outcome.OK, review.summary
    assert re.fullmatch(r"2 migrations approved by <@UAPPROVER> at \d\d:\d\d UTC", review.summary)
    assert review.data["pending"] == [V4, V5]
    assert review.data["decision"] == "apply" and review.data["approved_by"] == "UAPPROVER"
    assert review.data["approved_at"]
    assert [m["name"] for m in review.data["migrations"]] == ["add_journal", "reflection_mood"]
    assert review.data["migrations"][0]["bytes"] == len(JOURNAL.encode())

    [gate] = h.gates
    assert gate.key == f"apply-{V4}-{V5}"
    assert [(a.id, a.label, a.style, a.approvers_only) for a in gate.actions] == [
        ("apply", "Apply 2 migrations", "primary", True),
        ("skip", "Skip migrations", None, True),
        ("cancel", "Cancel release", "danger", True),
    ]
    # The reviewer sees version, name, size and the first statements before pressing.
    assert f"`{V4}` *add_journal* — {len(JOURNAL.encode())} B" in gate.prompt
    assert "create table public.journal (id int primary key, body text);" in gate.prompt
    assert "A journal per user" not in gate.prompt  # comments are not statements
    assert MOOD.strip() in gate.prompt and gate.prompt.count("```") == 4
    assert "SUPABASE_DB_URL" in gate.prompt
    assert tables(server, name) == ["practices", "profiles", "reflections"]  # nothing yet

    push = await h.run("migrations_push")
    assert push.outcome == Outcome.OK, push.summary
    assert push.data["applied"] == [V4, V5]
    assert push.summary == f"Applied 2 migrations to staging: {V4} add_journal, {V5} reflection_mood"
    assert h.release.fields["Migrations Applied"] == f"{V4} add_journal, {V5} reflection_mood"
    assert tables(server, name) == ["journal", "practices", "profiles", "reflections"]
    assert "mood" in reflection_columns(server, name)
    assert migration_history(server, name) == [V1, V2, V3, V4, V5]
    assert applied_migrations(h.release) == [V4, V5]  # what a rollback would revert
    password = urlsplit(url).password
    assert password and password not in push.model_dump_json() + review.model_dump_json()


async def test_db_url_wins_over_the_project_ref(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    settings = settings_for(ws, url, supabase_cli, SUPABASE_PROJECT_REF="abcdefghijklmnopqrst")
    h = harness(settings, answer="apply")
    assert (await h.run("migrations_review")).data["target"] == "SUPABASE_DB_URL"
    push = await h.run("migrations_push")
    assert push.outcome == Outcome.OK, push.summary
    assert migration_history(server, name)[-1] == V4
    assert not (ws.app / "supabase" / ".temp" / "project-ref").exists()  # never linked


# --- skipped and cancelled -------------------------------------------------------------------------


async def test_skipped_is_recorded_and_push_does_nothing(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    h = harness(settings_for(ws, url, supabase_cli), answer="skip")
    review = await h.run("migrations_review")
    assert review.outcome == Outcome.WARN
    assert review.summary == "Migrations skipped by <@UAPPROVER>"
    assert review.data["decision"] == "skip" and review.data["pending"] == [V4]
    field = h.release.fields["Migrations Applied"]
    assert field.startswith("skipped by <@UAPPROVER> at ")
    assert field.endswith(f"(no reason given; pending: {V4}_add_journal)")
    push = await h.run("migrations_push")
    assert push.outcome == Outcome.SKIPPED and push.summary == "skipped at review"
    assert push.data["applied"] == []
    assert migration_history(server, name) == [V1, V2, V3]
    assert "journal" not in tables(server, name)
    assert applied_migrations(h.release) == []  # the skip line must not read as applied


async def test_a_skip_keeps_who_and_why_and_schema_current_then_warns_naming_it(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    """The whole story in the engine: review (skip, with a reason), push, schema_current."""
    _server, _name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    store = Store(":memory:")
    reporter = RecordingReporter(store)
    runbook = parse_runbook("phases: [{name: p, steps: [{name: migrations_review}, "
                            "{name: migrations_push}, {name: schema_current}]}]", STEPS)
    engine = Engine(settings=settings_for(ws, url, supabase_cli), store=store, reporter=reporter,
                    runbook=runbook, registry=STEPS, lock=SqliteLock(store))
    release = await engine.start(ref=BRANCH, user="U0ALICE", channel=None)
    await asyncio.wait_for(reporter.gates.get(), 120)
    answered = await engine.decide(release.id or 0, "migrations_review", gate_key([V4]), "skip",
                                   "U0BOB", "journal ships next sprint")
    assert answered.accepted
    done = await asyncio.wait_for(engine.wait(release.id or 0), 300)
    assert done.status == ReleaseStatus.SUCCEEDED
    schema = done.step("schema_current").result
    assert schema is not None and schema.outcome == Outcome.WARN, schema
    assert f"{V4}_add_journal" in schema.summary and "<@U0BOB>" in schema.summary
    assert "journal ships next sprint" in schema.summary
    field = done.fields["Migrations Applied"]
    assert "<@U0BOB>" in field and "journal ships next sprint" in field and V4 in field
    [decision] = done.data["decisions"]
    assert (decision["action"], decision["by"], decision["reason"]) == (
        "skip", "U0BOB", "journal ships next sprint")
    stored = store.get_decision(release.id or 0, "migrations_review", gate_key([V4]))
    assert stored is not None and stored.reason == "journal ships next sprint"


async def test_cancel_fails_the_step(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    h = harness(settings_for(ws, url, supabase_cli), answer="cancel")
    review = await h.run("migrations_review")
    assert review.outcome == Outcome.FAIL
    assert review.summary == "Release cancelled at the migration review by <@UAPPROVER>"
    assert review.data["decision"] == "cancel"
    assert review.data["cancel_release"] == "UAPPROVER"  # the engine ends the release as cancelled
    assert migration_history(server, name) == [V1, V2, V3]


# --- failures --------------------------------------------------------------------------------------


async def test_failing_migration_in_the_middle_records_what_went_in(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    ws.add_migration(BRANCH, "broken", BROKEN, version=V5)
    ws.add_migration(BRANCH, "add_tags", TAGS, version=V6)
    h = harness(settings_for(ws, url, supabase_cli), answer="apply")
    assert (await h.run("migrations_review")).data["pending"] == [V4, V5, V6]

    push = await h.run("migrations_push")
    assert push.outcome == Outcome.FAIL
    assert push.summary.startswith(f"supabase db push failed at {V5}_broken.sql: ")
    assert "no_such_table" in push.summary
    assert push.summary.endswith(f"applied before it: {V4} add_journal")
    assert push.data["applied"] == [V4] and push.data["failed"] == V5
    assert h.release.fields["Migrations Applied"] == (
        f"{V4} add_journal (then {V5}_broken.sql failed; not applied)")
    assert applied_migrations(h.release) == [V4]
    assert "no_such_table" in push.details
    # Each migration is its own transaction: the broken one left nothing; the next never ran.
    assert tables(server, name) == ["journal", "practices", "profiles", "reflections"]
    assert migration_history(server, name) == [V1, V2, V3, V4]


async def test_push_timeout_fails_and_records_what_went_in(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    ws.add_migration(BRANCH, "slow", "create table public.slow (id int);\nselect pg_sleep(120);\n",
                     version=V5)
    h = harness(settings_for(ws, url, supabase_cli, COMMAND_TIMEOUT_SECONDS=10), answer="apply")
    await h.run("migrations_review")
    push = await h.run("migrations_push")
    assert push.outcome == Outcome.FAIL
    assert push.summary.startswith(f"supabase db push failed at {V5}_slow.sql: ")
    assert "timed out after 10s" in push.summary
    assert push.data["applied"] == [V4] and push.data["timed_out"] is True
    assert h.release.fields["Migrations Applied"].startswith(f"{V4} add_journal (then {V5}_slow")
    assert migration_history(server, name) == [V1, V2, V3, V4]


async def test_out_of_order_migration_is_refused_with_the_cli_advice(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "late_index", "create index on public.profiles (timezone);\n",
                     version=OLD)
    h = harness(settings_for(ws, url, supabase_cli), answer="apply")
    review = await h.run("migrations_review")
    assert review.data["pending"] == [OLD]
    assert f"older than staging's newest migration {V3}" in h.gates[0].prompt

    push = await h.run("migrations_push")
    assert push.outcome == Outcome.FAIL
    assert push.summary.startswith(f"supabase db push refused {OLD}: older than staging's newest")
    assert "does not pass --include-all on purpose" in push.summary
    assert "--include-all" in push.details  # the CLI's own advice
    assert f"supabase/migrations/{OLD}_late_index.sql" in push.details
    assert push.data == {"applied": [], "out_of_order": [OLD]}
    assert h.release.fields["Migrations Applied"] == "none"
    assert migration_history(server, name) == [V1, V2, V3]


async def test_pending_set_changed_since_review_is_not_pushed(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    ws.add_migration(BRANCH, "add_tags", TAGS, version=V5)
    h = harness(settings_for(ws, url, supabase_cli))
    h.release.data["steps"] = {"migrations_review": {"pending": [V4], "decision": "apply"}}
    push = await h.run("migrations_push")
    assert push.outcome == Outcome.FAIL
    assert push.summary == ("Pending migrations changed since the review; not pushing unreviewed "
                            f"{V5} add_tags")
    assert migration_history(server, name) == [V1, V2, V3]


async def test_unreachable_database_fails_clearly_without_the_password(
        ws: Workspace, postgres_db: str, supabase_cli: Path) -> None:
    parts = urlsplit(postgres_db)
    closed = urlunsplit(parts._replace(
        netloc=f"{parts.username}:{parts.password}@127.0.0.1:{free_port()}"))
    settings = settings_for(ws, closed, supabase_cli, COMMAND_TIMEOUT_SECONDS=60)
    for name in ("migrations_review", "migrations_push"):
        result = await harness(settings, answer="apply", ref="main").run(name)
        assert result.outcome == Outcome.FAIL
        assert result.summary.startswith(
            "The Supabase CLI could not list staging's migrations: "), result.summary
        assert parts.password and parts.password not in result.model_dump_json()


async def test_workspace_that_is_not_a_checkout_fails(tmp_path: Path, supabase_cli: Path,
                                                      postgres_db: str) -> None:
    settings = make_settings(APP_WORKSPACE=str(tmp_path), SUPABASE_DB_URL=postgres_db,
                             SUPABASE_CLI=str(supabase_cli))
    for name in ("migrations_review", "migrations_push"):
        result = await harness(settings, answer="apply").run(name)
        assert result.outcome == Outcome.FAIL
        assert result.summary == (
            f"Could not check out {BRANCH}: APP_WORKSPACE {tmp_path} is not a git checkout")


async def test_unknown_ref_fails(ws: Workspace, postgres_db: str, supabase_cli: Path) -> None:
    result = await harness(settings_for(ws, postgres_db, supabase_cli), ref="release/9.9.9").run(
        "migrations_review")
    assert result.outcome == Outcome.FAIL
    assert "'release/9.9.9' was not found in origin" in result.summary


# --- what the reviewer sees ------------------------------------------------------------------------


def pending(count: int, sql: str) -> list[PendingMigration]:
    return [PendingMigration(version=f"2025020{i:07d}", name=f"m{i}", file=f"2025020{i:07d}_m{i}.sql",
                             size=len(sql), sql=sql) for i in range(count)]


@pytest.mark.parametrize("count", [1, 5, 40])
def test_review_text_fits_one_slack_section(count: int) -> None:
    row = "insert into t values (N, '" + "x" * 80 + "');"
    sql = "\n".join(row.replace("N", str(n)) for n in range(200))
    text = review_text(pending(count, sql), "SUPABASE_DB_URL", ["a note"])
    assert len(text) <= 3000
    assert text.count("```") % 2 == 0
    assert text.startswith(f"*{count} pending migration")
    if count <= 5:
        assert "insert into t values (0," in text and "a note" in text
        assert all(f"*m{i}*" in text for i in range(count))


def test_review_text_keeps_code_fences_of_the_sql_from_breaking_out() -> None:
    text = review_text(pending(1, "select '```';\n"), "project abc", [])
    assert text.count("```") == 2 and "'''" in text


def test_gate_key_is_stable_and_bounded() -> None:
    versions = [f"2025{n:010d}" for n in range(30)]
    assert gate_key(versions) == gate_key(list(versions))
    assert len(gate_key(versions)) <= 200 and gate_key(versions).startswith("apply-")
    assert gate_key(["1", "2"]) == "apply-1-2"


async def test_push_without_a_review_step_pushes_nothing(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    h = harness(settings_for(ws, url, supabase_cli))
    push = await h.run("migrations_push")
    assert push.outcome == Outcome.FAIL
    assert push.summary.startswith("Not pushing 1 pending migrations: nobody approved them")
    assert push.data == {"applied": [], "unreviewed": [V4]}
    assert migration_history(server, name) == [V1, V2, V3]


async def test_a_retried_push_keeps_the_migrations_an_earlier_attempt_applied(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    ws.add_migration(BRANCH, "half", BROKEN, version=V5)
    h = harness(settings_for(ws, url, supabase_cli), answer="apply")
    await h.run("migrations_review")
    first = await h.run("migrations_push")
    assert first.outcome == Outcome.FAIL and first.data["applied"] == [V4]
    # The team fixes the broken migration on the branch and retries the step.
    ws.add_migration(BRANCH, "half", TAGS, version=V5)
    h.release.data.pop("workspace", None)
    retried = await h.run("migrations_push")
    assert retried.outcome == Outcome.OK, retried.summary
    assert retried.data["applied"] == [V4, V5]  # both are this release's, for a rollback
    assert applied_migrations(h.release) == [V4, V5]
    assert migration_history(server, name) == [V1, V2, V3, V4, V5]


async def test_a_push_cancelled_midway_records_what_went_in(
        ws: Workspace, staging: tuple[PostgresServer, str, str], supabase_cli: Path) -> None:
    server, name, url = staging
    ws.add_migration(BRANCH, "add_journal", JOURNAL, version=V4)
    ws.add_migration(BRANCH, "slow", "create table public.slow (id int);\nselect pg_sleep(120);\n",
                     version=V5)
    h = harness(settings_for(ws, url, supabase_cli), answer="apply")
    await h.run("migrations_review")
    task = asyncio.create_task(h.run("migrations_push"))
    async with asyncio.timeout(60):
        while V4 not in await asyncio.to_thread(migration_history, server, name):  # noqa: ASYNC110 (polling another process)
            await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.release.data["steps"]["migrations_push"]["applied"] == [V4]
    assert h.release.fields["Migrations Applied"].startswith(f"{V4} add_journal (push cancelled")
    assert applied_migrations(h.release) == [V4]
