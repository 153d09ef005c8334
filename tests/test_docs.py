"""README stays in step with the code: settings table, CLI commands, runbook example."""

from __future__ import annotations

from pathlib import Path

from bot.cli import build_parser
from bot.docs import settings_table
from bot.runbook.loader import DEFAULT_RUNBOOK, parse_runbook
from bot.steps.registry import STEPS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_settings_table_matches_the_settings_class() -> None:
    start = README.index("<!-- settings:start -->") + len("<!-- settings:start -->")
    end = README.index("<!-- settings:end -->")
    assert README[start:end].strip() == settings_table(), "run: python -m bot.docs and paste"


def test_readme_documents_every_cli_command() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in sub.choices:  # type: ignore[attr-defined]
        assert f"release-bot {name}" in README, name


def test_readme_lists_every_default_runbook_step() -> None:
    registry = STEPS
    runbook = parse_runbook(DEFAULT_RUNBOOK.read_text(), registry)
    for _, spec in runbook.enabled_steps():
        assert f"`{spec.name}`" in README, spec.name


def test_example_runbook_is_valid() -> None:
    parse_runbook((REPO / "runbook.example.yml").read_text(), STEPS)
