"""What a rollback is made of: the choices, the plan, each action's result and the report.

Pure data and pure helpers that read a release's log entry; no network, no chat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.config import Settings
from bot.runbook.model import Link, Outcome, Release, StepResult

DEPLOYMENT, SCHEMA, BACKUP, CACHE = "deployment", "schema", "backup", "cache"
ACTIONS = (DEPLOYMENT, SCHEMA, BACKUP, CACHE)
TITLES = {
    DEPLOYMENT: "Revert the deployment",
    SCHEMA: "Revert the schema",
    BACKUP: "Restore a database backup",
    CACHE: "Flush the staging Redis cache",
}
CHECKS = ("smoke", "health")
TRIGGER = "Rollback Trigger (if used)"
VERSION = re.compile(r"\b(\d{14})\b")
SAFE_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~!$'()*+,;=:@%/?#&-]*)?")
TICKET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._#-]{0,63}")


class RollbackBusy(Exception):
    """Another rollback of the same release is under way."""


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
        """The deployment as the release log keeps it."""
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
    """One action's outcome (`serving`: the deployment a deployment revert left serving)."""

    action: str
    outcome: Outcome
    summary: str
    details: str = ""
    links: list[Link] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    serving: DeploymentRef | None = None


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
    check_titles: dict[str, str] = field(default_factory=dict)
    cancelled_first: bool = False
    reverted: DeploymentRef | None = None
    serving: DeploymentRef | None = None
    rolled_back: bool = False

    def result(self, action: str) -> ActionResult | None:
        """The result of one action, if it ran."""
        return next((r for r in self.results if r.action == action), None)

    def failed(self) -> list[str]:
        """The titles of the actions that failed."""
        return [TITLES[r.action] for r in self.results if r.outcome == Outcome.FAIL]

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


def split_tickets(text: str) -> list[str]:
    """Ticket IDs or URLs from free text (commas, spaces or new lines between them)."""
    return [part for part in re.split(r"[\s,]+", text or "") if part]


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


def schema_command_text(settings: Settings, count: int) -> str:
    """What a schema revert really runs."""
    if settings.SCHEMA_ROLLBACK_COMMAND:
        return f"`{settings.SCHEMA_ROLLBACK_COMMAND}`"
    return f"`supabase migration down --last {count}`"


def stamp(at: datetime) -> str:
    """A moment as the rollback's texts show it."""
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def short(text: str, limit: int = 300) -> str:
    """`text` on one line, cut to `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
