"""The one step runner: a named step run outside a release (the rollback's checks), with the
catalog's skip reasons, its timeout, and a crash turned into a redacted failure."""

from __future__ import annotations

import asyncio

from bot.redact import Redactor
from bot.runbook.model import Gate, Outcome, Release, StepResult
from bot.runbook.runner import StepRunner, StopRelease
from bot.runbook.step import StepContext, StepDef
from bot.steps.registry import STEPS
from tests.helpers import make_settings

TOKEN = "xoxb-123456789012-abcdefghijkl"


def release() -> Release:
    return Release(id=1, environment="staging", ref="main", started_by="U1")


def runner(**steps: StepDef) -> StepRunner:
    settings = make_settings()
    return StepRunner(settings=settings, steps=steps, redactor=Redactor([TOKEN]))


async def test_check_skips_a_catalog_step_that_cannot_run_and_names_why() -> None:
    checks = StepRunner(settings=make_settings(), steps=STEPS, redactor=Redactor())
    result = await checks.check(release(), "smoke")
    assert result.outcome == Outcome.SKIPPED
    assert result.summary == "Skipped: missing settings: STAGING_URL"


async def test_check_runs_the_step_and_masks_secrets_in_its_result() -> None:
    async def leaky(ctx: StepContext) -> StepResult:
        return StepResult.ok(f"token {TOKEN} works", data={"token": TOKEN})

    result = await runner(leaky=StepDef(name="leaky", title="Leaky", run=leaky)).check(
        release(), "leaky")
    assert result.outcome == Outcome.OK
    assert TOKEN not in result.summary and TOKEN not in str(result.data)


async def test_a_crash_or_a_question_becomes_a_redacted_failure() -> None:
    async def crash(ctx: StepContext) -> StepResult:
        raise RuntimeError(f"connection refused with {TOKEN}")

    async def asks(ctx: StepContext) -> StepResult:
        await ctx.ask(Gate(key="k", prompt="go?", actions=[]))
        return StepResult.ok("never")

    steps = runner(crash=StepDef(name="crash", title="Crash", run=crash),
                   asks=StepDef(name="asks", title="Asks", run=asks))
    crashed = await steps.check(release(), "crash")
    assert crashed.outcome == Outcome.FAIL
    assert crashed.summary.startswith("Crashed: RuntimeError: connection refused with ")
    assert TOKEN not in crashed.summary and TOKEN not in crashed.output_tail
    asked = await steps.check(release(), "asks")
    assert asked.outcome == Outcome.FAIL
    assert "asked a question outside a release run" in asked.summary


async def test_the_step_timeout_fails_the_step_and_stop_release_passes_through() -> None:
    started = asyncio.Event()

    async def hang(ctx: StepContext) -> StepResult:
        started.set()
        await asyncio.Event().wait()
        return StepResult.ok("never")

    async def stop(ctx: StepContext) -> StepResult:
        raise StopRelease("finished elsewhere")

    steps = runner(hang=StepDef(name="hang", title="Hang", run=hang, timeout=0.05),
                   stop=StepDef(name="stop", title="Stop", run=stop))
    timed_out = await steps.check(release(), "hang")
    assert started.is_set()
    assert timed_out.outcome == Outcome.FAIL and timed_out.summary == "Timed out after 0.05s"
    try:
        await steps.check(release(), "stop")
    except StopRelease as exc:
        assert str(exc) == "finished elsewhere"
    else:
        raise AssertionError("StopRelease was turned into a result")
