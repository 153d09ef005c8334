"""The catalog of steps: every step the runbook may name, listed by hand (no discovery, no
import side effects). The composition root (bot.app) hands `STEPS` to the engine."""

from __future__ import annotations

from bot.runbook.step import StepDef
from bot.steps import (
    build_logs,
    coach_stream,
    deploy,
    health,
    lint,
    merge,
    migrations_push,
    migrations_review,
    monitoring_links,
    playwright,
    redis,
    schema_current,
    secrets_present,
    smoke,
    telemetry_fresh,
    telemetry_staging,
    tests,
)


def catalog(*steps: StepDef) -> dict[str, StepDef]:
    """Steps by name; a name given twice is a mistake."""
    out: dict[str, StepDef] = {}
    for step in steps:
        if step.name in out:
            raise ValueError(f"step {step.name!r} is listed twice")
        out[step.name] = step
    return out


# In the order of the default runbook.
STEPS: dict[str, StepDef] = catalog(
    telemetry_fresh.STEP,
    secrets_present.STEP,
    tests.STEP,
    lint.STEP,
    migrations_review.STEP,
    migrations_push.STEP,
    merge.STEP,
    deploy.STEP,
    build_logs.STEP,
    smoke.STEP,
    coach_stream.STEP,
    playwright.STEP,
    health.STEP,
    redis.STEP,
    schema_current.STEP,
    telemetry_staging.STEP,
    monitoring_links.STEP,
)
