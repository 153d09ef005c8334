"""The runbook engine: starts, retries, cancels and recovers releases of one runbook.

It knows nothing of Slack, HTTP or SQLite: it is handed the ports of bot.runbook.ports (a
release log, a reporter, an environment lock, a SHA lookup) and the catalog of steps, which it
runs through bot.runbook.runner. Phases run in order; a `concurrent` phase starts all its steps
at once (bot.runbook.release_run drives a release). Each step gets a timeout, may wait on a
person (`ctx.ask(gate)`), may report progress, and the first failure ends the release as
failed. Releases survive restarts: `recover()` resumes those waiting on a person and marks
those that were mid-step as interrupted (a Retry picks them up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.config import Settings
from bot.redact import Redactor
from bot.runbook.approvers import GroupMembers, may_approve, mention
from bot.runbook.model import (
    Decision,
    Release,
    ReleaseStatus,
    Runbook,
    StepRecord,
    StepState,
    utcnow,
)
from bot.runbook.ports import AnnounceRefused, EnvironmentLock, ReleaseLog, Reporter, ShaLookup
from bot.runbook.release_run import ReleaseDriver, cancel_unfinished
from bot.runbook.runner import StepRunner
from bot.runbook.step import StepDef

log = logging.getLogger(__name__)

# How an ended release reads after "Release #N has already …".
ENDED = {ReleaseStatus.SUCCEEDED: "succeeded", ReleaseStatus.FAILED: "failed",
         ReleaseStatus.CANCELLED: "been cancelled", ReleaseStatus.ROLLED_BACK: "been rolled back",
         ReleaseStatus.INTERRUPTED: "been interrupted"}
GATE_POLL_SECONDS = 2.0  # how often a waiting gate looks for an answer given to another process
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


class EngineError(Exception):
    """A request the engine refuses, with a message for the person who made it."""


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


class Engine(ReleaseDriver):
    """Runs releases of one runbook; one release per environment at a time."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: ReleaseLog,
        reporter: Reporter,
        runbook: Runbook,
        registry: dict[str, StepDef],
        lock: EnvironmentLock,
        redactor: Redactor | None = None,
        find_sha: ShaLookup | None = None,
        clock: Callable[[], object] = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.reporter = reporter
        self.runbook = runbook
        self.registry = registry
        self.redact = redactor or Redactor(settings.secret_values())
        self.runner = StepRunner(settings=settings, steps=registry, redactor=self.redact)
        self.lock = lock
        self.find_sha = find_sha
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
                    skip_reason=self.runner.skip_reason(spec.name, spec.skip),
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
            if not await self.lock.acquire(release.environment, release.id):
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
            await self.lock.release(release.environment, release.id)
            raise EngineError(str(exc)) from exc
        self.store.save_release(release)  # where the reporter announced it (channel, thread)
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
            if not await self.lock.acquire(release.environment, release_id):
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
        return await self._finish(release, ReleaseStatus.CANCELLED, *cancel_unfinished(release))

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
        """Whether this process is driving release `release_id` now."""
        task = self._tasks.get(release_id)
        return task is not None and not task.done()

    async def shutdown(self) -> None:
        """Stop running tasks without changing their stored state (a restart resumes them),
        and free their environments so that the next process can take them at once."""
        stopped = {rid: self.store.get_release(rid) for rid in self._tasks}
        await self._stop_tasks()
        for release_id, release in stopped.items():
            if release is not None:
                with contextlib.suppress(Exception):
                    await self.lock.release(release.environment, release_id)
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    def _require(self, release_id: int) -> Release:
        release = self.store.get_release(release_id)
        if release is None:
            raise EngineError(f"Release #{release_id} does not exist.")
        return release
