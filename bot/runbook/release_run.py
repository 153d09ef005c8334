"""How the engine drives one release: phases in order, each step through the step runner, gates
that wait on a person, and the finish; every transition persisted before it is announced.

`ReleaseDriver` is the engine's running half (bot.runbook.engine.Engine adds starting,
retrying, cancelling and recovering). It talks to the world only through the ports of
bot.runbook.ports: the release log, the reporter and the environment lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.config import Settings
from bot.redact import Redactor
from bot.runbook.model import (
    APPENDED_FIELDS,
    Decision,
    Gate,
    Outcome,
    PhaseSpec,
    Release,
    ReleaseStatus,
    Runbook,
    StepRecord,
    StepResult,
    StepSpec,
    StepState,
    utcnow,
)
from bot.runbook.ports import EnvironmentLock, ReleaseLog, Reporter, ShaLookup
from bot.runbook.runner import StepRunner, StopRelease

log = logging.getLogger(__name__)


class StoppedElsewhere(StopRelease):
    """The stored release was finished by another process while this one ran it."""

    def __init__(self, release: Release) -> None:
        self.release = release
        super().__init__(release.status.value)


def _remember(release: Release, step: str, gate: Gate, decision: Decision) -> None:
    """Keep a gate's answer in the release's history (a Retry that asks again adds, not replaces)."""
    entry = {"step": step, "gate": gate.key, "action": decision.action, "by": decision.user,
             "at": decision.at.isoformat(), "reason": decision.reason}
    history = release.data.setdefault("decisions", [])
    if entry not in history:
        history.append(entry)


def cancel_unfinished(release: Release) -> list[StepRecord]:
    """Mark every step not yet finished as cancelled; the records changed."""
    changed = [r for r in release.steps if not r.state.finished]
    for record in changed:
        record.state = StepState.CANCELLED
        record.gate = None
    return changed


class ReleaseDriver:
    """Runs launched releases to their end; one task per release."""

    settings: Settings
    store: ReleaseLog
    reporter: Reporter
    runbook: Runbook
    runner: StepRunner
    redact: Redactor
    lock: EnvironmentLock
    find_sha: ShaLookup | None
    gate_poll_seconds: float
    _keepalive: asyncio.Task[None] | None
    _tasks: dict[int, asyncio.Task[Release]]
    _gates: dict[tuple[int, str], asyncio.Future[Decision]]
    _cancel_requests: dict[int, tuple[str, str]]

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
            return await self._run_phases(release)
        except StoppedElsewhere as stopped:
            log.info("release #%s was %s elsewhere; stopping", release.id, stopped.release.status.value)
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
                return await self._finish(release, ReleaseStatus.CANCELLED, *cancel_unfinished(release))
            raise
        finally:
            for key in [k for k in self._gates if k[0] == release.id]:
                self._gates.pop(key, None)

    async def _run_phases(self, release: Release) -> Release:
        """Every phase in order (after a failure only the `always` ones), then the finish."""
        await self._fill_sha(release)
        failed = False
        for phase in self.runbook.phases:
            if failed and not phase.always:
                continue
            todo = [(spec, release.step(spec.name)) for spec in phase.steps
                    if spec.enabled and not release.step(spec.name).state.finished]
            if not todo:
                continue
            results = await self._run_phase(release, phase, todo)
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
        return await self._finish(release, ReleaseStatus.FAILED if failed else ReleaseStatus.SUCCEEDED)

    async def _run_phase(self, release: Release, phase: PhaseSpec,
                         todo: list[tuple[StepSpec, StepRecord]]) -> list[Outcome]:
        """A phase's steps: all at once when it is concurrent, else in order up to a failure."""
        if phase.concurrent:
            if len(todo) > 1:  # summarized together by phase_finished
                await self.reporter.phase_started(release, phase.name, [r for _, r in todo])
            return list(await asyncio.gather(*(self._run_step(release, s, r) for s, r in todo)))
        results = []
        for spec, record in todo:
            outcome = await self._run_step(release, spec, record)
            results.append(outcome)
            if outcome == Outcome.FAIL:
                break
        return results

    async def _fill_sha(self, release: Release) -> None:
        """Record the commit the ref names when nothing has yet (tests, lint, merge may be skipped)."""
        if release.git_sha or self.find_sha is None:
            return
        try:
            sha = await self.find_sha(release.ref)
        except Exception:  # best effort: a step that needs the SHA says so itself
            log.exception("could not resolve %s", release.ref)
            return
        if sha:
            release.git_sha = sha
            release.data["git_sha_source"] = "ref"
            self.store.save_release(release)

    async def _run_step(self, release: Release, spec: StepSpec, record: StepRecord) -> Outcome:
        self._check_elsewhere(release)
        reason = self.runner.skip_reason(spec.name, spec.skip)
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
        result = await self.runner.run(
            release, spec.name, options=spec.options, timeout=spec.timeout,
            progress=lambda text: self.reporter.step_progress(release, record, self.redact(text)),
            ask=lambda gate: self._ask(release, record, gate))
        await self._record_result(release, record, result)
        return result.outcome

    @staticmethod
    def _required(release: Release, spec: StepSpec) -> bool:
        """Whether `spec` must run in this release (a required step never skips)."""
        return spec.always_required or spec.name in release.data.get("required_steps", ())

    async def _record_result(self, release: Release, record: StepRecord, result: StepResult) -> None:
        result = self.runner.redacted(result)
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
        except StoppedElsewhere:
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
        """Raise StoppedElsewhere when another process finished this release (e.g. a CLI
        rollback cancelled it): start nothing more and do not overwrite what it stored."""
        stored = self.store.get_release(release.id or 0)
        if stored is not None and not stored.status.active:
            raise StoppedElsewhere(stored)

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
        if release.id is not None:
            await self.lock.release(release.environment, release.id)
        await self.reporter.release_finished(release)
        return release

    async def _stop_tasks(self) -> None:
        """Cancel every release task and wait for it (their stored state stays as it is)."""
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(BaseException):
                await task
