"""tests and lint: they bring APP_WORKSPACE to the release ref, run npm, and report failures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bot.runbook.model import Outcome, Release
from sandbox.workspace import INSTALL_PACKAGE, Workspace, create_workspace
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


async def test_failing_tests_are_named_with_the_runners_own_counts(workspace: Workspace) -> None:
    workspace.break_tests("release/broken")
    result = await harness(workspace, "release/broken").run("tests")
    assert result.outcome == Outcome.FAIL
    name = "a streak survives a missed day (regression)"
    error = "AssertionError: Expected values to be strictly equal:"
    sha = workspace.sha("release/broken")[:8]
    assert result.summary == (f"npm run test failed at {sha} (1 failed, 5 passed, 6 total): "
                              f"{name} — {error}")
    assert result.data["failing"] == [name]
    assert (result.data["failed"], result.data["passed"], result.data["total"]) == (1, 5, 6)
    assert f"• {name}\n    `{error}`" in result.details
    assert result.output_tail


async def test_lint_errors_are_counted_with_file_line_and_rule(workspace: Workspace) -> None:
    workspace.break_lint("release/sloppy")
    result = await harness(workspace, "release/sloppy").run("lint")
    assert result.outcome == Outcome.FAIL
    sha = workspace.sha("release/sloppy")[:8]
    assert result.summary == (f"npm run lint failed at {sha} (3 errors, 0 warnings in 1 file; "
                              "first: src/quotes.js:3 no-var)")
    assert result.data["errors"] == 3 and result.data["warnings"] == 0
    assert result.data["problems"][0] == {"file": "src/quotes.js", "line": 3, "column": 1,
                                          "severity": "error", "rule": "no-var",
                                          "message": "Unexpected var, use let or const instead."}
    assert "src/quotes.js:7:5  error  no-debugger  Unexpected 'debugger' statement." in result.details


async def test_local_changes_are_refused(workspace: Workspace) -> None:
    (workspace.app / "package.json").write_text("{}\n")
    result = await harness(workspace, "release/1.2.0").run("tests")
    assert result.outcome == Outcome.FAIL
    assert "has local changes (package.json)" in result.summary


async def test_left_over_tool_output_is_refused_with_a_hint(workspace: Workspace) -> None:
    (workspace.app / "test-results").mkdir()
    (workspace.app / "test-results" / ".last-run.json").write_text("{}")
    result = await harness(workspace, "release/1.2.0").run("tests")
    assert result.outcome == Outcome.FAIL
    assert "has local changes (test-results/)" in result.summary
    assert "add it to the app's .gitignore" in result.summary
    assert (workspace.app / "test-results" / ".last-run.json").exists()  # refused, not deleted


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


async def test_untracked_files_count_as_local_changes(workspace: Workspace) -> None:
    (workspace.app / "scratch.js").write_text("console.log('left over')\n")
    result = await harness(workspace, "release/1.2.0").run("tests")
    assert result.outcome == Outcome.FAIL and "scratch.js" in result.summary


async def test_the_tested_sha_is_recorded_even_when_tests_fail(workspace: Workspace) -> None:
    workspace.break_tests("release/broken")
    h = harness(workspace, "release/broken")
    await h.run("tests")
    assert h.release.git_sha == workspace.sha("release/broken")


COLOUR_CHECK = """"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");

test("children run with colour off", () => {
  assert.equal(process.env.NO_COLOR, "1");
  assert.equal(process.env.FORCE_COLOR, undefined);
});

test("a coloured failure message", () => {
  assert.fail("\\u001b[31mexpected\\u001b[39m a \\u001b[1mquote\\u001b[22m");
});
"""


async def test_children_run_without_colour_and_codes_never_reach_the_thread(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # as a bot started from a colour terminal might have
    workspace.commit_on_branch("release/colour", {"tests/colour.test.js": COLOUR_CHECK}, "colour")
    result = await harness(workspace, "release/colour").run("tests")
    assert result.outcome == Outcome.FAIL
    assert result.data["failing"] == ["a coloured failure message"], result.output_tail
    assert result.data["failures"][0]["error"] == "AssertionError: expected a quote"
    for text in (result.summary, result.details, result.output_tail):
        assert "\x1b" not in text


async def test_lint_warnings_alone_pass_and_are_counted(workspace: Workspace) -> None:
    script = ("console.log('./src/streak.js');\n"
              "console.log('12:7  Warning: \\'today\\' is defined but never used.  no-unused-vars');\n")
    workspace.commit_on_branch("release/warn", {"scripts/lint.js": script}, "next lint style")
    result = await harness(workspace, "release/warn").run("lint")
    assert result.outcome == Outcome.OK, result.output_tail
    assert result.summary.endswith("(0 errors, 1 warning in 1 file)")
    assert "./src/streak.js:12:7  warning  no-unused-vars" in result.details


@pytest.fixture
def bare_workspace(tmp_path: Path) -> Workspace:
    """A workspace without the shared node_modules link: `npm ci` deletes node_modules."""
    ws = create_workspace(tmp_path / "bare")
    ws.add_install_script("release/net")
    return ws


async def test_npm_ci_install_script_needing_the_network_is_named(bare_workspace: Workspace) -> None:
    h = harness(bare_workspace, "release/net")
    result = await h.run("tests")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith(f"npm ci failed: the install script of `{INSTALL_PACKAGE}` "
                                     "(`node download.js`) exited with an error: Error: request to "
                                     "https://tiles.geo-tiles.invalid/")
    assert "ENOTFOUND" in result.summary or "EAI_AGAIN" in result.summary
    assert "set NPM_CI_ARGS=--ignore-scripts" in result.summary
    assert any(p.startswith("npm ci (lockfile changed)") for p in h.progress)


async def test_npm_ci_args_ignore_scripts_lets_the_install_pass(bare_workspace: Workspace) -> None:
    h = harness(bare_workspace, "release/net", NPM_CI_ARGS="--ignore-scripts")
    result = await h.run("tests")
    assert result.outcome == Outcome.OK, (result.summary, result.output_tail)
    assert (bare_workspace.app / "node_modules" / INSTALL_PACKAGE / "download.js").is_file()
    assert result.data["total"] == 5


async def test_a_run_that_writes_tool_output_into_the_checkout_is_tidied(
        workspace: Workspace) -> None:
    """`npm run test` writing coverage/ (not in .gitignore) leaves the next release possible."""
    writes = ("const fs = require('node:fs');\n"
              "fs.mkdirSync('coverage/lcov-report', { recursive: true });\n"
              "fs.writeFileSync('coverage/lcov-report/index.html', '<html></html>');\n"
              "require('node:test')('writes coverage', () => {});\n")
    workspace.commit_on_branch("release/cov", {"tests/coverage.test.js": writes}, "coverage")
    result = await harness(workspace, "release/cov").run("tests")
    assert result.outcome == Outcome.OK, result.output_tail
    assert result.data["removed_from_workspace"] == ["coverage/lcov-report/index.html"]
    assert not (workspace.app / "coverage").exists()
    following = await harness(workspace, "release/1.2.0").run("tests")
    assert following.outcome == Outcome.OK, following.summary


async def test_other_new_files_are_kept_and_turn_a_pass_into_a_warning(workspace: Workspace) -> None:
    writes = ("require('node:fs').writeFileSync('snapshot-notes.txt', 'written by a test');\n"
              "require('node:test')('writes a file', () => {});\n")
    workspace.commit_on_branch("release/notes", {"tests/notes.test.js": writes}, "notes")
    result = await harness(workspace, "release/notes").run("tests")
    assert result.outcome == Outcome.WARN
    assert result.data["left_in_workspace"] == ["snapshot-notes.txt"]
    assert "snapshot-notes.txt" in result.details and "(.gitignore)" in result.details
    assert (workspace.app / "snapshot-notes.txt").read_text() == "written by a test"
