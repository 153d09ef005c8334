"""`Rollbacks`: runs a rollback plan, keeps it in the release log, and has it announced.

One controller serves the three ways in: the Slack handler (`handlers/rollback.py`: the Roll
back button, `/release rollback` and the form's submission), the console chat through
`bot/service.py`, and `release-bot rollback` (`bot/rollback_cli.py`). It is built once, with
what it uses, by `bot.app.build_rollbacks`.

`run(release_id, choices, user)` claims the release (a second rollback of it is refused with
`RollbackBusy`), cancels it first when it is still running, runs each chosen action on its own
(one failing never stops the others), re-runs the smoke and health checks after a deployment
revert, keeps every action in the release log, and hands the `RollbackReport` to the
`Announcer`, which tells the engineering channel and the release's thread.

Status rule: the release becomes `rolled_back` when the deployment revert succeeded or was not
asked for; otherwise its status is left as it was (the Roll back button stays so it can be tried
again) and the log and the announcement say which actions failed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from bot.config import Settings
from bot.providers.http import ProviderError
from bot.redact import Redactor
from bot.rollback.backup import restore_backup
from bot.rollback.cache import flush_cache
from bot.rollback.checks import run_checks
from bot.rollback.deployment import revert_deployment
from bot.rollback.model import (
    BACKUP,
    CACHE,
    CHECKS,
    DEPLOYMENT,
    SCHEMA,
    TITLES,
    ActionResult,
    Choices,
    DeploymentRef,
    Plan,
    RollbackBusy,
    RollbackReport,
    ticket_links,
)
from bot.rollback.plan import make_plan
from bot.rollback.record import record
from bot.rollback.schema import revert_schema
from bot.runbook.engine import Engine, EngineError
from bot.runbook.model import Outcome, Release, utcnow
from bot.store import Store

log = logging.getLogger(__name__)

Action = Callable[[], Awaitable[ActionResult]]


class Announcer(Protocol):
    """Tells people about a rollback (`bot/chat/rollback.py` renders and posts it)."""

    async def cancelled_first(self, release: Release, was: str, user: str) -> None:
        """The release was still running, so the rollback cancelled it first."""

    async def announce(self, report: RollbackReport, channel: str | None) -> None:
        """The whole story, after it is in the release log."""


class Rollbacks:
    """Plans, runs and records rollbacks of one environment's releases."""

    def __init__(self, settings: Settings, store: Store, engine: Engine, announcer: Announcer,
                 redactor: Redactor) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.announcer = announcer
        self.redact = redactor
        self.poll_seconds = 5.0  # between health polls after a backup restore
        self._running: set[int] = set()

    def resolve(self, release_id: int | None) -> Release | None:
        """The release named, or the newest one on this environment."""
        if release_id is not None:
            return self.store.get_release(release_id)
        return self.store.latest_release(self.settings.ENVIRONMENT)

    def busy(self, release_id: int) -> str | None:
        """Who is rolling this release back right now (a sentence), or None."""
        claim = self.store.rollback_claim(release_id)
        if release_id not in self._running and claim is None:
            return None
        who = f" by <@{claim['user']}>" if claim else ""
        since = f" (started {datetime.fromisoformat(claim['at']):%H:%M:%S} UTC)" if claim else ""
        return (f"A rollback of release #{release_id}{who} is already under way{since}; "
                "wait for its announcement.")

    async def plan(self, release: Release, *, quick: bool = False) -> Plan:
        """What each action would do; `quick` reads the release log only."""
        previous = self.store.last_successful_before(release.environment, release.id or 0)
        return await make_plan(release, previous, self.settings, quick=quick)

    def stale_after(self) -> float:
        """Age after which a claim is taken to belong to a process that died mid-rollback."""
        return self.settings.RESTORE_TIMEOUT_SECONDS + self.settings.COMMAND_TIMEOUT_SECONDS + 600

    async def run(self, release_id: int, choices: Choices, user: str,
                  channel: str | None = None) -> RollbackReport:
        """Roll the release back as chosen, keep it in the log, and announce it."""
        if not choices.reason.strip():
            raise ValueError("a rollback needs a reason")
        if self.store.get_release(release_id) is None:
            raise EngineError(f"Release #{release_id} does not exist.")
        if release_id in self._running:
            raise RollbackBusy(self.busy(release_id) or "A rollback is already under way.")
        self._running.add(release_id)
        try:
            return await self._claimed(release_id, choices, user, channel)
        finally:
            self._running.discard(release_id)

    async def _claimed(self, release_id: int, choices: Choices, user: str,
                       channel: str | None) -> RollbackReport:
        """Hold the release log's claim on the release while the rollback runs."""
        at = utcnow()
        number, held = self.store.claim_rollback(release_id, user, at, self.stale_after())
        if held is not None:
            raise RollbackBusy(self.busy(release_id) or "A rollback is already under way.")
        try:
            report = await self._roll_back(release_id, number, choices, user, at)
            await self.announcer.announce(report, channel)
            return report
        finally:
            self.store.release_rollback_claim(release_id, number)

    async def _roll_back(self, release_id: int, number: int, choices: Choices, user: str,
                         at: datetime) -> RollbackReport:
        """Cancel if running, run the chosen actions and the checks, record it all."""
        release, cancelled_first = await self._stop_if_running(release_id, choices, user)
        plan = await self.plan(release, quick=True)
        if choices.target_deployment and (plan.target is None
                                          or plan.target.id != choices.target_deployment):
            plan.target = DeploymentRef(id=choices.target_deployment, source="Vercel")
        report = RollbackReport(release=release, rollback_id=number, user=user, at=at,
                                reason=choices.reason.strip(),
                                tickets=ticket_links(choices.tickets, self.settings.ISSUE_TRACKER_URL),
                                results=[], cancelled_first=cancelled_first,
                                reverted=plan.current)
        await self._act(plan, choices, report)
        if choices.deployment:
            report.checks, report.check_titles = await run_checks(CHECKS, release,
                                                                  self.engine.runner)
        report.rolled_back = _rolled_back(report)
        report.release = record(self.store, report)
        return report

    async def _stop_if_running(self, release_id: int, choices: Choices, user: str
                               ) -> tuple[Release, bool]:
        """The release, cancelled first when it is still running; (release, cancelled)."""
        release = self.store.get_release(release_id)
        assert release is not None
        if not release.status.active:
            return release, False
        was = release.status.value
        try:
            release = await self.engine.cancel(release_id, user, f"rolled back: {choices.reason}")
        except EngineError:
            release = self.store.get_release(release_id) or release
        await self.announcer.cancelled_first(release, was, user)
        return release, True

    async def _act(self, plan: Plan, choices: Choices, report: RollbackReport) -> None:
        """Run each chosen action in order, each on its own."""
        settings = self.settings
        work: dict[str, Action] = {
            DEPLOYMENT: lambda: revert_deployment(plan, report.reverted, report.reason, settings),
            SCHEMA: lambda: revert_schema(plan, settings, self.redact),
            BACKUP: lambda: restore_backup(plan, choices, settings, self.poll_seconds),
            CACHE: lambda: flush_cache(settings),
        }
        for name in choices.chosen():
            result = await self._guarded(name, work[name])
            report.serving = result.serving or report.serving
            report.results.append(result)

    async def _guarded(self, name: str, work: Action) -> ActionResult:
        """Run one action; whatever it raises becomes its failure, never the others'."""
        try:
            result = await work()
        except ProviderError as exc:
            result = ActionResult(name, Outcome.FAIL, f"{TITLES[name]} failed: {exc}")
        except Exception as exc:
            log.exception("rollback action %s crashed", name)
            result = ActionResult(name, Outcome.FAIL,
                                  f"{TITLES[name]} crashed: {type(exc).__name__}: {exc}")
        result.summary = self.redact(result.summary)
        result.details = self.redact(result.details)
        result.data = self.redact.data(result.data)
        return result


def _rolled_back(report: RollbackReport) -> bool:
    """The status rule (see the module's docstring)."""
    deploy = report.result(DEPLOYMENT)
    if deploy is not None:
        return deploy.outcome in (Outcome.OK, Outcome.WARN)
    # no deployment revert asked: rolled back when something was undone and nothing failed
    outcomes = [r.outcome for r in report.results]
    return Outcome.OK in outcomes and Outcome.FAIL not in outcomes
