"""The runbook engine: runs a release's steps, persisting each transition before announcing it.

It knows nothing of Slack, HTTP or SQLite: it is handed a store, a reporter and the registry.
Phases run in order; a `concurrent` phase starts all its steps at once. Each step gets a
timeout, may wait on a person (`ctx.ask(gate)`), may report progress, and the first failure
ends the release as failed. Releases survive restarts: `recover()` resumes those waiting on a
person and marks those that were mid-step as interrupted (a Retry picks them up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.config import Settings
from bot.locks import SqliteLock
from bot.redact import Redactor
from bot.refs import resolve_sha
from bot.runbook.approvers import GroupMembers, may_approve, mention
from bot.runbook.model import (
    APPENDED_FIELDS,
    Decision,
    Gate,
    Outcome,
    Release,
    ReleaseStatus,
    Runbook,
    StepRecord,
    StepResult,
    StepSpec,
    StepState,
    utcnow,
)
from bot.runbook.step import StepContext, StepDef
from bot.store import Store

log = logging.getLogger(__name__)
# How an ended release reads after "Release #N has already …".
ENDED = {ReleaseStatus.SUCCEEDED: "succeeded", ReleaseStatus.FAILED: "failed",
         ReleaseStatus.CANCELLED: "been cancelled", ReleaseStatus.ROLLED_BACK: "been rolled back",
         ReleaseStatus.INTERRUPTED: "been interrupted"}
GATE_POLL_SECONDS = 2.0  # how often a waiting gate looks for an answer given to another process


class Reporter(Protocol):
    """Where the engine announces what happened (the chat layer implements it)."""

    async def release_started(self, release: Release) -> None: ...
    async def step_started(self, release: Release, record: StepRecord) -> None: ...
    async def step_progress(self, release: Release, record: StepRecord, text: str) -> None: ...
    async def step_finished(self, release: Release, record: StepRecord) -> None: ...
    async def gate_opened(self, release: Release, record: StepRecord) -> None: ...
    async def gate_closed(self, release: Release, record: StepRecord, decision: Decision) -> None: ...
    async def phase_started(self, release: Release, phase: str, records: list[StepRecord]) -> None: ...
    async def phase_finished(self, release: Release, phase: str, records: list[StepRecord]) -> None: ...
    async def release_finished(self, release: Release) -> None: ...
    async def note(self, release: Release, text: str) -> None: ...


_RETRIED = (StepState.FAIL, StepState.CANCELLED, StepState.INTERRUPTED, StepState.RUNNING,
            StepState.WAITING)


def highlight_lines(notes: str) -> str:
    """The release's `--notes` as Feature Highlights bullets (one per line)."""
    return "\n".join(f"• {line.strip().lstrip('•-* ').strip()}"
                     for line in notes.splitlines() if line.strip())


def _reopened(release: Release) -> set[str]:
    """Earlier steps a failed step asks a Retry to run again (`data["reopens"]`), e.g. the
    migration gate whose choice left the schema behind."""
    names: set[str] = set()
    for record in release.steps:
        if record.state == StepState.FAIL and record.result is not None:
            names.update(str(n) for n in record.result.data.get("reopens") or [])
    return names


def _note_retry(release: Release, user: str, first: str | None) -> None:
    """Keep who retried and when, and count the idle time since the release stopped."""
    now = utcnow()
    idle = (now - release.finished_at).total_seconds() if release.finished_at else 0.0
    idle = max(idle, 0.0)
    release.data["idle_seconds"] = float(release.data.get("idle_seconds") or 0.0) + idle
    release.data.setdefault("retries", []).append(
        {"by": user, "at": now.isoformat(), "from_step": first, "idle_seconds": round(idle, 3)})


def _remember(release: Release, step: str, gate: Gate, decision: Decision) -> None:
    """Keep a gate's answer in the release's history (a Retry that asks again adds, not replaces)."""
    entry = {"step": step, "gate": gate.key, "action": decision.action, "by": decision.user,
             "at": decision.at.isoformat(), "reason": decision.reason}
    history = release.data.setdefault("decisions", [])
    if entry not in history:
        history.append(entry)


class _StoppedElsewhere(Exception):
    """The stored release was finished by another process while this one ran it."""

    def __init__(self, release: Release) -> None:
        self.release = release
        super().__init__(release.status.value)


class EngineError(Exception):
    """A request the engine refuses, with a message for the person who made it."""


class AnnounceRefused(Exception):
    """The reporter cannot announce a release at all (e.g. the bot may not post in the
    channel); the message says what to do. Raised by `release_started` only."""


@dataclass
class PlannedStep:
    """One line of a dry-run plan."""

    phase: str
    name: str
    title: str
    description: str
    skip_reason: str | None
    concurrent: bool


@dataclass
class DecideResult:
    """What became of a button press on a gate."""

    accepted: bool
    message: str


class Engine:
    """Runs releases of one runbook; one release per environment at a time."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        reporter: Reporter,
        runbook: Runbook,
        registry: dict[str, StepDef],
        redactor: Redactor | None = None,
        lock: EnvironmentLock | None = None,
        clock: Callable[[], object] = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.reporter = reporter
        self.runbook = runbook
        self.registry = registry
        self.redact = redactor or Redactor(settings.secret_values())
        # Without Redis the lock lives in the release log, so processes sharing it agree too.
        self.lock: EnvironmentLock = lock if lock is not None else SqliteLock(store)
        self.gate_poll_seconds = GATE_POLL_SECONDS
        self._keepalive: asyncio.Task[None] | None = None
        self._tasks: dict[int, asyncio.Task[Release]] = {}
        self._gates: dict[tuple[int, str], asyncio.Future[Decision]] = {}
        self._start_lock = asyncio.Lock()
        self._cancel_requests: dict[int, tuple[str, str]] = {}
        # Looks up a Slack user group's members, so RELEASE_APPROVERS may name groups (S…).
        self.group_members: GroupMembers | None = None

    # --- planning --------------------------------------------------------------------------
    def plan(self) -> list[PlannedStep]:
        """Every enabled step with what it would do, touching nothing."""
        out = []
        for phase, spec in self.runbook.enabled_steps():
            sdef = self.registry[spec.name]
            out.append(
                PlannedStep(
                    phase=phase.name,
                    name=spec.name,
                    title=sdef.title,
                    description=sdef.describe,
                    skip_reason=spec.skip or sdef.skip_reason(self.settings),
                    concurrent=phase.concurrent,
                )
            )
        return out

    def new_release(self, *, ref: str, user: str, channel: str | None, notes: str = "") -> Release:
        """A release (not yet stored) with one pending record per enabled step."""
        release = Release(
            environment=self.settings.ENVIRONMENT,
            ref=ref,
            started_by=user,
            channel=channel,
            notes=notes,
        )
        release.fields["Release Date"] = release.started_at.strftime("%Y-%m-%d %H:%M UTC")
        if notes.strip():
            release.fields["Feature Highlights"] = highlight_lines(notes)
        for position, (phase, spec) in enumerate(self.runbook.enabled_steps()):
            sdef = self.registry[spec.name]
            release.steps.append(
                StepRecord(name=spec.name, title=sdef.title, phase=phase.name, position=position)
            )
        return release

    # --- starting, retrying, cancelling ----------------------------------------------------
    async def start(
        self, *, ref: str, user: str, channel: str | None, notes: str = "",
        required: list[str] | None = None,
    ) -> Release:
        """Create and launch a release; EngineError when the environment is busy or the
        release cannot be announced (nothing is then left in the log).

        `required` names steps required for this release beyond the runbook's `required: true`
        ones (e.g. the migration steps of a ref that adds migrations): they fail, never skip.
        """
        async with self._start_lock:
            release = self.new_release(ref=ref, user=user, channel=channel, notes=notes)
            if required:
                release.data["required_steps"] = list(required)
            previous = self.store.last_successful_before(release.environment, 2**62)
            if previous is not None and previous.git_sha:
                release.data["previous_sha"] = previous.git_sha
                release.data["previous_release"] = previous.id
            active = self.store.create_release_if_free(release)
            if active is not None:
                raise EngineError(
                    f"Release #{active.id} ({active.ref}) is still {active.status.value} on "
                    f"{active.environment}; cancel it or wait for it to finish."
                )
            assert release.id is not None
            if self.lock is not None and not await self.lock.acquire(release.environment, release.id):
                release.status = ReleaseStatus.CANCELLED
                release.finished_at = utcnow()
                self.store.save_release(release)
                holder = await self.lock.holder(release.environment)
                raise EngineError(
                    f"{release.environment} is locked by release #{holder} (another bot instance)."
                )
        try:
            await self.reporter.release_started(release)
        except AnnounceRefused as exc:
            # Nobody could see this release run: take it back before any step starts.
            self.store.discard_release(release.id)
            if self.lock is not None:
                await self.lock.release(release.environment, release.id)
            raise EngineError(str(exc)) from exc
        self._launch(release)
        return release

    async def retry(self, release_id: int, user: str) -> Release:
        """Re-open a failed or interrupted release from its first unfinished or failed step."""
        async with self._start_lock:
            release = self._require(release_id)
            if release.status not in (ReleaseStatus.FAILED, ReleaseStatus.INTERRUPTED):
                raise EngineError(f"Release #{release_id} is {release.status.value}; only a failed "
                                  "or interrupted release can be retried.")
            newest = self.store.latest_release(release.environment)
            if newest is not None and newest.id != release.id:
                raise EngineError(f"Release #{newest.id} started after #{release_id}; "
                                  "start a new release instead of retrying an old one.")
            if self.lock is not None and not await self.lock.acquire(release.environment, release_id):
                holder = await self.lock.holder(release.environment)
                raise EngineError(f"{release.environment} is held by release #{holder} in another "
                                  "bot process; retry when it has finished.")
            reset = [r for r in release.steps if r.state in _RETRIED or r.name in _reopened(release)]
            _note_retry(release, user, reset[0].name if reset else None)
            release.status = ReleaseStatus.RUNNING
            release.finished_at = None
            for record in reset:
                record.state = StepState.PENDING
                record.result = None
                record.started_at = record.finished_at = None
                record.gate = None
                self.store.clear_decisions(release_id, record.name)
            self.store.save(release, *reset)
        await self.reporter.note(release, f"<@{user}> retried the release from "
                                 f"`{reset[0].name if reset else 'the end'}`.")
        self._launch(release)
        return release

    async def cancel(self, release_id: int, user: str, reason: str = "") -> Release:
        """Stop a running or waiting release."""
        release = self._require(release_id)
        if not release.status.active:
            raise EngineError(f"Release #{release_id} has already {ENDED[release.status]}.")
        task = self._tasks.get(release_id)
        release.data["cancelled_by"] = user
        if reason:
            release.data["cancel_reason"] = reason
        if task is not None and not task.done():
            self._cancel_requests[release_id] = (user, reason)
            task.cancel()
            try:
                return await task
            except asyncio.CancelledError:
                return self._require(release_id)
        # Not running in this process (waiting after a restart, or driven by another process,
        # which sees it finished and stops): finish it here, steps included.
        changed = [r for r in release.steps if not r.state.finished]
        for record in changed:
            record.state = StepState.CANCELLED
            record.gate = None
        return await self._finish(release, ReleaseStatus.CANCELLED, *changed)

    async def decide(self, release_id: int, step: str, gate_key: str, action: str,
                     user: str, reason: str = "") -> DecideResult:
        """Record a person's answer to a gate (and why, when they said) and wake the waiting step.

        When another live process drives the release, the answer is stored for it to pick up.
        """
        release = self.store.get_release(release_id)
        if release is None:
            return DecideResult(False, f"Release #{release_id} does not exist.")
        try:
            record = release.step(step)
        except KeyError:
            return DecideResult(False, f"Release #{release_id} has no step {step}.")
        gate = record.gate
        if record.state != StepState.WAITING or gate is None or gate.key != gate_key:
            return DecideResult(False, "This question was already answered or is no longer open.")
        chosen = next((a for a in gate.actions if a.id == action), None)
        if chosen is None:
            return DecideResult(False, f"Unknown choice {action!r}.")
        approvers = self.settings.RELEASE_APPROVERS
        if chosen.approvers_only and not await may_approve(user, approvers, self.group_members):
            return DecideResult(False, f"Only release approvers can choose “{chosen.label}”: "
                                + ", ".join(mention(u) for u in approvers) + ".")
        decision = Decision(action=action, user=user, reason=reason.strip())
        if not self.store.record_decision(release_id, step, gate_key, decision):
            return DecideResult(False, "This question was already answered.")
        future = self._gates.get((release_id, step))
        if future is not None and not future.done():
            future.set_result(decision)
        elif release_id not in self._tasks and await self.lock.acquire(release.environment,
                                                                       release_id):
            # The bot restarted while waiting and has not resumed yet: resume now.
            self._launch(release)
        return DecideResult(True, f"Recorded: {chosen.label}.")

    async def recover(self) -> None:
        """After a restart: resume releases waiting on a person, mark mid-step ones interrupted.

        Only releases whose environment lock this process can take: a release another live
        process drives (a second console or server on the same log) is left to it.
        """
        for release in self.store.releases_with_status(ReleaseStatus.RUNNING, ReleaseStatus.WAITING):
            if release.id is None or release.id in self._tasks:
                continue
            if not await self.lock.acquire(release.environment, release.id):
                log.info("release #%s is driven by another live process; leaving it", release.id)
                continue
            if release.status == ReleaseStatus.WAITING:
                log.info("resuming release #%s waiting at a gate", release.id)
                self._launch(release)
                continue
            interrupted = [r for r in release.steps if r.state == StepState.RUNNING]
            for record in interrupted:
                record.state = StepState.INTERRUPTED
                record.finished_at = utcnow()
            await self._finish(release, ReleaseStatus.INTERRUPTED, *interrupted)

    async def wait(self, release_id: int) -> Release:
        """Wait until the release's task ends (for the CLI, the demo and tests)."""
        task = self._tasks.get(release_id)
        if task is not None:
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        return self._require(release_id)

    def running(self, release_id: int) -> bool:
        task = self._tasks.get(release_id)
        return task is not None and not task.done()

    async def shutdown(self) -> None:
        """Stop running tasks without changing their stored state (a restart resumes them),
        and free their environments so that the next process can take them at once."""
        stopped = {rid: self.store.get_release(rid) for rid in self._tasks}
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(BaseException):
                await task
        for release_id, release in stopped.items():
            if release is not None:
                with contextlib.suppress(Exception):
                    await self.lock.release(release.environment, release_id)
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    # --- running ---------------------------------------------------------------------------
    def _require(self, release_id: int) -> Release:
        release = self.store.get_release(release_id)
        if release is None:
            raise EngineError(f"Release #{release_id} does not exist.")
        return release

    def _launch(self, release: Release) -> None:
        assert release.id is not None
        task = asyncio.create_task(self._run(release), name=f"release-{release.id}")
        release_id = release.id
        self._tasks[release_id] = task

        def forget(done: asyncio.Task[Release]) -> None:
            if self._tasks.get(release_id) is done:
                del self._tasks[release_id]
            if not self._tasks and self._keepalive is not None:
                self._keepalive.cancel()  # nothing left to keep: no timer outlives the releases
                self._keepalive = None

        task.add_done_callback(forget)
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.create_task(self._keep_locks(), name="release-locks")

    async def _keep_locks(self) -> None:
        """Renew this process's environment locks while it drives a release."""
        while True:
            await asyncio.sleep(self.lock.renew_seconds)
            try:
                await self.lock.renew()
            except Exception:  # a lost renewal is retried; the lease is several periods long
                log.exception("could not renew the environment locks")

    async def _run(self, release: Release) -> Release:
        assert release.id is not None
        try:
            await self._fill_sha(release)
            failed = False
            for phase in self.runbook.phases:
                if failed and not phase.always:
                    continue
                todo = [
                    (spec, release.step(spec.name))
                    for spec in phase.steps
                    if spec.enabled and not release.step(spec.name).state.finished
                ]
                if not todo:
                    continue
                if phase.concurrent:
                    if len(todo) > 1:  # summarized together by phase_finished below
                        await self.reporter.phase_started(release, phase.name, [r for _, r in todo])
                    results = await asyncio.gather(*(self._run_step(release, s, r) for s, r in todo))
                else:
                    results = []
                    for spec, record in todo:
                        outcome = await self._run_step(release, spec, record)
                        results.append(outcome)
                        if outcome == Outcome.FAIL:
                            break
                canceller = next((r.result.data["cancel_release"] for r in release.steps
                                  if r.result and r.result.data.get("cancel_release")), None)
                if canceller:
                    release.data["cancelled_by"] = canceller
                    changed = [r for r in release.steps if not r.state.finished]
                    for record in changed:
                        record.state = StepState.CANCELLED
                    return await self._finish(release, ReleaseStatus.CANCELLED, *changed)
                if phase.concurrent and len(todo) > 1:
                    await self.reporter.phase_finished(release, phase.name,
                                                       [release.step(s.name) for s, _ in todo])
                failed = failed or Outcome.FAIL in results
            return await self._finish(release, ReleaseStatus.FAILED if failed
                                      else ReleaseStatus.SUCCEEDED)
        except _StoppedElsewhere as stopped:
            log.info("release #%s was %s elsewhere; stopping", release.id, stopped.release.status.value)
            if self.lock is not None and release.id is not None:
                await self.lock.release(release.environment, release.id)
            return stopped.release
        except Exception:
            # A bug outside a step (store, reporter): never leave the release running and the
            # environment locked. Mark what was running as failed and finish as failed.
            log.exception("release #%s stopped by an internal error", release.id)
            changed = [r for r in release.steps if r.state in (StepState.RUNNING, StepState.WAITING)]
            for record in changed:
                record.state = StepState.FAIL
                record.result = record.result or StepResult.fail("Stopped by an internal error of the bot")
                record.finished_at = utcnow()
            return await self._finish(release, ReleaseStatus.FAILED, *changed)
        except asyncio.CancelledError:
            if release.id in self._cancel_requests:
                user, reason = self._cancel_requests.pop(release.id)
                release.data["cancelled_by"] = user
                if reason:
                    release.data["cancel_reason"] = reason
                changed = [r for r in release.steps if not r.state.finished]
                for record in changed:
                    record.state = StepState.CANCELLED
                    record.gate = None
                return await self._finish(release, ReleaseStatus.CANCELLED, *changed)
            raise
        finally:
            for key in [k for k in self._gates if k[0] == release.id]:
                self._gates.pop(key, None)

    async def _fill_sha(self, release: Release) -> None:
        """Record the commit the ref names when nothing has yet (tests, lint, merge may be skipped)."""
        if release.git_sha:
            return
        try:
            sha = await resolve_sha(self.settings, release.ref, self.redact)
        except Exception:  # best effort: a step that needs the SHA says so itself
            log.exception("could not resolve %s", release.ref)
            return
        if sha:
            release.git_sha = sha
            release.data["git_sha_source"] = "ref"
            self.store.save_release(release)

    async def _run_step(self, release: Release, spec: StepSpec, record: StepRecord) -> Outcome:
        self._check_elsewhere(release)
        sdef = self.registry[spec.name]
        reason = spec.skip or sdef.skip_reason(self.settings)
        if reason is not None and self._required(release, spec):
            result = StepResult.fail(f"Required, but cannot run: {reason}",
                                     data={"skip_reason": reason, "required": True})
            await self._record_result(release, record, result)
            return Outcome.FAIL
        if reason is not None:
            result = StepResult.skipped(f"Skipped: {reason}", data={"skip_reason": reason})
            await self._record_result(release, record, result)
            return Outcome.SKIPPED
        record.state = StepState.RUNNING
        record.started_at = utcnow()
        record.result = None
        if release.status != ReleaseStatus.RUNNING:
            release.status = ReleaseStatus.RUNNING
        self.store.save(release, record)
        await self.reporter.step_started(release, record)
        ctx = StepContext(
            settings=self.settings,
            release=release,
            step_name=spec.name,
            options=spec.options,
            redact=self.redact,
            progress=lambda text: self.reporter.step_progress(release, record, self.redact(text)),
            ask=lambda gate: self._ask(release, record, gate),
        )
        timeout = spec.timeout if spec.timeout is not None else sdef.timeout
        try:
            if timeout is None:
                result = await sdef.run(ctx)
            else:
                async with asyncio.timeout(timeout):
                    result = await sdef.run(ctx)
            if not isinstance(result, StepResult):
                raise TypeError(f"step returned {type(result).__name__}, not a StepResult")
        except TimeoutError:
            result = StepResult.fail(f"Timed out after {timeout:g}s")
        except (asyncio.CancelledError, _StoppedElsewhere):
            raise
        except Exception as exc:  # a crashing step fails the release, never the bot
            log.exception("step %s crashed", spec.name)
            tail = "".join(traceback.format_exception(exc)[-3:])
            result = StepResult.fail(f"Crashed: {type(exc).__name__}: {exc}", output_tail=tail)
        await self._record_result(release, record, result)
        return result.outcome

    @staticmethod
    def _required(release: Release, spec: StepSpec) -> bool:
        """Whether `spec` must run in this release (a required step never skips)."""
        return spec.always_required or spec.name in release.data.get("required_steps", ())

    async def _record_result(self, release: Release, record: StepRecord, result: StepResult) -> None:
        result = StepResult.model_validate(self.redact.data(result.model_dump()))
        record.result = result
        record.state = StepState(result.outcome.value)
        if result.data.get("cancel_release"):
            record.state = StepState.CANCELLED
        record.finished_at = utcnow()
        record.gate = None
        self._merge_fields(release, result)
        release.data.setdefault("steps", {})[record.name] = result.data
        try:
            self._check_elsewhere(release)
        except _StoppedElsewhere:
            self.store.save_step(release, record)  # keep the step's result, not our release row
            raise
        self.store.save(release, record)
        await self.reporter.step_finished(release, record)

    @staticmethod
    def _merge_fields(release: Release, result: StepResult) -> None:
        for name, value in result.fields.items():
            if name == "Git SHA":
                release.git_sha = value
            if name in APPENDED_FIELDS and release.fields.get(name):
                have = release.fields[name].split("\n")
                new = [line for line in value.split("\n") if line not in have]
                if new:
                    release.fields[name] += "\n" + "\n".join(new)
            else:
                release.fields[name] = value

    def _check_elsewhere(self, release: Release) -> None:
        """Raise _StoppedElsewhere when another process finished this release (e.g. a CLI
        rollback cancelled it): start nothing more and do not overwrite what it stored."""
        stored = self.store.get_release(release.id or 0)
        if stored is not None and not stored.status.active:
            raise _StoppedElsewhere(stored)

    async def _ask(self, release: Release, record: StepRecord, gate: Gate) -> Decision:
        assert release.id is not None
        stored = self.store.get_decision(release.id, record.name, gate.key)
        if stored is not None:  # answered while the bot was down, or before a restart
            _remember(release, record.name, gate, stored)
            return stored
        if not gate.approvers and any(a.approvers_only for a in gate.actions):
            gate = gate.model_copy(update={"approvers": list(self.settings.RELEASE_APPROVERS)})
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        self._gates[(release.id, record.name)] = future
        record.state = StepState.WAITING
        record.gate = gate
        release.status = ReleaseStatus.WAITING
        self.store.save(release, record)
        # A press may have landed between the check above and the save: look once more.
        stored = self.store.get_decision(release.id, record.name, gate.key)
        if stored is not None and not future.done():
            future.set_result(stored)
        await self.reporter.gate_opened(release, record)
        try:
            decision = await self._answer(release, record, gate, future)
        finally:
            self._gates.pop((release.id, record.name), None)
        record.state = StepState.RUNNING
        record.gate = None
        release.status = ReleaseStatus.RUNNING
        _remember(release, record.name, gate, decision)
        self.store.save(release, record)
        await self.reporter.gate_closed(release, record, decision)
        return decision

    async def _answer(self, release: Release, record: StepRecord, gate: Gate,
                      future: asyncio.Future[Decision]) -> Decision:
        """The answer to an open gate: pressed here, or stored by another process sharing the log."""
        assert release.id is not None
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(future), self.gate_poll_seconds)
            except TimeoutError:
                stored = self.store.get_decision(release.id, record.name, gate.key)
                if stored is not None:
                    return stored
                self._check_elsewhere(release)

    async def _finish(self, release: Release, status: ReleaseStatus, *records: StepRecord) -> Release:
        release.status = status
        release.finished_at = utcnow()
        self.store.save(release, *records)
        if self.lock is not None and release.id is not None:
            await self.lock.release(release.environment, release.id)
        await self.reporter.release_finished(release)
        return release


class EnvironmentLock(Protocol):
    """A lock that lets one release at a time hold an environment (see bot.locks)."""

    renew_seconds: float

    async def acquire(self, environment: str, release_id: int) -> bool: ...
    async def release(self, environment: str, release_id: int) -> None: ...
    async def holder(self, environment: str) -> int | None: ...
    async def renew(self) -> None: ...
