"""Runbook files: validation errors name the offending entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.runbook.loader import RunbookError, load_runbook, parse_runbook
from bot.steps.registry import STEPS


def registry():  # type: ignore[no-untyped-def]
    return STEPS


@pytest.mark.parametrize("text, message", [
    ("phases: [{name: p, steps: [{name: depoly}]}]",
     "phases[0] (name: 'p').steps[0] (name: 'depoly'): unknown step; known steps:"),
    ("phases: [{name: p, steps: [{name: smoke}, {name: smoke}]}]", "step appears twice"),
    ("phases: [{name: p, steps: [{name: smoke, timeout: -1}]}]",
     "phases[0] (name: 'p').steps[0] (name: 'smoke').timeout: Input should be greater than 0"),
    ("phases: [{name: p, steps: [{name: smoke, colour: red}]}]",
     "steps[0] (name: 'smoke').colour: Extra inputs are not permitted"),
    ("phases: [{name: p, steps: [{name: smoke, enabled: false}]}]", "no enabled step"),
    ("phases: [{steps: []}]", "phases[0].name: Field required"),
    ("- just a list", "expected a mapping"),
    ("phases: [", "not valid YAML"),
])
def test_errors_name_the_entry(text: str, message: str) -> None:
    with pytest.raises(RunbookError) as info:
        parse_runbook(text, registry(), source="my.yml")
    assert message in str(info.value)
    assert str(info.value).startswith("my.yml")


def test_disable_reorder_configure(tmp_path: Path) -> None:
    path = tmp_path / "rb.yml"
    path.write_text("""
phases:
  - name: validate
    concurrent: true
    steps:
      - {name: health}
      - {name: smoke, options: {path: /dashboard}}
      - {name: redis, enabled: false}
""")
    runbook = load_runbook(path, registry())
    assert [s.name for _, s in runbook.enabled_steps()] == ["health", "smoke"]
    assert runbook.phases[0].steps[1].options == {"path": "/dashboard"}


def test_unreadable_path_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match=r"RUNBOOK_PATH .*missing\.yml: cannot read it"):
        load_runbook(tmp_path / "missing.yml", registry())
