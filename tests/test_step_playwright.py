"""The `playwright` step: the JSON report parser, and real Playwright + Chromium runs.

The real runs drive the sample app's `e2e/specs/pwa-offline.spec.ts` with `@playwright/test`
from `.tools/node_modules` (scripts/install-tools.sh) and Debian's Chromium against the sandbox
staging app, once healthy and once with a broken service worker.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.providers.playwright import first_lines, parse_output, parse_report, strip_ansi
from bot.runbook.model import Outcome, Release
from bot.steps.registry import STEPS
from sandbox.server import serve
from sandbox.services import find_tool
from sandbox.staging_app import StagingState, create_staging_app
from sandbox.workspace import Workspace, create_workspace, run_git
from tests.helpers import StepHarness, make_settings, phase_in_default_runbook

REPO_ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = REPO_ROOT / ".tools" / "node_modules"
SPEC = "e2e/specs/pwa-offline.spec.ts"
TITLE = "fonts are cached and the offline page shows when the network is gone"

# --- the report parser (pure) ----------------------------------------------------------------

RED = "\x1b[31m"
DIM = "\x1b[2m"
RESET = "\x1b[39m\x1b[22m"


def _report(*, failed: bool) -> dict[str, Any]:
    error = {
        "message": f"Error: {DIM}expect({RESET}{RED}received{RESET}).toBeGreaterThan(expected)\n\n"
        f"Expected: > {RED}0{RESET}\nReceived:   {RED}0{RESET}\n\nmore\nand more",
        "stack": "Error: ...",
    }
    result = {"status": "failed", "duration": 1200, "error": error, "errors": [error]}
    passing = {"status": "passed", "duration": 800, "errors": []}
    return {
        "config": {},
        "suites": [
            {
                "title": "specs/pwa-offline.spec.ts",
                "specs": [],
                "suites": [
                    {
                        "title": "PWA works offline",
                        "specs": [
                            {
                                "title": "offline page",
                                "ok": not failed,
                                "tests": [
                                    {
                                        "projectName": "chromium",
                                        "status": "unexpected" if failed else "expected",
                                        "results": [result if failed else passing],
                                    }
                                ],
                            },
                            {
                                "title": "manifest",
                                "ok": True,
                                "tests": [
                                    {
                                        "projectName": "chromium",
                                        "status": "expected",
                                        "results": [passing],
                                    }
                                ],
                            },
                            {
                                "title": "install prompt",
                                "ok": True,
                                "tests": [{"projectName": "chromium", "status": "skipped",
                                           "results": [{"status": "skipped"}]}],
                            },
                        ],
                    }
                ],
            }
        ],
        "errors": [],
        "stats": {"expected": 1 if failed else 2, "unexpected": 1 if failed else 0,
                  "skipped": 1, "flaky": 0},
    }


def test_parse_report_failed_test_has_clean_error_lines() -> None:
    report = parse_report(_report(failed=True))
    assert (report.expected, report.unexpected, report.skipped, report.flaky) == (1, 1, 1, 0)
    assert not report.ok
    assert [t.title for t in report.failed] == [
        "specs/pwa-offline.spec.ts › PWA works offline › offline page"
    ]
    assert [t.title for t in report.passed] == [
        "specs/pwa-offline.spec.ts › PWA works offline › manifest"
    ]
    failed = report.failed[0]
    assert failed.project == "chromium"
    assert failed.duration_ms == 1200
    assert failed.errors == [
        "Error: expect(received).toBeGreaterThan(expected)",
        "Expected: > 0",
        "Received:   0",
        "more",
    ]
    assert all("\x1b" not in line for line in failed.errors)


def test_parse_report_all_passed() -> None:
    report = parse_report(_report(failed=False))
    assert report.ok
    assert len(report.passed) == 2 and not report.failed
    assert [t.status for t in report.tests] == ["expected", "expected", "skipped"]


def test_parse_report_global_errors_and_empty_runs_are_not_ok() -> None:
    report = parse_report({"suites": [], "errors": [{"message": "Error: No tests found"}],
                           "stats": {"expected": 0, "unexpected": 0}})
    assert report.errors == ["Error: No tests found"]
    assert not report.ok
    assert not parse_report({"suites": [], "stats": {}}).ok


def test_parse_output_finds_the_report_after_noise() -> None:
    noisy = "config loaded\nwarning: something\n{\n  \"stats\": {\"expected\": 3}, \"suites\": []\n}\n"
    parsed = parse_output(noisy)
    assert parsed is not None and parsed["stats"]["expected"] == 3
    assert parse_output("SyntaxError: playwright.config.ts: Missing semicolon. (47:6)") is None
    assert parse_output("") is None
    assert parse_output('{"not": "a report"}') is None


def test_strip_ansi_and_first_lines() -> None:
    assert strip_ansi(f"{RED}red{RESET} plain") == "red plain"
    assert first_lines("a\n\n b \nc\nd\ne", 3) == ["a", " b", "c"]


def test_step_is_registered_for_validate_with_its_requirements() -> None:
    sdef = STEPS["playwright"]
    assert phase_in_default_runbook("playwright") == "validate"
    assert sdef.tools == ("npx",)
    assert sdef.skip_reason(make_settings()) == "missing settings: APP_WORKSPACE, STAGING_URL"


# --- real runs -------------------------------------------------------------------------------

IN_CI = os.environ.get("CI") == "true"


def _require_playwright() -> str:
    """Chromium's path; skip (fail under CI=true) when node, Chromium or Playwright is absent."""
    chromium = find_tool("chromium")
    missing = []
    if shutil.which("npx") is None:
        missing.append("npx (Node.js)")
    if chromium is None:
        missing.append("chromium (Debian package chromium)")
    if not (NODE_MODULES / "@playwright" / "test").is_dir():
        missing.append("@playwright/test in .tools/node_modules")
    if missing:
        reason = f"{', '.join(missing)} not installed; run scripts/install-tools.sh"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    assert chromium is not None
    return str(chromium)


@pytest.fixture
def chromium() -> str:
    return _require_playwright()


@pytest.fixture
def workspace(tmp_path: Path, chromium: str) -> Workspace:
    return create_workspace(tmp_path / "ws", node_modules=NODE_MODULES)


@pytest.fixture
def staging_state() -> StagingState:
    return StagingState()


@pytest.fixture
async def staging_url(staging_state: StagingState) -> AsyncIterator[str]:
    async with serve(create_staging_app(staging_state)) as url:
        yield url


def _settings(workspace: Workspace, url: str, chromium: str, **extra: Any) -> Any:
    values: dict[str, Any] = {"APP_WORKSPACE": str(workspace.app), "STAGING_URL": url,
                              "PLAYWRIGHT_CHROMIUM_PATH": chromium, "COMMAND_TIMEOUT_SECONDS": 180}
    values.update(extra)
    return make_settings(**values)


async def test_pwa_spec_passes_against_healthy_staging(
    workspace: Workspace, staging_url: str, chromium: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bot itself may run under CI=true; the child must not see it (webServer/forbidOnly).
    monkeypatch.setenv("CI", "true")
    harness = StepHarness(_settings(workspace, staging_url, chromium))
    result = await harness.run("playwright")
    assert result.outcome == Outcome.OK, (result.summary, result.output_tail)
    assert result.summary == "Playwright: 1 passed, 0 failed"
    assert result.data["expected"] == 1 and result.data["unexpected"] == 0
    assert result.data["passed"] == [f"specs/pwa-offline.spec.ts › PWA works offline › {TITLE}"]
    assert result.data["failed"] == []
    assert "*Passed*" in result.details and TITLE in result.details
    assert result.fields["Automated Checks"] == f"Playwright {SPEC}: 1 passed, 0 failed"
    assert harness.progress and staging_url in harness.progress[0]


async def test_pwa_spec_fails_when_the_service_worker_is_broken(
    workspace: Workspace, staging_url: str, staging_state: StagingState, chromium: str
) -> None:
    staging_state.pwa_broken = True
    result = await StepHarness(_settings(workspace, staging_url, chromium)).run("playwright")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith("Playwright: 1 of 1 test failed: ")
    assert TITLE in result.summary
    assert "toBeGreaterThan" in result.summary
    assert result.data["failed"] and result.data["passed"] == []
    assert "*Failed*" in result.details
    assert "Expected: > 0" in result.details and "Received:   0" in result.details
    assert "\x1b" not in result.details


async def test_focused_test_passes_because_ci_is_not_passed_on(
    workspace: Workspace, staging_url: str, chromium: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # forbidOnly is `!!process.env.CI` in the app's config: with CI leaking in, `test.only` errors.
    spec = workspace.app / SPEC
    spec.write_text(spec.read_text().replace('test("fonts', 'test.only("fonts', 1))
    monkeypatch.setenv("CI", "true")
    result = await StepHarness(_settings(workspace, staging_url, chromium)).run("playwright")
    assert result.outcome == Outcome.OK, (result.summary, result.output_tail)


async def test_config_error_fails_with_the_output_tail(
    workspace: Workspace, staging_url: str, chromium: str
) -> None:
    config = workspace.app / "playwright.config.ts"
    config.write_text(config.read_text() + "\nsyntax error(\n")
    result = await StepHarness(_settings(workspace, staging_url, chromium)).run("playwright")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith("Playwright exited 1 without a JSON report")
    assert "playwright.config.ts" in result.output_tail


async def test_missing_spec_fails_clearly(
    workspace: Workspace, staging_url: str, chromium: str
) -> None:
    settings = _settings(workspace, staging_url, chromium, PLAYWRIGHT_SPECS="e2e/specs/nope.spec.ts")
    result = await StepHarness(settings).run("playwright")
    assert result.outcome == Outcome.FAIL
    assert result.summary == "Playwright reported an error outside the tests: Error: No tests found."
    assert "*Errors outside the tests*" in result.details


async def test_timeout_fails_with_a_clear_sentence(
    workspace: Workspace, staging_url: str, chromium: str
) -> None:
    settings = _settings(workspace, staging_url, chromium, COMMAND_TIMEOUT_SECONDS=0.3)
    result = await StepHarness(settings).run("playwright")
    assert result.outcome == Outcome.FAIL
    assert result.summary == "Playwright did not finish within 0.3s"


def _status(workspace: Workspace) -> str:
    return run_git(workspace.app, "status", "--porcelain", "--untracked-files=all")


async def test_two_releases_in_a_row_leave_the_workspace_as_they_found_it(
    workspace: Workspace, staging_url: str, staging_state: StagingState, chromium: str
) -> None:
    """The app's config writes test-results/ (not in .gitignore) into the checkout, as the real
    one does; a release must not leave it there for the next release to refuse."""
    assert "test-results" not in (workspace.app / ".gitignore").read_text()
    workspace.add_release_branch("1.2.0")
    workspace.add_release_branch("1.3.0")
    settings = _settings(workspace, staging_url, chromium)
    for number, (ref, broken) in enumerate([("release/1.2.0", True), ("release/1.3.0", False)], 1):
        staging_state.pwa_broken = broken  # a failure writes a screenshot as well
        h = StepHarness(settings, Release(id=number, environment="staging", ref=ref,
                                          started_by="U1"))
        tests = await h.run("tests")
        assert tests.outcome == Outcome.OK, (number, tests.summary)
        played = await h.run("playwright")
        assert played.outcome == (Outcome.FAIL if broken else Outcome.OK), played.summary
        assert _status(workspace) == "", number
        assert not (workspace.app / "test-results").exists()
        assert not (workspace.app / "playwright-report").exists()
    assert any("elapsed" in text or "Running Playwright" in text for text in h.progress)


async def test_a_persons_own_files_in_test_results_are_kept(
    workspace: Workspace, staging_url: str, chromium: str
) -> None:
    mine = workspace.app / "test-results" / "notes-from-yesterday.md"
    mine.parent.mkdir()
    mine.write_text("flaky on Tuesday\n")
    result = await StepHarness(_settings(workspace, staging_url, chromium)).run("playwright")
    assert result.outcome == Outcome.OK, result.summary
    assert mine.read_text() == "flaky on Tuesday\n"
    assert _status(workspace) == "?? test-results/notes-from-yesterday.md"
