"""tests and lint: they bring APP_WORKSPACE to the release ref, run npm, and report failures."""

from __future__ import annotations

import os
import shutil

import pytest

from bot.runbook.model import Outcome, Release
from bot.sandbox.workspace import Workspace
from bot.steps.checks import failing_tests, lint_errors
from tests.helpers import StepHarness, make_settings

if shutil.which("npm") is None and os.environ.get("CI") != "true":
    pytest.skip("npm is not installed", allow_module_level=True)


def harness(ws: Workspace, ref: str, **extra: object) -> StepHarness:
    settings = make_settings(APP_WORKSPACE=str(ws.app), COMMAND_TIMEOUT_SECONDS=120, **extra)
    return StepHarness(settings, Release(id=1, environment="staging", ref=ref, started_by="U1"))


async def test_tests_and_lint_pass_on_the_release_ref_and_record_the_sha(workspace: Workspace) -> None:
    h = harness(workspace, "release/1.2.0")
    tests = await h.run("tests")
    assert tests.outcome == Outcome.OK, tests.output_tail
    sha = workspace.sha("release/1.2.0")
    assert tests.data["tested_sha"] == sha
    assert workspace.git("rev-parse", "HEAD", cwd=workspace.app).strip() == sha  # at the ref
    lint = await h.run("lint")
    assert lint.outcome == Outcome.OK, lint.output_tail
    assert lint.data["tested_sha"] == sha


async def test_failing_tests_are_named(workspace: Workspace) -> None:
    workspace.break_tests("release/broken")
    result = await harness(workspace, "release/broken").run("tests")
    assert result.outcome == Outcome.FAIL
    assert result.data["failing"], result.output_tail
    assert result.data["failing"][0] in result.details
    assert result.output_tail


async def test_lint_errors_are_shown(workspace: Workspace) -> None:
    workspace.break_lint("release/sloppy")
    result = await harness(workspace, "release/sloppy").run("lint")
    assert result.outcome == Outcome.FAIL
    assert result.data["problems"] and "error" in result.data["problems"][0]
    assert result.data["problems"][0] in result.details


async def test_local_changes_are_refused(workspace: Workspace) -> None:
    (workspace.app / "package.json").write_text("{}\n")
    result = await harness(workspace, "release/1.2.0").run("tests")
    assert result.outcome == Outcome.FAIL
    assert "has local changes (package.json)" in result.summary


async def test_unknown_ref_is_reported(workspace: Workspace) -> None:
    result = await harness(workspace, "release/9.9.9").run("tests")
    assert result.outcome == Outcome.FAIL and "'release/9.9.9' was not found" in result.summary


async def test_a_test_run_past_its_timeout_fails(workspace: Workspace) -> None:
    slow = ("const t = require('node:test');\n"
            "t('slow', async () => { await new Promise((r) => setTimeout(r, 20000)); });\n")
    workspace.commit_on_branch("release/slow", {"tests/slow.test.js": slow}, "slow test")
    h = harness(workspace, "release/slow")
    h.settings.COMMAND_TIMEOUT_SECONDS = 3
    result = await h.run("tests")
    assert result.outcome == Outcome.FAIL and "timed out after 3s" in result.summary


def test_failing_test_names_from_node_jest_and_vitest_output() -> None:
    node = "not ok 2 - streak resets after a missed day\n  ---\n"
    spec = "✖ streak resets after a missed day (3.2ms)\n"
    jest = "FAIL src/streak.test.ts\n  ● streak › resets\n"
    assert failing_tests(node) == ["streak resets after a missed day"]
    assert failing_tests(spec) == ["streak resets after a missed day"]
    assert failing_tests(jest) == ["src/streak.test.ts", "streak › resets"]


def test_lint_lines_in_unix_and_stylish_formats() -> None:
    out = "src/a.js:3:1  error  Unexpected var  no-var\n  4:10  error  Expected '==='  eqeqeq\n"
    assert lint_errors(out) == ["src/a.js:3:1  error  Unexpected var  no-var",
                                "4:10  error  Expected '==='  eqeqeq"]


async def test_untracked_files_count_as_local_changes(workspace: Workspace) -> None:
    (workspace.app / "scratch.js").write_text("console.log('left over')\n")
    result = await harness(workspace, "release/1.2.0").run("tests")
    assert result.outcome == Outcome.FAIL and "scratch.js" in result.summary


async def test_the_tested_sha_is_recorded_even_when_tests_fail(workspace: Workspace) -> None:
    workspace.break_tests("release/broken")
    h = harness(workspace, "release/broken")
    await h.run("tests")
    assert h.release.git_sha == workspace.sha("release/broken")
