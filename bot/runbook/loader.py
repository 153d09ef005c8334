"""Load a runbook from YAML and validate it against the registered steps.

Errors name the offending entry (`phases[1].steps[2] (name: 'depoly')`) and what is wrong, so a
team editing `RUNBOOK_PATH` sees exactly which line to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.runbook.model import Runbook
from bot.runbook.step import StepDef

DEFAULT_RUNBOOK = Path(__file__).with_name("default.yml")


class RunbookError(Exception):
    """The runbook file cannot be used; the message says where and why."""


def _where(loc: tuple[Any, ...], raw: Any) -> str:
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
        if isinstance(node, dict) and "name" in node and isinstance(item, int):
            parts[-1] += f" (name: {node['name']!r})"
    return ".".join(parts) or "(top level)"


def parse_runbook(text: str, registry: dict[str, StepDef], source: str = "runbook") -> Runbook:
    """Parse and validate runbook YAML; RunbookError names the offending entry."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RunbookError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise RunbookError(f"{source}: expected a mapping with `phases`, got {type(raw).__name__}")
    try:
        runbook = Runbook.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: {_where(err['loc'], raw)}: {err['msg']}" for err in exc.errors()]
        raise RunbookError("\n".join(lines)) from exc
    seen: set[str] = set()
    for p, phase in enumerate(runbook.phases):
        for s, spec in enumerate(phase.steps):
            where = f"{source}: phases[{p}] (name: {phase.name!r}).steps[{s}] (name: {spec.name!r})"
            if spec.name not in registry:
                known = ", ".join(sorted(registry))
                raise RunbookError(f"{where}: unknown step; known steps: {known}")
            if spec.name in seen:
                raise RunbookError(f"{where}: step appears twice")
            if spec.required is not False and spec.skip:
                raise RunbookError(f"{where}: `required` and `skip` contradict each other; "
                                   "remove one of them")
            seen.add(spec.name)
    if not runbook.enabled_steps():
        raise RunbookError(f"{source}: no enabled step")
    return runbook


def load_runbook(path: str | Path | None, registry: dict[str, StepDef]) -> Runbook:
    """The runbook at `path`, or the default one."""
    target = Path(path) if path else DEFAULT_RUNBOOK
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookError(f"RUNBOOK_PATH {target}: cannot read it ({exc.strerror})") from exc
    return parse_runbook(text, registry, source=str(target) if path else "default runbook")
