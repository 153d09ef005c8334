"""The demo marks a step whose tool is absent as skipped, with the reason, as `make demo` says."""

from __future__ import annotations

import io
from contextlib import ExitStack
from pathlib import Path

import pytest

from bot.runbook.loader import load_runbook
from bot.steps.registry import STEPS
from sandbox import demo


@pytest.mark.parametrize("absent", ["playwright", "chromium"])
def test_absent_browser_tool_skips_the_playwright_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, absent: str) -> None:
    real = demo.find_tool
    monkeypatch.setattr(demo, "find_tool", lambda name: None if name in (absent, "postgres",
                                                                         "redis-server")
                        else real(name) or Path("/usr/bin/true"))
    sandbox = demo.Sandbox(tmp_path, io.StringIO())
    with ExitStack() as stack:
        sandbox.start_services(stack)
    runbook = load_runbook(str(sandbox.runbook()), STEPS)
    skips = {spec.name: spec.skip for _, spec in runbook.enabled_steps() if spec.skip}
    name = "Playwright" if absent == "playwright" else "Chromium"
    assert skips["playwright"] == f"{name} is not installed (run scripts/install-tools.sh)"
    assert any(note.startswith("playwright step skipped") for note in sandbox.notes)
    assert "migrations_push" in skips  # PostgreSQL is absent too: skipped, never faked


def test_present_tools_run_the_playwright_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "find_tool", lambda name: Path("/usr/bin/true"))
    monkeypatch.setattr(demo, "REPO_ROOT", tmp_path)
    (tmp_path / ".tools" / "node_modules" / "@playwright" / "test").mkdir(parents=True)
    sandbox = demo.Sandbox(tmp_path, io.StringIO())
    sandbox.skip_absent_browser_tools()
    assert "playwright" not in sandbox.skips
