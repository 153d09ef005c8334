"""The step registry and the context a step runs with.

A step is an async function `run(ctx) -> StepResult` registered with `@step(...)`, which also
declares the settings and tools it needs (missing ones make the engine skip it with a warning
that names them, or refuse the release when the runbook marks the step required; see
bot.runbook.readiness) and a one-line description for `--dry-run` and `check-config`.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.redact import Redactor
from bot.runbook.model import Decision, Gate, Release, StepResult

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
    """A registered step."""

    name: str
    title: str
    phase: str
    run: StepFn
    requires: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    timeout: float | None = 300.0
    describe: str = ""
    # Settings of which at least one group must be set, e.g. (("SUPABASE_DB_URL",),
    # ("SUPABASE_PROJECT_REF",)); an empty tuple means no alternatives.
    requires_any: tuple[tuple[str, ...], ...] = field(default_factory=tuple)

    def missing_settings(self, settings: Settings) -> list[str]:
        """Settings this step needs that are unset."""
        missing = settings.missing(self.requires)
        if self.requires_any and all(settings.missing(group) for group in self.requires_any):
            missing.append(" or ".join("+".join(group) for group in self.requires_any))
        return missing

    def missing_tools(self, settings: Settings) -> list[str]:
        """Executables this step needs that are not on this machine."""
        from bot.providers.tools import resolve_tool

        return [tool for tool in self.tools if resolve_tool(tool, settings) is None]

    def skip_reason(self, settings: Settings) -> str | None:
        """Why this step cannot run with these settings on this machine, or None."""
        missing = self.missing_settings(settings)
        if missing:
            return "missing settings: " + ", ".join(missing)
        tools = self.missing_tools(settings)
        if tools:
            return "tools not installed: " + ", ".join(tools)
        return None


REGISTRY: dict[str, StepDef] = {}


def step(
    name: str,
    *,
    title: str,
    phase: str,
    describe: str,
    requires: tuple[str, ...] = (),
    requires_any: tuple[tuple[str, ...], ...] = (),
    tools: tuple[str, ...] = (),
    timeout: float | None = 300.0,
) -> Callable[[StepFn], StepFn]:
    """Register `fn` as the step `name`."""

    def register(fn: StepFn) -> StepFn:
        if name in REGISTRY and REGISTRY[name].run is not fn:
            raise ValueError(f"step {name!r} is registered twice")
        REGISTRY[name] = StepDef(
            name=name,
            title=title,
            phase=phase,
            run=fn,
            requires=requires,
            requires_any=requires_any,
            tools=tools,
            timeout=timeout,
            describe=describe,
        )
        return fn

    return register


def load_steps() -> dict[str, StepDef]:
    """Import every step module (registering its steps) and return the registry."""
    import bot.steps  # noqa: F401  (imports register the steps)

    return REGISTRY


def which(name: str) -> str | None:
    """`shutil.which`, in one place so tests can see what the steps look up."""
    return shutil.which(name)
