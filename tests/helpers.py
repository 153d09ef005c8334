"""Test helpers: settings without the developer's environment, and a StepContext to run a step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config import Settings, isolated_settings
from bot.redact import Redactor
from bot.runbook.model import Decision, Gate, Release, StepResult
from bot.runbook.step import StepContext
from bot.steps.registry import STEPS


def make_settings(**values: Any) -> Settings:
    """Settings from `values` only (no environment, no .env)."""
    return isolated_settings(**values)


class StepHarness:
    """Runs one registered step outside the engine, recording progress and gates."""

    def __init__(self, settings: Settings, release: Release | None = None,
                 answer: Callable[[Gate], str] | None = None, reason: str = "") -> None:
        self.settings = settings
        self.release = release or Release(id=1, environment="staging", ref="main", started_by="U1")
        self.progress: list[str] = []
        self.gates: list[Gate] = []
        self.answer = answer
        self.reason = reason  # what the person says when answering a gate

    async def run(self, name: str, **options: Any) -> StepResult:
        async def progress(text: str) -> None:
            self.progress.append(text)

        async def ask(gate: Gate) -> Decision:
            self.gates.append(gate)
            if self.answer is None:
                raise AssertionError(f"step asked {gate.key!r} but the test gave no answer")
            return Decision(action=self.answer(gate), user="UAPPROVER", reason=self.reason)

        ctx = StepContext(settings=self.settings, release=self.release, step_name=name,
                          options=options, redact=Redactor(self.settings.secret_values()),
                          progress=progress, ask=ask)
        result = await STEPS[name].run(ctx)
        self.release.data.setdefault("steps", {})[name] = result.data
        for field, value in result.fields.items():
            self.release.fields[field] = value
        return result


def vendor_specs() -> Path:
    """The vendors' official specs (../shared/specs beside the checkout, or VENDOR_SPECS_DIR);
    read by the tests, never copied into the repository."""
    import os

    given = os.environ.get("VENDOR_SPECS_DIR")
    if given:
        return Path(given)
    here = Path(__file__).resolve().parents[1]
    for candidate in (here.parent / "shared" / "specs", Path("/work/shared/specs")):
        if candidate.is_dir():
            return candidate
    return here.parent / "shared" / "specs"


def phase_in_default_runbook(step: str) -> str:
    """The phase of the default runbook that runs `step` (the runbook, not the step, says)."""
    from bot.runbook.loader import load_runbook

    return next(phase.name for phase, spec in load_runbook(None, STEPS).enabled_steps()
                if spec.name == step)


def migration_history(server: Any, database: str) -> list[str]:
    """The migration versions a PostgreSQL database has applied, as the Supabase CLI records them."""
    rows = server.query("select version from supabase_migrations.schema_migrations order by 1",
                        database=database)
    return [row[0] for row in rows]
