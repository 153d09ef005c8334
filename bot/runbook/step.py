"""What a step is: its declaration (`StepDef`) and the context it runs with (`StepContext`).

A step is an async function `run(ctx) -> StepResult`. Each module of `bot.steps` declares its
step as data, `STEP = StepDef(...)`, naming the settings and tools it needs (missing ones make
the engine skip it with a warning that names them, or refuse the release when the runbook marks
the step required; see bot.runbook.readiness) and a one-line description for `--dry-run` and
`check-config`. The catalog of steps (`bot.steps.registry.STEPS`) is handed to the engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.redact import Redactor
from bot.runbook.model import Decision, Gate, Release, StepResult
from bot.runbook.ports import ToolLookup, on_path

StepFn = Callable[["StepContext"], Awaitable[StepResult]]


@dataclass
class StepContext:
    """What a running step may use: settings, the release so far, and engine callbacks."""

    settings: Settings
    release: Release
    step_name: str
    options: dict[str, Any]
    redact: Redactor
    progress: Callable[[str], Awaitable[None]]
    ask: Callable[[Gate], Awaitable[Decision]]

    def option(self, name: str, default: Any = None) -> Any:
        """A runbook option of this step, or `default`."""
        return self.options.get(name, default)


@dataclass(frozen=True)
class StepDef:
    """A step of the catalog: its name, what it needs, and the function that does the work."""

    name: str
    title: str
    run: StepFn
    requires: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    timeout: float | None = 300.0
    describe: str = ""
    # Settings of which at least one group must be set, e.g. (("SUPABASE_DB_URL",),
    # ("SUPABASE_PROJECT_REF",)); an empty tuple means no alternatives.
    requires_any: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    # Where `tools` are looked for: the step names the lookup that knows its executables.
    find_tool: ToolLookup = on_path

    def missing_settings(self, settings: Settings) -> list[str]:
        """Settings this step needs that are unset."""
        missing = settings.missing(self.requires)
        if self.requires_any and all(settings.missing(group) for group in self.requires_any):
            missing.append(" or ".join("+".join(group) for group in self.requires_any))
        return missing

    def missing_tools(self, settings: Settings) -> list[str]:
        """Executables this step needs that are not on this machine."""
        return [tool for tool in self.tools if self.find_tool(tool, settings) is None]

    def skip_reason(self, settings: Settings) -> str | None:
        """Why this step cannot run with these settings on this machine, or None."""
        missing = self.missing_settings(settings)
        if missing:
            return "missing settings: " + ", ".join(missing)
        tools = self.missing_tools(settings)
        if tools:
            return "tools not installed: " + ", ".join(tools)
        return None
