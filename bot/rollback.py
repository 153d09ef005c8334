"""Rollback during incidents (guide section 4): plan, actions and announcement, UI-independent.

`Rollbacks` is shared by the three ways in (the `/release rollback` command, the Roll back
button with its modal in `handlers/rollback.py`, and `release-bot rollback` in
`bot/rollback_cli.py`):

- `plan(release)` works out what each action would do: the deployment to go back to (the one of
  the last successful release before this one, else the previous READY deployment of the staging
  target on Vercel), the migrations the release applied, the backups / point-in-time window, and
  the staging Redis key count. `plan(..., quick=True)` reads the release log only (no network),
  for a modal that must open within Slack's three seconds.
- `run(release_id, choices, user)` claims the release (a second rollback of it is refused with
  `RollbackBusy`), cancels it first when it is still running, runs each chosen action on its own
  (one failing never stops the others), re-runs the smoke and health checks after a deployment
  revert, keeps every action in the release log, sets the release's status and its
  "Rollback Trigger (if used)" field, and announces the whole story in the engineering channel and
  in the release's thread with links to both deployments and every ticket.

Status rule: the release becomes `rolled_back` when the deployment revert succeeded or was not
asked for; otherwise its status is left as it was (the Roll back button stays so it can be tried
again) and the log and the announcement say which actions failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot.chat import blocks
from bot.chat.blocks import Message
from bot.commands import Command
from bot.config import Settings
from bot.providers import redis_info, supabase_api, vercel
from bot.providers.http import ProviderError
from bot.providers.shell import child_env, run_command
from bot.providers.supabase_cli import SupabaseCli, SupabaseCliError
from bot.providers.tools import resolve_tool
from bot.redact import Redactor, escape
from bot.runbook.engine import Engine, EngineError
from bot.runbook.model import (
    Decision,
    Gate,
    Link,
    Outcome,
    Release,
    ReleaseStatus,
    StepResult,
    utcnow,
)
from bot.runbook.registry import REGISTRY, StepContext, load_steps
from bot.store import Store

if TYPE_CHECKING:
    from bot.app import Runtime
    from bot.chat.port import Chat
    from bot.service import Reply

log = logging.getLogger(__name__)

NO_TRIGGER = (":warning: Slack sent no form trigger with that request, so the rollback form "
              "could not open and nothing was rolled back. Press *Roll back* on release "
              "#{id}'s message, type `/release rollback {id}` again, or run "
              "`release-bot rollback {id}` on a terminal.")

DEPLOYMENT, SCHEMA, BACKUP, CACHE = "deployment", "schema", "backup", "cache"
ACTIONS = (DEPLOYMENT, SCHEMA, BACKUP, CACHE)
TITLES = {
    DEPLOYMENT: "Revert the deployment",
    SCHEMA: "Revert the schema",
    BACKUP: "Restore a database backup",
    CACHE: "Flush the staging Redis cache",
}
ICONS = {
    Outcome.OK: ":white_check_mark:",
    Outcome.WARN: ":warning:",
    Outcome.FAIL: ":x:",
    Outcome.SKIPPED: ":fast_forward:",
}
CHECKS = ("smoke", "health")
LOOKUP_SECONDS = 2.5  # each network lookup of a plan shown in the modal
VERSION = re.compile(r"\b(\d{14})\b")


class RollbackBusy(Exception):
    """Another rollback of the same release is under way."""


# --- data ------------------------------------------------------------------------------------
@dataclass
class Choices:
    """What the person asked for: reason, tickets, actions, and the typed project ref."""

    reason: str
    tickets: list[str] = field(default_factory=list)
    deployment: bool = True
    schema: bool = False
    backup: bool = False
    cache: bool = False
    confirm_ref: str = ""
    target_deployment: str | None = None  # the deployment the person was shown, if any

    def chosen(self) -> list[str]:
        """The chosen actions, in the order they run."""
        return [name for name in ACTIONS if getattr(self, name)]


@dataclass
class DeploymentRef:
    """A deployment as the announcement shows it."""

    id: str
    url: str | None = None
    inspector_url: str | None = None
    sha: str | None = None
    source: str = ""  # "release #4" or "Vercel"

    def link(self) -> str:
        """`<url|id>` (mrkdwn) or the id."""
        return f"<{self.url}|{self.id}>" if self.url else f"`{self.id}`"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "inspector_url": self.inspector_url,
                "sha": self.sha, "source": self.source}


@dataclass
class Plan:
    """What each action would do for one release."""

    release: Release
    current: DeploymentRef | None = None
    target: DeploymentRef | None = None
    target_problem: str | None = None
    migrations: list[str] = field(default_factory=list)
    schema_command: str = ""
    backups_text: str = ""
    redis_keys: int | None = None
    redis_text: str = ""
    project_ref: str | None = None
    complete: bool = False


@dataclass
class ActionResult:
    """One action's outcome."""

    action: str
    outcome: Outcome
    summary: str
    details: str = ""
    links: list[Link] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class RollbackReport:
    """Everything a rollback did, for the release log and the announcement."""

    release: Release
    rollback_id: int
    user: str
    at: datetime
    reason: str
    tickets: list[Link]
    results: list[ActionResult]
    checks: list[tuple[str, StepResult]] = field(default_factory=list)
    cancelled_first: bool = False
    reverted: DeploymentRef | None = None
    serving: DeploymentRef | None = None
    rolled_back: bool = False

    def result(self, action: str) -> ActionResult | None:
        return next((r for r in self.results if r.action == action), None)

    def summary(self) -> dict[str, Any]:
        """The JSON kept in `release.data["rollback"]` (shown by `release-bot log show`)."""
        return {
            "id": self.rollback_id,
            "by": self.user,
            "at": self.at.isoformat(),
            "reason": self.reason,
            "tickets": [{"id": t.label, "url": t.url} for t in self.tickets],
            "status": "rolled_back" if self.rolled_back else "not_rolled_back",
            "cancelled_first": self.cancelled_first,
            "reverted_deployment": self.reverted.as_dict() if self.reverted else None,
            "serving_deployment": self.serving.as_dict() if self.serving else None,
            "actions": [{"action": r.action, "outcome": r.outcome.value, "summary": r.summary,
                         **({"data": r.data} if r.data else {})} for r in self.results],
            "checks": [{"step": name, "outcome": res.outcome.value, "summary": res.summary}
                       for name, res in self.checks],
        }


# --- pure helpers ------------------------------------------------------------------------------
def split_tickets(text: str) -> list[str]:
    """Ticket IDs or URLs from free text (commas, spaces or new lines between them)."""
    return [part for part in re.split(r"[\s,]+", text or "") if part]


SAFE_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~!$'()*+,;=:@%/?#&-]*)?")
TICKET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._#-]{0,63}")


def ticket_links(tickets: list[str], template: str | None) -> list[Link]:
    """Each ticket as a link when that cannot mislead: a plain `https://` URL is shown as
    itself, an ID goes through ISSUE_TRACKER_URL; anything else stays text (no link)."""
    out = []
    for ticket in tickets:
        if SAFE_URL.fullmatch(ticket):
            out.append(Link(label=ticket, url=ticket))
        elif template and "{id}" in template and TICKET_ID.fullmatch(ticket):
            out.append(Link(label=ticket, url=template.replace("{id}", quote(ticket, safe=""))))
        else:
            out.append(Link(label=ticket, url=""))
    return out


def link_text(link: Link) -> str:
    """A ticket for Slack: `<url|label>` with both escaped, or the escaped label alone."""
    label = escape(link.label)
    if not link.url:
        return label
    url = escape(link.url)
    return f"<{url}>" if link.label == link.url else f"<{url}|{label}>"


def applied_migrations(release: Release) -> list[str]:
    """Versions the release applied: the push step's data, else the release log field."""
    pushed = release.data.get("steps", {}).get("migrations_push") or {}
    applied = pushed.get("applied") if isinstance(pushed, dict) else None
    if isinstance(applied, list):  # the push step's own record, even when empty
        return [str(v) for v in applied]
    return VERSION.findall(release.fields.get("Migrations Applied", ""))


def deployment_of(release: Release) -> DeploymentRef | None:
    """The deployment the release's deploy step recorded."""
    data = release.data.get("steps", {}).get("deploy") or {}
    if not isinstance(data, dict) or not data.get("deployment_id"):
        return None
    return DeploymentRef(id=str(data["deployment_id"]), url=data.get("url"),
                         inspector_url=data.get("inspector_url"), sha=data.get("sha"),
                         source=f"release #{release.id}")


def _https(url: str | None) -> str | None:
    if not url:
        return None
    return url if url.startswith(("http://", "https://")) else f"https://{url}"


def _ref_from_vercel(dep: dict[str, Any], source: str) -> DeploymentRef:
    return DeploymentRef(id=vercel.deployment_id(dep), url=_https(dep.get("url")),
                         inspector_url=dep.get("inspectorUrl"), sha=vercel.deployment_sha(dep),
                         source=source)


def schema_command_text(settings: Settings, count: int) -> str:
    """What a schema revert really runs."""
    if settings.SCHEMA_ROLLBACK_COMMAND:
        return f"`{settings.SCHEMA_ROLLBACK_COMMAND}`"
    return f"`supabase migration down --last {count}`"


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the controller ----------------------------------------------------------------------------
ModalOpener = Callable[[Release, str, str, str, "Reply"], Awaitable[None]]


class Rollbacks:
    """Plans, runs and announces rollbacks of one environment's releases."""

    def __init__(self, settings: Settings, store: Store, engine: Engine, chat: Chat,
                 redactor: Redactor) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.chat = chat
        self.redact = redactor
        self.poll_seconds = 5.0  # between health polls after a backup restore
        self.modal_opener: ModalOpener | None = None  # set by handlers/rollback.py
        self._running: set[int] = set()

    # --- finding the release and who holds it ------------------------------------------------
    def resolve(self, release_id: int | None) -> Release | None:
        """The release named, or the newest one on this environment."""
        if release_id is not None:
            return self.store.get_release(release_id)
        return self.store.latest_release(self.settings.ENVIRONMENT)

    def busy(self, release_id: int) -> str | None:
        """Who is rolling this release back right now (a sentence), or None."""
        claim = self.store.rollback_claim(release_id)
        if release_id in self._running or claim is not None:
            who = f" by <@{claim['user']}>" if claim else ""
            since = ""
            if claim:
                since = f" (started {datetime.fromisoformat(claim['at']):%H:%M:%S} UTC)"
            return (f"A rollback of release #{release_id}{who} is already under way{since}; "
                    "wait for its announcement.")
        return None

    # --- planning ------------------------------------------------------------------------------
    async def plan(self, release: Release, *, quick: bool = False) -> Plan:
        """What each action would do; `quick` reads the release log only."""
        settings = self.settings
        plan = Plan(release=release, current=deployment_of(release),
                    migrations=applied_migrations(release),
                    project_ref=settings.SUPABASE_PROJECT_REF)
        plan.schema_command = schema_command_text(settings, max(len(plan.migrations), 1))
        previous = self.store.last_successful_before(release.environment, release.id or 0)
        if previous is not None:
            plan.target = deployment_of(previous)
        if plan.target is None and quick:
            plan.target_problem = "looking it up on Vercel…"
        if settings.STAGING_REDIS_URL is not None:
            plan.redis_text = f"on {redis_info.where(settings.secret('STAGING_REDIS_URL'))}"
        else:
            plan.redis_text = "STAGING_REDIS_URL is not set"
        if not settings.SUPABASE_ACCESS_TOKEN or not settings.SUPABASE_PROJECT_REF:
            plan.backups_text = "SUPABASE_ACCESS_TOKEN and SUPABASE_PROJECT_REF are not set"
        if quick:
            return plan
        await asyncio.gather(self._plan_target(plan), self._plan_backups(plan),
                             self._plan_redis(plan))
        plan.complete = True
        return plan

    async def _plan_target(self, plan: Plan) -> None:
        if plan.target is not None:
            plan.target_problem = None
            return
        try:
            async with asyncio.timeout(LOOKUP_SECONDS):
                plan.target, plan.target_problem = await self._vercel_target(plan.release)
        except TimeoutError:
            plan.target_problem = f"Vercel did not answer within {LOOKUP_SECONDS:g}s"
        except ProviderError as exc:
            plan.target_problem = str(exc)

    async def _vercel_target(self, release: Release) -> tuple[DeploymentRef | None, str | None]:
        settings = self.settings
        missing = settings.missing(("VERCEL_TOKEN", "VERCEL_PROJECT_ID"))
        if missing:
            return None, f"no earlier successful release recorded a deployment, and {', '.join(missing)} " \
                         "not set to ask Vercel"
        current = deployment_of(release)
        project = str(settings.VERCEL_PROJECT_ID)
        target = settings.VERCEL_TARGET  # production included: only production deployments
        async with vercel.vercel_client(settings) as client:
            if current is not None:
                found = await vercel.previous_ready_deployment(client, project, target, current.id)
            else:
                found = None
                for item in await vercel.list_deployments(client, project, state="READY"):
                    sha = vercel.deployment_sha(item)
                    if vercel.target_matches(item, target) and (
                            not release.git_sha or sha != release.git_sha):
                        found = item
                        break
            if found is None:
                return None, ("no earlier successful release recorded a deployment and Vercel has "
                              f"no earlier READY deployment for {settings.VERCEL_TARGET}")
            full = await vercel.get_deployment(client, vercel.deployment_id(found))
        return _ref_from_vercel(full, "Vercel"), None

    async def _plan_backups(self, plan: Plan) -> None:
        settings = self.settings
        if not settings.SUPABASE_ACCESS_TOKEN or not settings.SUPABASE_PROJECT_REF:
            return
        try:
            async with asyncio.timeout(LOOKUP_SECONDS), \
                    supabase_api.supabase_client(settings) as client:
                found = await supabase_api.list_backups(client, settings.SUPABASE_PROJECT_REF)
        except TimeoutError:
            plan.backups_text = f"the backup list did not arrive within {LOOKUP_SECONDS:g}s"
            return
        except ProviderError as exc:
            plan.backups_text = f"cannot list backups: {exc}"
            return
        plan.backups_text = describe_backups(found, plan.release.started_at)

    async def _plan_redis(self, plan: Plan) -> None:
        settings = self.settings
        if settings.STAGING_REDIS_URL is None:
            return
        url = settings.secret("STAGING_REDIS_URL")
        try:
            plan.redis_keys = await redis_info.count_keys(url, min(LOOKUP_SECONDS, 2.0))
            plan.redis_text = f"{plan.redis_keys} keys now on {redis_info.where(url)}"
        except ProviderError as exc:
            plan.redis_text = f"cannot count keys: {exc}"

    # --- the front ends' entry points --------------------------------------------------------
    async def handle_command(self, command: Command, user: str, channel: str, reply: Reply,
                             trigger_id: str | None) -> None:
        """`/release rollback [id] [reason]`: open the form, or (no form here) roll back."""
        release = self.resolve(command.release_id)
        if release is None or release.id is None:
            what = f"Release #{command.release_id} does not exist." if command.release_id \
                else "No release has run yet, so there is nothing to roll back."
            await reply(blocks.note_message(f":warning: {what}"))
            return
        busy = self.busy(release.id)
        if busy:
            await reply(blocks.note_message(f":hourglass: {busy}"))
            return
        if self.modal_opener is not None:  # Slack: the form confirms, so no form means no rollback
            if not trigger_id:
                await reply(blocks.note_message(NO_TRIGGER.format(id=release.id)))
                return
            await self.modal_opener(release, channel, trigger_id, command.reason, reply)
            return
        if not command.reason:
            await reply(blocks.note_message(
                ":warning: A rollback needs a reason: `/release rollback "
                f"{release.id} <what went wrong>`."))
            return
        await reply(blocks.note_message(
            f":rewind: Rolling back release #{release.id} (deployment only); the announcement "
            "follows."))
        try:
            await self.run(release.id, Choices(reason=command.reason), user, channel)
        except RollbackBusy as exc:
            await reply(blocks.note_message(f":hourglass: {exc}"))

    # --- running ---------------------------------------------------------------------------
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
            at = utcnow()
            number, held = self.store.claim_rollback(release_id, user, at, self.stale_after())
            if held is not None:
                raise RollbackBusy(self.busy(release_id) or "A rollback is already under way.")
            try:
                return await self._run(release_id, number, choices, user, at, channel)
            finally:
                self.store.release_rollback_claim(release_id, number)
        finally:
            self._running.discard(release_id)

    async def _run(self, release_id: int, number: int, choices: Choices, user: str,
                   at: datetime, channel: str | None) -> RollbackReport:
        release = self.store.get_release(release_id)
        assert release is not None
        cancelled_first = False
        if release.status.active:
            cancelled_first = True
            was = release.status.value
            try:
                release = await self.engine.cancel(release_id, user,
                                                   f"rolled back: {choices.reason}")
            except EngineError:
                release = self.store.get_release(release_id) or release
            await self._thread_note(release, (
                f":no_entry_sign: Release #{release_id} was still {was}, so <@{user}>'s "
                "rollback cancelled it first."))
        plan = await self.plan(release, quick=True)
        if choices.target_deployment and (plan.target is None
                                          or plan.target.id != choices.target_deployment):
            plan.target = DeploymentRef(id=choices.target_deployment, source="Vercel")
        report = RollbackReport(release=release, rollback_id=number, user=user, at=at,
                                reason=choices.reason.strip(),
                                tickets=ticket_links(choices.tickets, self.settings.ISSUE_TRACKER_URL),
                                results=[], cancelled_first=cancelled_first,
                                reverted=plan.current)
        work: dict[str, Callable[[], Awaitable[ActionResult]]] = {
            DEPLOYMENT: lambda: self._revert_deployment(plan, report),
            SCHEMA: lambda: self._revert_schema(plan),
            BACKUP: lambda: self._restore_backup(plan, choices),
            CACHE: self._flush_cache,
        }
        for name in choices.chosen():
            report.results.append(await self._guarded(name, work[name]))
        if choices.deployment:
            report.checks = await self._checks(release)
        deploy = report.result(DEPLOYMENT)
        if deploy is not None:
            report.rolled_back = deploy.outcome in (Outcome.OK, Outcome.WARN)
        else:  # no deployment revert asked: rolled back when something was undone and nothing failed
            outcomes = [r.outcome for r in report.results]
            report.rolled_back = Outcome.OK in outcomes and Outcome.FAIL not in outcomes
        self._record(report)
        await self._announce(report, channel)
        return report

    async def _guarded(self, name: str, work: Callable[[], Awaitable[ActionResult]]) -> ActionResult:
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

    # --- the actions -------------------------------------------------------------------------
    async def _revert_deployment(self, plan: Plan, report: RollbackReport) -> ActionResult:
        settings = self.settings
        missing = settings.missing(("VERCEL_TOKEN", "VERCEL_PROJECT_ID"))
        if missing:
            return ActionResult(DEPLOYMENT, Outcome.SKIPPED,
                                f"Not reverted: {', '.join(missing)} not set.")
        production = settings.VERCEL_TARGET == "production"
        domain = settings.staging_domain
        if not production and not domain:
            return ActionResult(DEPLOYMENT, Outcome.FAIL, "Not reverted: no staging domain to move "
                                "(set STAGING_DOMAIN or STAGING_URL).")
        target = plan.target
        if target is None:
            target, problem = await self._vercel_target(plan.release)
            if target is None:
                return ActionResult(DEPLOYMENT, Outcome.FAIL,
                                    f"No deployment to go back to: {problem}.")
        project = str(settings.VERCEL_PROJECT_ID)
        async with vercel.vercel_client(settings) as client:
            full = await vercel.get_deployment(client, target.id)
            state = vercel.deployment_state(full)
            fresh = _ref_from_vercel(full, target.source)
            if report.reverted is not None and fresh.id == report.reverted.id:
                return ActionResult(DEPLOYMENT, Outcome.FAIL,
                                    f"Nothing to go back to: {fresh.id} is the release's own "
                                    "deployment (the same SHA was deployed before).")
            if state != "READY":
                return ActionResult(DEPLOYMENT, Outcome.FAIL,
                                    f"Deployment {target.id} is {state}, not READY; nothing was "
                                    "moved.")
            if production:
                await vercel.rollback_production(client, project, fresh.id, report.reason)
                how = f"Vercel rolled production back to {fresh.id}"
                data: dict[str, Any] = {"method": "rollback", "deployment_id": fresh.id}
            else:
                assert domain is not None
                answer = await vercel.assign_alias(client, fresh.id, domain)
                if answer.get("unchanged"):
                    how = f"{domain} already pointed at {fresh.id}"
                else:
                    how = f"{domain} now points at {fresh.id}"
                data = {"method": "alias", "alias": domain, "deployment_id": fresh.id,
                        "previous_deployment_id": answer.get("oldDeploymentId")}
        report.serving = fresh
        links = [Link(label=f"Now serving: {fresh.id}", url=fresh.url)] if fresh.url else []
        if report.reverted is not None and report.reverted.url:
            links.insert(0, Link(label=f"Reverted: {report.reverted.id}", url=report.reverted.url))
        where = f" ({fresh.source})" if fresh.source else ""
        return ActionResult(DEPLOYMENT, Outcome.OK, f"{how}{where}.", links=links, data=data)

    async def _revert_schema(self, plan: Plan) -> ActionResult:
        settings = self.settings
        versions = plan.migrations
        if not versions:
            return ActionResult(SCHEMA, Outcome.SKIPPED,
                                "Nothing to revert: the release log shows no migrations applied "
                                "by this release.")
        if settings.SCHEMA_ROLLBACK_COMMAND:
            return await self._team_schema_command(plan.release, versions)
        if not settings.APP_WORKSPACE:
            return ActionResult(SCHEMA, Outcome.SKIPPED, "Not reverted: APP_WORKSPACE is not set "
                                "(the CLI needs the app's supabase/migrations).")
        db_url = settings.secret("SUPABASE_DB_URL") or None
        ref = settings.SUPABASE_PROJECT_REF
        if not db_url and not ref:
            return ActionResult(SCHEMA, Outcome.SKIPPED,
                                "Not reverted: SUPABASE_DB_URL or SUPABASE_PROJECT_REF is not set.")
        cli = SupabaseCli(binary=resolve_tool("supabase", settings),
                          access_token=settings.SUPABASE_ACCESS_TOKEN,
                          db_password=settings.SUPABASE_DB_PASSWORD,
                          timeout=settings.COMMAND_TIMEOUT_SECONDS)
        try:
            result = await cli.down(settings.APP_WORKSPACE, len(versions), db_url,
                                    None if db_url else ref)
        except SupabaseCliError as exc:
            return ActionResult(SCHEMA, Outcome.FAIL,
                                f"`supabase migration down --last {len(versions)}` failed: "
                                f"{_short(exc.message)}",
                                details=f"```\n{exc.stderr[-1500:]}\n```" if exc.stderr else "",
                                data={"expected": versions})
        reverted = result.reverted
        data = {"reverted": reverted, "expected": versions, "head": result.version}
        listed = ", ".join(reverted) or "none"
        if sorted(reverted) != sorted(versions):
            return ActionResult(SCHEMA, Outcome.WARN,
                                f"`supabase migration down --last {len(versions)}` reverted {listed}, "
                                f"but the release applied {', '.join(versions)}.", data=data)
        head = f"; the schema is now at {result.version}" if result.version else ""
        return ActionResult(SCHEMA, Outcome.OK, f"Reverted migrations {listed}{head}.", data=data)

    async def _team_schema_command(self, release: Release, versions: list[str]) -> ActionResult:
        settings = self.settings
        raw = str(settings.SCHEMA_ROLLBACK_COMMAND)
        values = {"{last}": str(len(versions)), "{versions}": ",".join(versions),
                  "{release_id}": str(release.id)}
        args = []
        for word in shlex.split(raw):
            for key, value in values.items():
                word = word.replace(key, value)
            args.append(word)
        extra = {"ROLLBACK_MIGRATIONS": " ".join(versions), "ROLLBACK_LAST": str(len(versions)),
                 "RELEASE_ID": str(release.id)}
        if settings.SUPABASE_DB_URL is not None:
            extra["SUPABASE_DB_URL"] = settings.secret("SUPABASE_DB_URL")
        try:
            result = await run_command(args, cwd=settings.APP_WORKSPACE or None,
                                       env=child_env(extra),
                                       timeout=settings.COMMAND_TIMEOUT_SECONDS,
                                       redact=self.redact)
        except OSError as exc:
            return ActionResult(SCHEMA, Outcome.FAIL,
                                f"SCHEMA_ROLLBACK_COMMAND could not start: {exc.strerror or exc}.")
        data = {"command": raw, "expected": versions, "returncode": result.returncode}
        tail = f"```\n{result.tail()}\n```" if result.tail() else ""
        if result.timed_out:
            return ActionResult(SCHEMA, Outcome.FAIL, f"`{raw}` timed out after "
                                f"{settings.COMMAND_TIMEOUT_SECONDS:g}s.", details=tail, data=data)
        if not result.ok:
            return ActionResult(SCHEMA, Outcome.FAIL,
                                f"`{raw}` exited with {result.returncode}.", details=tail, data=data)
        data["reverted"] = versions
        return ActionResult(SCHEMA, Outcome.OK,
                            f"`{raw}` reverted migrations {', '.join(versions)}.", details=tail,
                            data=data)

    async def _restore_backup(self, plan: Plan, choices: Choices) -> ActionResult:
        settings = self.settings
        missing = settings.missing(("SUPABASE_ACCESS_TOKEN", "SUPABASE_PROJECT_REF"))
        if missing:
            return ActionResult(BACKUP, Outcome.SKIPPED,
                                f"Not restored: {', '.join(missing)} not set.")
        ref = str(settings.SUPABASE_PROJECT_REF)
        if choices.confirm_ref.strip() != ref:
            return ActionResult(BACKUP, Outcome.FAIL,
                                f"Not restored: the project ref typed to confirm did not match `{ref}`.")
        async with supabase_api.supabase_client(settings) as client:
            found = await supabase_api.list_backups(client, ref)
            if not found.pitr_enabled:
                newest = found.backups[0].inserted_at if found.backups else "none"
                return ActionResult(BACKUP, Outcome.FAIL,
                                    f"Not restored: point-in-time recovery is not enabled on `{ref}`; "
                                    f"restore a daily backup (newest: {newest}) from the Supabase "
                                    "dashboard.")
            target = pitr_target(found, plan.release.started_at)
            if target is None:
                return ActionResult(BACKUP, Outcome.FAIL,
                                    "Not restored: the moment before the release started is outside "
                                    "the point-in-time recovery window "
                                    f"({describe_backups(found, plan.release.started_at)}).")
            await supabase_api.restore_pitr(client, ref, target)
            when = datetime.fromtimestamp(target, UTC)
            started = time.monotonic()
            limit = settings.RESTORE_TIMEOUT_SECONDS
            data: dict[str, Any] = {"recovery_time_target_unix": target, "project_ref": ref}
            last = "not read yet"
            seen_down = False  # a healthy answer only counts once the restore has visibly begun
            while True:
                try:
                    health = await supabase_api.project_health(client, ref, ("db",))
                    db = next((h for h in health if h.name == "db"), None)
                    last = db.status if db else "MISSING"
                    if db is not None and db.healthy and seen_down:
                        break
                    seen_down = seen_down or db is None or not db.healthy
                except ProviderError as exc:
                    last = str(exc)
                    seen_down = True
                waited = time.monotonic() - started
                if waited >= limit:
                    data["last_health"] = last
                    if not seen_down:
                        return ActionResult(BACKUP, Outcome.WARN,
                                            f"Restore to {_stamp(when)} was accepted, but the database "
                                            f"never showed it restoring within {limit:g}s; check the "
                                            "Supabase dashboard.", data=data)
                    return ActionResult(BACKUP, Outcome.FAIL,
                                        f"Restore to {_stamp(when)} started, but the database was "
                                        f"not healthy after {limit:g}s (last: {last}).", data=data)
                pause = min(self.poll_seconds, limit / 10)
                await asyncio.sleep(min(pause, max(limit - waited, 0.0)))
        data["waited_seconds"] = round(time.monotonic() - started, 1)
        return ActionResult(BACKUP, Outcome.OK,
                            f"Restored `{ref}` to {_stamp(when)} (point in time); the database "
                            f"answered healthy after {data['waited_seconds']:g}s.", data=data)

    async def _flush_cache(self) -> ActionResult:
        settings = self.settings
        if settings.STAGING_REDIS_URL is None:
            return ActionResult(CACHE, Outcome.SKIPPED, "Not flushed: STAGING_REDIS_URL is not set.")
        url = settings.secret("STAGING_REDIS_URL")
        before, after = await redis_info.flush_all(url, settings.HTTP_TIMEOUT_SECONDS)
        data = {"keys_before": before, "keys_after": after}
        where = redis_info.where(url)
        if after:
            return ActionResult(CACHE, Outcome.WARN, f"FLUSHALL ASYNC on {where}: {before} keys "
                                f"before, still {after} after.", data=data)
        return ActionResult(CACHE, Outcome.OK,
                            f"FLUSHALL ASYNC on {where}: {before} keys before, {after} after.",
                            data=data)

    async def _checks(self, release: Release) -> list[tuple[str, StepResult]]:
        """Re-run the smoke and health steps against staging."""
        load_steps()
        out: list[tuple[str, StepResult]] = []
        for name in CHECKS:
            sdef = REGISTRY.get(name)
            if sdef is None:
                continue
            reason = sdef.skip_reason(self.settings)
            if reason is not None:
                out.append((name, StepResult.skipped(f"Skipped: {reason}")))
                continue

            async def progress(text: str) -> None:
                return None

            async def ask(gate: Gate) -> Decision:
                raise RuntimeError("a check asked a question during a rollback")

            ctx = StepContext(settings=self.settings, release=release, step_name=name, options={},
                              redact=self.redact, progress=progress, ask=ask)
            try:
                if sdef.timeout:
                    async with asyncio.timeout(sdef.timeout):
                        result = await sdef.run(ctx)
                else:
                    result = await sdef.run(ctx)
            except TimeoutError:
                result = StepResult.fail(f"Timed out after {sdef.timeout:g}s")
            except Exception as exc:
                result = StepResult.fail(f"Crashed: {type(exc).__name__}: {exc}")
            out.append((name, StepResult.model_validate(self.redact.data(result.model_dump()))))
        return out

    # --- the record and the announcement ------------------------------------------------------
    def _trigger_field(self, report: RollbackReport) -> str:
        tickets = ", ".join(f"{t.label} ({t.url})" if t.url and t.url != t.label else t.label
                            for t in report.tickets)
        text = f"{report.reason} (by {report.user}, {_stamp(report.at)}"
        text += f"; tickets: {tickets})" if tickets else ")"
        return text

    def _record(self, report: RollbackReport) -> None:
        release_id = report.release.id
        assert release_id is not None
        for result in report.results:
            self.store.record_rollback_action(release_id, report.rollback_id, result.action,
                                              result.outcome.value, result.summary,
                                              result.details, utcnow())
        for name, check in report.checks:
            self.store.record_rollback_action(release_id, report.rollback_id, f"check:{name}",
                                              check.outcome.value, check.summary, check.details,
                                              utcnow())
        release = self.store.get_release(release_id) or report.release
        summary = report.summary()
        earlier = release.data.get("rollback")
        if isinstance(earlier, dict):
            release.data.setdefault("rollback_history", []).append(earlier)
        release.data["rollback"] = summary
        release.fields["Rollback Trigger (if used)"] = self._trigger_field(report)
        if report.rolled_back:
            release.status = ReleaseStatus.ROLLED_BACK
            release.finished_at = release.finished_at or report.at
        self.store.save_release(release)
        report.release = release

    def announcement(self, report: RollbackReport) -> Message:
        """Who, when, which release, why, both deployments, tickets, and every action."""
        release = report.release
        domain = self.settings.staging_domain
        head = (f":rewind: *Rollback of release #{release.id}* (`{release.ref}` to "
                f"{release.environment}) by <@{report.user}> at {_stamp(report.at)}")
        lines = [head, f"*Reason:* {escape(report.reason)}"]
        if report.tickets:
            lines.append("*Tickets:* " + ", ".join(link_text(t) for t in report.tickets))
        if report.cancelled_first:
            lines.append(":no_entry_sign: The release was still running, so it was cancelled "
                         "first.")
        if report.reverted is not None:
            sha = f", `{report.reverted.sha[:7]}`" if report.reverted.sha else ""
            lines.append(f"*Reverted deployment:* {report.reverted.link()} "
                         f"(release #{release.id}{sha})")
        if report.serving is not None:
            source = f" ({report.serving.source})" if report.serving.source else ""
            at = f" at <https://{domain}|{domain}>" if domain and \
                self.settings.VERCEL_TARGET != "production" else ""
            lines.append(f"*Now serving:* {report.serving.link()}{source}{at}")
        lines.append("*Actions:*")
        if not report.results:
            lines.append("• none were chosen")
        for result in report.results:
            lines.append(f"{ICONS[result.outcome]} *{TITLES[result.action]}*: {result.summary}")
        if report.checks:
            checks = " · ".join(
                f"{ICONS[check.outcome]} {REGISTRY[name].title if name in REGISTRY else name}: "
                f"{check.summary}" for name, check in report.checks)
            lines.append(f"*Checks after the revert:* {checks}")
        failed = [TITLES[r.action] for r in report.results if r.outcome == Outcome.FAIL]
        if report.rolled_back:
            status = "Release status: *rolled back*."
        else:
            status = ("Release status unchanged (*" + release.status.value + "*): the deployment "
                      "was not reverted.")
        if failed:
            status += " Failed: " + ", ".join(failed) + "."
        lines.append(status)
        text = blocks.cut("\n".join(lines), 39000)
        sections = [blocks.section(chunk) for chunk in _chunks(lines)]
        details = [r for r in report.results if r.details]
        for result in details[:5]:
            sections.append(blocks.section(f"*{TITLES[result.action]}*\n{result.details}"))
        return Message(text=self.redact(text),
                       blocks=self.redact.data([b.to_dict() for b in sections[:blocks.MAX_BLOCKS]]),
                       summary=self.redact(head))

    def parent(self, report: RollbackReport) -> Message:
        """The release's parent message with a line on the rollback."""
        release = report.release
        message = blocks.parent_message(release, rollback_enabled=True)
        if report.rolled_back:
            line = (f":rewind: Rolled back by <@{report.user}> at {_stamp(report.at)}: "
                    f"{escape(_short(report.reason, 200))}")
        else:
            line = (f":warning: Rollback attempted by <@{report.user}> at {_stamp(report.at)}; "
                    "the deployment was not reverted (see the thread).")
        extra = blocks.context(line).to_dict()
        at = len(message.blocks)
        if message.blocks and message.blocks[-1].get("type") == "actions":
            at -= 1
        message.blocks.insert(at, extra)
        message.text = f"{message.text}\n{line}"
        return Message(text=self.redact(message.text), blocks=self.redact.data(message.blocks),
                       summary=self.redact(message.summary))

    async def _announce(self, report: RollbackReport, channel: str | None) -> None:
        release = report.release
        message = self.announcement(report)
        where = (self.settings.ENGINEERING_CHANNEL or release.channel
                 or self.settings.RELEASE_CHANNEL or channel)
        if where:
            await self._safely(self.chat.post(where, message), f"post to {where}")
        if release.channel and release.thread_ts:
            await self._safely(self.chat.post(release.channel, message, release.thread_ts),
                               "reply in the release thread")
            await self._safely(self.chat.update(release.channel, release.thread_ts,
                                                self.parent(report)), "update the parent message")

    async def _thread_note(self, release: Release, text: str) -> None:
        if release.channel and release.thread_ts:
            await self._safely(self.chat.post(release.channel,
                                              blocks.note_message(self.redact(text)),
                                              release.thread_ts), "note in the thread")

    async def _safely(self, call: Awaitable[Any], what: str) -> None:
        try:
            await call
        except Exception as exc:  # the release log already holds the truth
            log.error("rollback: could not %s: %s", what, self.redact(str(exc)))


def _chunks(lines: list[str]) -> list[str]:
    """Lines grouped into section-sized texts."""
    out: list[str] = []
    current = ""
    for line in lines:
        line = blocks.cut(line, blocks.SECTION_LIMIT - 10)
        if current and len(current) + len(line) + 1 > blocks.SECTION_LIMIT - 10:
            out.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        out.append(current)
    return out


def pitr_target(found: supabase_api.Backups, started_at: datetime) -> int | None:
    """The unix time just before the release started, if inside the recovery window."""
    target = int(started_at.timestamp()) - 1
    if found.earliest_unix is not None and target < found.earliest_unix:
        return None
    if found.latest_unix is not None and target > found.latest_unix:
        return found.latest_unix
    return target


def describe_backups(found: supabase_api.Backups, started_at: datetime) -> str:
    """One line on the backups and the recovery window."""
    parts = []
    if found.pitr_enabled:
        window = ""
        if found.earliest_unix is not None and found.latest_unix is not None:
            window = (f" (window {_stamp(datetime.fromtimestamp(found.earliest_unix, UTC))} to "
                      f"{_stamp(datetime.fromtimestamp(found.latest_unix, UTC))})")
        target = pitr_target(found, started_at)
        if target is not None:
            parts.append(f"point in time {_stamp(datetime.fromtimestamp(target, UTC))}, just "
                         f"before the release started{window}")
        else:
            parts.append(f"point-in-time recovery, but the release's start is outside the "
                         f"window{window}")
    else:
        parts.append("point-in-time recovery is off (daily backups restore from the dashboard)")
    if found.backups:
        listed = ", ".join(f"#{b.id} {b.inserted_at} {b.status}" for b in found.backups[:3])
        more = f" and {len(found.backups) - 3} more" if len(found.backups) > 3 else ""
        parts.append(f"backups: {listed}{more}")
    else:
        parts.append("no daily backups listed")
    return "; ".join(parts)


# --- wiring ------------------------------------------------------------------------------------
def controller(runtime: Runtime) -> Rollbacks:
    """The runtime's rollback controller (made by `wire`)."""
    found = getattr(runtime.service, "rollback_controller", None)
    if not isinstance(found, Rollbacks):
        found = wire(runtime)
    return found


def wire(runtime: Runtime) -> Rollbacks:
    """Route `/release rollback` here and show the Roll back button on finished releases."""
    rollbacks = Rollbacks(runtime.settings, runtime.store, runtime.engine, runtime.chat,
                          runtime.redactor)
    runtime.service.rollback_controller = rollbacks  # type: ignore[attr-defined]
    runtime.service.rollback = rollbacks.handle_command
    runtime.reporter.rollback_enabled = True
    return rollbacks


def metadata(release_id: int, channel: str, target: str | None = None) -> str:
    """The modal's private_metadata."""
    return json.dumps({"release": release_id, "channel": channel, "target": target})


def read_metadata(text: str) -> tuple[int, str, str | None]:
    """(release id, channel, target deployment) from private_metadata; ValueError if not ours."""
    try:
        data = json.loads(text or "")
    except (ValueError, RecursionError) as exc:
        raise ValueError("not a rollback form") from exc
    if not isinstance(data, dict):
        raise ValueError("not a rollback form")
    release, channel, target = data.get("release"), data.get("channel"), data.get("target")
    if isinstance(release, bool) or not isinstance(release, int) or not 0 < release < 10**15:
        raise ValueError("not a rollback form")
    return (release, channel if isinstance(channel, str) else "",
            target if isinstance(target, str) and target else None)
