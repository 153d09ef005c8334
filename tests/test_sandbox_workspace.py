"""The sandbox app workspace: git layout, branch helpers, and the sample's npm/Playwright checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.services import find_tool
from sandbox.workspace import (
    FAILING_TEST_PATH,
    LINT_ERROR_PATH,
    CommitSpec,
    Workspace,
    create_workspace,
    run_git,
)

IN_CI = os.environ.get("CI") == "true"
NODE = shutil.which("node")
NPM = shutil.which("npm")

needs_node = pytest.mark.skipif(
    (NODE is None or NPM is None) and not IN_CI, reason="node/npm not installed (and not CI)"
)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return create_workspace(tmp_path / "ws")


def checkout(ws: Workspace, ref: str) -> None:
    """What the bot does in APP_WORKSPACE: fetch, then a detached checkout of the ref."""
    run_git(ws.app, "fetch", "-q", "origin")
    run_git(ws.app, "checkout", "-q", "--detach", f"origin/{ref}")


def npm(ws: Workspace, script: str) -> subprocess.CompletedProcess[str]:
    assert NPM is not None, "npm is required in CI"
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false")
    return subprocess.run(
        [NPM, "run", "--silent", script],
        cwd=ws.app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- layout and helpers ------------------------------------------------------------------


def test_layout(workspace: Workspace) -> None:
    root = workspace.root
    assert workspace.source == root / "origin-src"
    assert workspace.origin == root / "origin.git"
    assert workspace.app == root / "app"
    assert run_git(workspace.origin, "rev-parse", "--is-bare-repository") == "true"
    assert run_git(workspace.app, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert run_git(workspace.app, "rev-parse", "HEAD") == workspace.sha("main")
    for rel in (
        "package.json",
        "playwright.config.ts",
        "e2e/specs/pwa-offline.spec.ts",
        "supabase/config.toml",
        "scripts/lint.js",
    ):
        assert (workspace.app / rel).is_file(), rel
    author = run_git(workspace.app, "log", "-1", "--format=%an <%ae>")
    assert author == "Sandbox Developer <dev@pocketphilosopher.test>"
    assert workspace.branches() == ["main"]


def test_template_package_json(workspace: Workspace) -> None:
    package = json.loads((workspace.app / "package.json").read_text())
    assert package["scripts"]["test"] == "node --test tests/"
    assert package["scripts"]["lint"] == "node scripts/lint.js"
    assert set(package["devDependencies"]) == {"@playwright/test"}
    assert "dependencies" not in package
    assert not (workspace.app / "package-lock.json").exists()


def test_migrations_use_supabase_naming(workspace: Workspace) -> None:
    names = workspace.migrations()
    assert len(names) == 3
    for name in names:
        version, _, rest = name.partition("_")
        assert len(version) == 14 and version.isdigit()
        assert rest.endswith(".sql")
    sql = (workspace.app / "supabase/migrations" / names[0]).read_text()
    assert "create table" in sql and "public.profiles" in sql


def test_release_branch_is_fetched_into_app(workspace: Workspace) -> None:
    commit = workspace.add_release_branch("1.2.0")
    assert commit.branch == "release/1.2.0"
    assert workspace.sha("release/1.2.0") == commit.sha
    assert "release/1.2.0" in workspace.branches()
    checkout(workspace, "release/1.2.0")
    assert run_git(workspace.app, "rev-parse", "HEAD") == commit.sha
    package = json.loads((workspace.app / "package.json").read_text())
    assert package["version"] == "1.2.0"
    assert (workspace.app / "docs/releases/1.2.0.md").is_file()
    # the authoring copy is back on main
    assert run_git(workspace.source, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_commits_stack_on_an_existing_branch(workspace: Workspace) -> None:
    first = workspace.add_release_branch("1.3.0")
    second = workspace.add_migration("release/1.3.0", "add_journal", "select 1;\n")
    assert run_git(workspace.origin, "rev-parse", f"{second.sha}^") == first.sha
    assert second.paths == ("supabase/migrations/20250201000000_add_journal.sql",)
    assert workspace.migrations("release/1.3.0")[-1] == "20250201000000_add_journal.sql"
    assert len(workspace.migrations("main")) == 3


def test_commit_can_delete_files(workspace: Workspace) -> None:
    commit = workspace.commit_on_branch("cleanup", {"src/streak.js": None}, "Drop streaks")
    listing = run_git(workspace.origin, "ls-tree", "-r", "--name-only", commit.sha)
    assert "src/streak.js" not in listing.splitlines()


def test_extra_commits_and_node_modules_link(tmp_path: Path) -> None:
    shared = tmp_path / "shared-node-modules"
    (shared / "@playwright" / "test").mkdir(parents=True)
    ws = create_workspace(
        tmp_path / "ws",
        extra_commits=[CommitSpec("release/2.0.0", {"NOTES.md": "two\n"}, "Notes")],
        node_modules=shared,
    )
    assert ws.branches() == ["main", "release/2.0.0"]
    assert [c.branch for c in ws.commits] == ["release/2.0.0"]
    link = ws.app / "node_modules"
    assert link.is_symlink() and link.resolve() == shared.resolve()
    assert run_git(ws.app, "status", "--porcelain") == ""
    # the clone already knows the branch without a fetch
    assert run_git(ws.app, "rev-parse", "origin/release/2.0.0") == ws.commits[0].sha


# --- npm run test / lint -----------------------------------------------------------------


@needs_node
def test_npm_test_and_lint_pass_on_main(workspace: Workspace) -> None:
    tests = npm(workspace, "test")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "# fail 0" in tests.stdout
    lint = npm(workspace, "lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout.strip() == ""


@needs_node
def test_npm_test_fails_on_broken_branch(workspace: Workspace) -> None:
    workspace.break_tests("release/1.2.1")
    checkout(workspace, "release/1.2.1")
    assert (workspace.app / FAILING_TEST_PATH).is_file()
    tests = npm(workspace, "test")
    assert tests.returncode != 0
    assert "# fail 1" in tests.stdout
    assert npm(workspace, "lint").returncode == 0


@needs_node
def test_npm_lint_fails_on_broken_branch(workspace: Workspace) -> None:
    workspace.break_lint("release/1.2.2")
    checkout(workspace, "release/1.2.2")
    lint = npm(workspace, "lint")
    assert lint.returncode == 1
    lines = [line for line in lint.stdout.splitlines() if line.startswith(LINT_ERROR_PATH)]
    rules = {line.rsplit("  ", 1)[-1] for line in lines}
    assert rules == {"no-var", "eqeqeq", "no-debugger"}
    assert all("  error  " in line for line in lines)
    assert lines[0].startswith(f"{LINT_ERROR_PATH}:3:1  error  ")
    assert "3 problems (3 errors, 0 warnings)" in lint.stdout
    assert npm(workspace, "test").returncode == 0


# --- the Playwright spec against the sandbox staging app ---------------------------------

PLAYWRIGHT = find_tool("playwright")
CHROMIUM = find_tool("chromium")
needs_playwright = pytest.mark.skipif(
    (PLAYWRIGHT is None or CHROMIUM is None or NODE is None) and not IN_CI,
    reason="Playwright (scripts/install-tools.sh) or chromium not installed (and not CI)",
)

SERVER_SCRIPT = """
import asyncio, sys
from sandbox.server import serve
from sandbox.staging_app import StagingState, create_staging_app

async def main() -> None:
    state = StagingState(pwa_broken=sys.argv[1] == "broken")
    async with serve(create_staging_app(state)) as url:
        print(url, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def staging_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The sandbox staging app in a child process (Playwright needs it outside our loop)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, request.param],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_pwa_spec(tmp_path: Path, base_url: str) -> dict[str, int]:
    assert PLAYWRIGHT is not None and CHROMIUM is not None
    ws = create_workspace(tmp_path / "ws", node_modules=PLAYWRIGHT.parent.parent)
    env = dict(
        os.environ,
        PLAYWRIGHT_BASE_URL=base_url,
        PLAYWRIGHT_CHROMIUM_PATH=str(CHROMIUM),
        CI="true",
    )
    result = subprocess.run(
        [
            str(ws.app / "node_modules/.bin/playwright"),
            "test",
            "--reporter=json",
            "e2e/specs/pwa-offline.spec.ts",
        ],
        cwd=ws.app,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    stats = json.loads(result.stdout)["stats"]
    return {"expected": stats["expected"], "unexpected": stats["unexpected"], "rc": result.returncode}


@needs_playwright
@pytest.mark.parametrize("staging_url", ["ok"], indirect=True)
def test_pwa_spec_passes_against_sandbox(tmp_path: Path, staging_url: str) -> None:
    assert run_pwa_spec(tmp_path, staging_url) == {"expected": 1, "unexpected": 0, "rc": 0}


@needs_playwright
@pytest.mark.parametrize("staging_url", ["broken"], indirect=True)
def test_pwa_spec_fails_when_service_worker_is_broken(tmp_path: Path, staging_url: str) -> None:
    assert run_pwa_spec(tmp_path, staging_url) == {"expected": 0, "unexpected": 1, "rc": 1}
