"""The runbook engine with fake steps: order, concurrency, timeout, cancel, persist-before-announce,
stop on failure, skipped steps, crashes, gates, and recovery after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.app import sha_lookup
from bot.locks import SqliteLock
from bot.redact import Redactor
from bot.runbook.engine import Engine, EngineError
from bot.runbook.loader import parse_runbook
from bot.runbook.model import (
    Decision,
    Gate,
    GateAction,
    Release,
    ReleaseStatus,
    StepRecord,
    StepResult,
    StepState,
)
from bot.runbook.step import StepContext, StepDef
from bot.store import Store
from tests.helpers import make_settings


class RecordingReporter:
    """Records every announcement together with what the store held at that moment."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.events: list[tuple[str, str, str | None]] = []
        self.gates: asyncio.Queue[tuple[Release, StepRecord]] = asyncio.Queue()

    def _stored_state(self, release: Release, name: str | None) -> str | None:
        stored = self.store.get_release(release.id or 0)
        if stored is None:
            return None
        if name is None:
            return stored.status.value
        return stored.step(name).state.value

    async def release_started(self, release: Release) -> None:
        self.events.append(("release_started", "", self._stored_state(release, None)))

    async def step_started(self, release: Release, record: StepRecord) -> None:
        self.events.append(("started", record.name, self._stored_state(release, record.name)))

    async def step_progress(self, release: Release, record: StepRecord, text: str) -> None:
        self.events.append(("progress", record.name, text))

    async def step_finished(self, release: Release, record: StepRecord) -> None:
        self.events.append(("finished", record.name, self._stored_state(release, record.name)))

    async def gate_opened(self, release: Release, record: StepRecord) -> None:
        self.events.append(("gate_opened", record.name, self._stored_state(release, record.name)))
        await self.gates.put((release, record))

    async def gate_closed(self, release: Release, record: StepRecord, decision: Decision) -> None:
        self.events.append(("gate_closed", record.name, decision.action))

    async def phase_started(self, release: Release, phase: str, records: list[StepRecord]) -> None:
        self.events.append(("phase_started", phase, ",".join(r.name for r in records)))

    async def phase_finished(self, release: Release, phase: str, records: list[StepRecord]) -> None:
        self.events.append(("phase_finished", phase, ",".join(r.name for r in records)))

    async def release_finished(self, release: Release) -> None:
        self.events.append(("release_finished", "", self._stored_state(release, None)))

    async def note(self, release: Release, text: str) -> None:
        self.events.append(("note", "", text))

    def names(self, kind: str) -> list[str]:
        return [name for k, name, _ in self.events if k == kind]


StepFn = Callable[[StepContext], Awaitable[StepResult]]


def ok(summary: str = "fine") -> StepFn:
    async def run(ctx: StepContext) -> StepResult:
        return StepResult.ok(summary, fields={"Automated Checks": f"{ctx.step_name} ran"})
    return run


def fail(summary: str = "down") -> StepFn:
    async def run(ctx: StepContext) -> StepResult:
        return StepResult.fail(summary)
    return run


def make_engine(steps: dict[str, StepFn], runbook_yaml: str, store: Store | None = None,
                requires: dict[str, tuple[str, ...]] | None = None,
                **settings: Any) -> tuple[Engine, RecordingReporter, Store]:
    registry = {
        name: StepDef(name=name, title=name.title(), run=fn, describe=f"does {name}",
                      requires=(requires or {}).get(name, ()), timeout=5)
        for name, fn in steps.items()
    }
    store = store or Store(":memory:")
    reporter = RecordingReporter(store)
    config = make_settings(**settings)
    engine = Engine(settings=config, store=store, reporter=reporter,
                    runbook=parse_runbook(runbook_yaml, registry), registry=registry,
                    lock=SqliteLock(store),
                    find_sha=sha_lookup(config, Redactor(config.secret_values())))
    return engine, reporter, store


SEQUENTIAL = """
phases:
  - name: one
    steps: [{name: a}, {name: b}]
  - name: two
    steps: [{name: c}]
"""


async def test_steps_run_in_order_and_every_transition_is_stored_before_it_is_announced() -> None:
    engine, reporter, _store = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL)
    release = await engine.start(ref="main", user="U1", channel="C1")
    done = await engine.wait(release.id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED
    assert reporter.names("started") == ["a", "b", "c"]
    assert reporter.names("finished") == ["a", "b", "c"]
    # what the store held when each event was announced
    assert [e[2] for e in reporter.events if e[0] == "started"] == ["running"] * 3
    assert [e[2] for e in reporter.events if e[0] == "finished"] == ["ok"] * 3
    assert reporter.events[-1] == ("release_finished", "", "succeeded")
    assert reporter.events[0] == ("release_started", "", "running")
    assert done.fields["Automated Checks"].splitlines() == ["a ran", "b ran", "c ran"]
    assert done.duration_seconds is not None


async def test_first_failure_stops_the_release() -> None:
    async def fail(ctx: StepContext) -> StepResult:
        return StepResult.fail("broken", output_tail="last line")

    engine, reporter, _ = make_engine({"a": fail, "b": ok(), "c": ok()}, SEQUENTIAL)
    release = await engine.start(ref="main", user="U1", channel=None)
    done = await engine.wait(release.id or 0)
    assert done.status == ReleaseStatus.FAILED
    assert reporter.names("started") == ["a"]
    assert [s.state for s in done.steps] == [StepState.FAIL, StepState.PENDING, StepState.PENDING]
    assert done.step("a").result is not None and done.step("a").result.output_tail == "last line"


async def test_concurrent_phase_runs_its_checks_at_the_same_time() -> None:
    # Each step waits until all three have started: this only finishes if they run together.
    barrier = asyncio.Barrier(3)

    async def together(ctx: StepContext) -> StepResult:
        async with asyncio.timeout(3):
            await barrier.wait()
        return StepResult.ok("met the others")

    runbook = "phases: [{name: validate, concurrent: true, steps: [{name: x}, {name: y}, {name: z}]}]"
    engine, _, _ = make_engine({"x": together, "y": together, "z": together}, runbook)
    release = await engine.start(ref="main", user="U1", channel=None)
    done = await engine.wait(release.id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED, [s.result for s in done.steps]


async def test_a_failing_concurrent_check_lets_the_others_finish_then_fails() -> None:
    runbook = """
phases:
  - {name: v, concurrent: true, steps: [{name: x}, {name: y}]}
  - {name: after, steps: [{name: z}]}
"""
    engine, reporter, _ = make_engine({"x": fail(), "y": ok(), "z": ok()}, runbook)
    done = await engine.wait((await engine.start(ref="m", user="U", channel=None)).id or 0)
    assert done.status == ReleaseStatus.FAILED
    assert done.step("y").state == StepState.OK
    assert "z" not in reporter.names("started")


async def test_step_timeout_fails_the_step() -> None:
    async def slow(ctx: StepContext) -> StepResult:
        await asyncio.sleep(30)
        return StepResult.ok("never")

    runbook = "phases: [{name: p, steps: [{name: a, timeout: 0.05}]}]"
    engine, _, _ = make_engine({"a": slow}, runbook)
    done = await engine.wait((await engine.start(ref="m", user="U", channel=None)).id or 0)
    assert done.status == ReleaseStatus.FAILED
    assert done.step("a").result is not None
    assert done.step("a").result.summary == "Timed out after 0.05s"


async def test_a_crashing_step_fails_the_release_not_the_bot() -> None:
    async def crash(ctx: StepContext) -> StepResult:
        raise RuntimeError("boom with token xoxb-1234567890-abcdefghij")

    engine, _, _ = make_engine({"a": crash, "b": ok(), "c": ok()}, SEQUENTIAL)
    done = await engine.wait((await engine.start(ref="m", user="U", channel=None)).id or 0)
    assert done.status == ReleaseStatus.FAILED
    result = done.step("a").result
    assert result is not None and "RuntimeError: boom" in result.summary
    assert "xoxb-1234567890" not in result.summary + result.output_tail


async def test_missing_settings_skip_the_step_with_a_warning_naming_them() -> None:
    engine, _, _ = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL,
                               requires={"b": ("STAGING_URL", "VERCEL_TOKEN")})
    done = await engine.wait((await engine.start(ref="m", user="U", channel=None)).id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED
    b = done.step("b")
    assert b.state == StepState.SKIPPED
    assert b.result is not None and "STAGING_URL, VERCEL_TOKEN" in b.result.summary
    plan = {p.name: p.skip_reason for p in engine.plan()}
    assert plan == {"a": None, "b": "missing settings: STAGING_URL, VERCEL_TOKEN", "c": None}


async def test_cancel_stops_a_running_release_and_frees_the_environment() -> None:
    started = asyncio.Event()

    async def hang(ctx: StepContext) -> StepResult:
        if ctx.release.ref == "m":
            started.set()
            await asyncio.sleep(30)
        return StepResult.ok("ran")

    engine, reporter, _store = make_engine({"a": hang, "b": ok(), "c": ok()}, SEQUENTIAL)
    release = await engine.start(ref="m", user="U", channel=None)
    await started.wait()
    with pytest.raises(EngineError, match="still running"):
        await engine.start(ref="other", user="U2", channel=None)
    cancelled = await engine.cancel(release.id or 0, "U3", "wrong ref")
    assert cancelled.status == ReleaseStatus.CANCELLED
    assert cancelled.data["cancelled_by"] == "U3"
    assert [s.state for s in cancelled.steps] == [StepState.CANCELLED] * 3
    assert reporter.events[-1] == ("release_finished", "", "cancelled")
    again = await engine.start(ref="other", user="U2", channel=None)
    assert (await engine.wait(again.id or 0)).status == ReleaseStatus.SUCCEEDED


GATED = """
phases:
  - name: p
    steps: [{name: gated}, {name: after}]
"""


def gated_step(log: list[str]) -> StepFn:
    async def run(ctx: StepContext) -> StepResult:
        gate = Gate(key="apply-2", prompt="Apply 2 migrations?", actions=[
            GateAction(id="apply", label="Apply", style="primary"),
            GateAction(id="skip", label="Skip"),
        ])
        decision = await ctx.ask(gate)
        log.append(f"{decision.action} by {decision.user}")
        return StepResult.ok(f"{decision.action} by {decision.user}")
    return run


async def test_gate_waits_for_an_allowed_person_and_ignores_a_second_press() -> None:
    log: list[str] = []
    engine, reporter, store = make_engine({"gated": gated_step(log), "after": ok()}, GATED,
                                          RELEASE_APPROVERS="UBOSS")
    release = await engine.start(ref="m", user="U", channel=None)
    await reporter.gates.get()
    waiting = store.get_release(release.id or 0)
    assert waiting is not None and waiting.status == ReleaseStatus.WAITING
    assert waiting.step("gated").gate is not None

    refused = await engine.decide(release.id or 0, "gated", "apply-2", "apply", "UMALLORY")
    assert not refused.accepted and "Only release approvers" in refused.message
    accepted = await engine.decide(release.id or 0, "gated", "apply-2", "apply", "UBOSS")
    assert accepted.accepted
    second = await engine.decide(release.id or 0, "gated", "apply-2", "skip", "UBOSS")
    assert not second.accepted
    done = await engine.wait(release.id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED
    assert log == ["apply by UBOSS"]


async def test_a_release_waiting_at_a_gate_survives_a_restart(tmp_path: Any) -> None:
    path = tmp_path / "log.db"
    log: list[str] = []
    engine, reporter, _ = make_engine({"gated": gated_step(log), "after": ok()}, GATED,
                                      store=Store(path))
    release = await engine.start(ref="m", user="U", channel=None)
    await reporter.gates.get()
    await engine.shutdown()  # the process goes away while waiting

    engine2, reporter2, _store2 = make_engine({"gated": gated_step(log), "after": ok()}, GATED,
                                             store=Store(path))
    await engine2.recover()
    await reporter2.gates.get()  # resumed: the question is asked again
    assert (await engine2.decide(release.id or 0, "gated", "apply-2", "apply", "U9")).accepted
    done = await engine2.wait(release.id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED and log == ["apply by U9"]


async def test_a_decision_made_while_the_bot_was_down_is_honoured(tmp_path: Any) -> None:
    path = tmp_path / "log.db"
    log: list[str] = []
    engine, reporter, _ = make_engine({"gated": gated_step(log), "after": ok()}, GATED,
                                      store=Store(path))
    release = await engine.start(ref="m", user="U", channel=None)
    await reporter.gates.get()
    await engine.shutdown()
    engine2, _, _ = make_engine({"gated": gated_step(log), "after": ok()}, GATED, store=Store(path))
    # The press arrives before recover() ran: it is stored and the release resumes from it.
    assert (await engine2.decide(release.id or 0, "gated", "apply-2", "skip", "U9")).accepted
    await asyncio.sleep(0)
    done = await engine2.wait(release.id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED and log == ["skip by U9"]


async def test_a_release_interrupted_mid_step_is_marked_and_can_be_retried(tmp_path: Any) -> None:
    path = tmp_path / "log.db"
    started = asyncio.Event()

    async def hang(ctx: StepContext) -> StepResult:
        started.set()
        await asyncio.sleep(30)
        return StepResult.ok("never")

    engine, _, _ = make_engine({"a": hang, "b": ok(), "c": ok()}, SEQUENTIAL, store=Store(path))
    release = await engine.start(ref="m", user="U", channel=None)
    await started.wait()
    await engine.shutdown()  # a crash: the stored release still says running

    engine2, reporter2, store2 = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL,
                                             store=Store(path))
    await engine2.recover()
    interrupted = store2.get_release(release.id or 0)
    assert interrupted is not None and interrupted.status == ReleaseStatus.INTERRUPTED
    assert interrupted.step("a").state == StepState.INTERRUPTED
    await engine2.retry(release.id or 0, "U2")
    done = await engine2.wait(release.id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED
    assert reporter2.names("started") == ["a", "b", "c"]


async def test_retry_resumes_from_the_failed_step_unless_a_newer_release_exists() -> None:
    attempts: list[int] = []

    async def flaky(ctx: StepContext) -> StepResult:
        attempts.append(1)
        return StepResult.fail("nope") if len(attempts) == 1 else StepResult.ok("yes")

    engine, reporter, _ = make_engine({"a": ok(), "b": flaky, "c": ok()}, SEQUENTIAL)
    first = await engine.start(ref="m", user="U", channel=None)
    assert (await engine.wait(first.id or 0)).status == ReleaseStatus.FAILED
    await engine.retry(first.id or 0, "U")
    done = await engine.wait(first.id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED
    assert reporter.names("started") == ["a", "b", "b", "c"]  # a is not run again

    attempts.clear()
    second = await engine.start(ref="m2", user="U", channel=None)
    assert (await engine.wait(second.id or 0)).status == ReleaseStatus.FAILED
    third = await engine.start(ref="m3", user="U", channel=None)
    await engine.wait(third.id or 0)
    with pytest.raises(EngineError, match="started after"):
        await engine.retry(second.id or 0, "U")


async def test_progress_is_reported_redacted() -> None:
    async def chatty(ctx: StepContext) -> StepResult:
        await ctx.progress("polling with key sk-abcdefghijklmnopqrstuvwx")
        return StepResult.ok("done")

    runbook = "phases: [{name: p, steps: [{name: a}]}]"
    engine, reporter, _ = make_engine({"a": chatty}, runbook)
    await engine.wait((await engine.start(ref="m", user="U", channel=None)).id or 0)
    progress = [text for kind, _, text in reporter.events if kind == "progress"]
    assert progress == ["polling with key [redacted]"]


async def test_a_step_can_cancel_the_release_on_a_persons_behalf() -> None:
    async def cancel(ctx: StepContext) -> StepResult:
        return StepResult.fail("Release cancelled at the review by <@U7>",
                               data={"cancel_release": "U7"})

    engine, reporter, _ = make_engine({"a": cancel, "b": ok(), "c": ok()}, SEQUENTIAL)
    done = await engine.wait((await engine.start(ref="m", user="U", channel=None)).id or 0)
    assert done.status == ReleaseStatus.CANCELLED
    assert done.data["cancelled_by"] == "U7"
    assert [s.state for s in done.steps] == [StepState.CANCELLED] * 3
    assert reporter.events[-1] == ("release_finished", "", "cancelled")


async def test_a_broken_step_or_reporter_never_leaves_the_release_running() -> None:
    async def broken(ctx: StepContext) -> StepResult:
        return None  # type: ignore[return-value]

    engine, _, _store = make_engine({"a": broken, "b": ok(), "c": ok()}, SEQUENTIAL)
    done = await engine.wait((await engine.start(ref="m", user="U", channel=None)).id or 0)
    assert done.status == ReleaseStatus.FAILED
    assert "not a StepResult" in (done.step("a").result.summary if done.step("a").result else "")

    class Exploding(RecordingReporter):
        async def step_finished(self, release: Release, record: StepRecord) -> None:
            raise RuntimeError("chat is down")

    engine2, _, store2 = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL)
    engine2.reporter = Exploding(store2)
    done2 = await engine2.wait((await engine2.start(ref="m", user="U", channel=None)).id or 0)
    assert done2.status == ReleaseStatus.FAILED
    assert store2.active_release("staging") is None  # the environment is free again


async def test_an_always_phase_runs_after_a_failure_and_concurrent_phases_are_summed_up() -> None:
    runbook = """
phases:
  - {name: v, concurrent: true, steps: [{name: x}, {name: y}]}
  - {name: more, steps: [{name: z}]}
  - {name: report, always: true, steps: [{name: links}]}
"""
    engine, reporter, _ = make_engine({"x": fail(), "y": ok(), "z": ok(), "links": ok()}, runbook)
    done = await engine.wait((await engine.start(ref="m", user="U", channel=None)).id or 0)
    assert done.status == ReleaseStatus.FAILED
    assert done.step("z").state == StepState.PENDING  # skipped phase
    assert done.step("links").state == StepState.OK  # the always phase ran
    assert ("phase_finished", "v", "x,y") in reporter.events
    assert reporter.names("started")[-1] == "links"


async def test_a_release_finished_by_another_process_starts_no_more_steps() -> None:
    gate = asyncio.Event()

    async def first(ctx: StepContext) -> StepResult:
        await gate.wait()
        return StepResult.ok("done")

    engine, reporter, store = make_engine({"a": first, "b": ok(), "c": ok()}, SEQUENTIAL)
    release = await engine.start(ref="m", user="U", channel=None)
    await asyncio.sleep(0.05)
    other = store.get_release(release.id or 0)  # another process cancels it (e.g. a CLI rollback)
    assert other is not None
    other.status = ReleaseStatus.CANCELLED
    other.data["rollback"] = {"by": "oncall"}
    store.save_release(other)
    gate.set()
    await engine.wait(release.id or 0)
    assert "b" not in reporter.names("started")
    stored = store.get_release(release.id or 0)
    assert stored is not None and stored.status == ReleaseStatus.CANCELLED
    assert stored.data["rollback"] == {"by": "oncall"}
