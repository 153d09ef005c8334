"""`migrations_review` reads SQL files at the release ref without installing the app's packages.

It needs the checkout and the Supabase CLI (SUPABASE_CLI or .tools/), never node_modules: on the
real app a full `npm ci` took 80 s just to list 9 files. The release branch here carries a
dependency whose install script needs the network, so any `npm ci` would fail the step.
"""

from __future__ import annotations

from pathlib import Path

from bot.providers.supabase_cli import SupabaseCli
from bot.runbook.model import Outcome, Release
from sandbox.workspace import create_workspace
from tests.helpers import StepHarness, make_settings

MIGRATION = "create table public.journal (id int primary key, body text);\n"


async def test_review_lists_pending_sql_without_npm_ci(tmp_path: Path, postgres_db: str,
                                                       supabase_cli: Path) -> None:
    ws = create_workspace(tmp_path / "ws")  # no shared node_modules link: npm ci would delete it
    pushed = await SupabaseCli(binary=supabase_cli, timeout=120).push(ws.app, db_url=postgres_db)
    assert len(pushed.applied) == 3
    ws.add_install_script("release/1.4.0")
    ws.add_migration("release/1.4.0", "add_journal", MIGRATION, version="20250201000000")
    settings = make_settings(APP_WORKSPACE=str(ws.app), SUPABASE_DB_URL=postgres_db,
                             SUPABASE_CLI=str(supabase_cli), COMMAND_TIMEOUT_SECONDS=120)
    release = Release(id=3, environment="staging", ref="release/1.4.0", started_by="U1")
    h = StepHarness(settings, release, answer=lambda gate: "apply")

    review = await h.run("migrations_review")
    assert review.outcome == Outcome.OK, review.summary
    assert review.data["pending"] == ["20250201000000"]
    assert not any("npm ci" in text for text in h.progress)
    assert not (ws.app / "node_modules").exists()

    # A later step of the same release that runs the app's code still installs it.
    tests = await h.run("tests")
    assert tests.outcome == Outcome.FAIL
    assert tests.summary.startswith("npm ci failed: the install script of `geo-tiles`")
