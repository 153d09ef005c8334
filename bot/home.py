"""The bot's App Home tab: the running release and its current step, open post-deploy watches,
the four DORA measures over 30 days, and the last 10 releases (published with `views.publish`).

`home_view()` is pure (Block Kit through `slack_sdk.models`, so Slack's limits are enforced);
`gather()` reads what it shows from the release log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import DividerBlock, HeaderBlock
from slack_sdk.models.views import View

from bot.chat import blocks
from bot.chat.links import thread_links
from bot.dora import Dora, compute
from bot.lead_time import first_commits
from bot.redact import escape
from bot.runbook.model import Release, StepState, utcnow
from bot.store import Store

LAST = 10
MAX_HOME_BLOCKS = 100


@dataclass
class HomeData:
    """What the Home tab shows."""

    environment: str
    active: Release | None
    releases: list[Release]
    watches: list[dict[str, Any]]
    dora: Dora
    links: dict[int, str]


def _span(value: timedelta | None) -> str:
    return blocks.duration(value.total_seconds()) if value is not None else "—"


def dora_text(dora: Dora) -> str:
    """The four measures, one line each, saying how much they rest on."""
    rate = f"{dora.change_failure_rate:.0%}" if dora.change_failure_rate is not None else "—"
    return "\n".join([
        f"*Deployment frequency*: {dora.deployments} in {dora.days} days "
        f"({dora.per_week:.1f} per week)",
        f"*Lead time for changes*: {_span(dora.lead_time)} median, first commit to live on "
        f"staging ({dora.lead_time_known} of {dora.deployments} deployments known)",
        f"*Change failure rate*: {rate} ({dora.failed_changes} rolled back or failed after "
        f"deploy)",
        f"*Time to restore*: {_span(dora.time_to_restore)} median, rollback to the next "
        f"successful release ({dora.restored} of {dora.failed_changes} restored)",
    ])


def active_text(release: Release | None, link: str | None) -> str:
    """The running release and the step it is at."""
    if release is None:
        return "No release is running."
    now = [r.title for r in release.steps if r.state in (StepState.RUNNING, StepState.WAITING)]
    step = f"\nCurrent step: *{escape(', '.join(now))}*" if now else ""
    where = f" · <{link}|thread>" if link else ""
    return (f"*{escape(blocks.title_line(release))}* · started by "
            f"{blocks.user_text(release.started_by)}{where}\n{blocks.status_line(release)}{step}")


def watch_text(watches: list[dict[str, Any]]) -> str:
    if not watches:
        return "No post-deploy watch is open."
    return "\n".join(f":eyes: Release #{w['release_id']}: {w['checks']} "
                     f"check{'' if w['checks'] == 1 else 's'} so far, until "
                     f"{str(w['ends_at'])[11:16]} UTC" for w in watches)


def home_view(data: HomeData) -> dict[str, Any]:
    """The Home tab as a `views.publish` view."""
    active_link = data.links.get(data.active.id or 0) if data.active else None
    parts: list[blocks.Built] = [
        HeaderBlock(text=f"Releases to {data.environment}"[:150]),
        blocks.section("*Running now*\n" + active_text(data.active, active_link)),
        blocks.section("*Post-deploy watches*\n" + watch_text(data.watches)),
        DividerBlock(),
        blocks.section(f"*DORA, last {data.dora.days} days*\n" + dora_text(data.dora)),
        DividerBlock(),
        blocks.section(f"*Last {len(data.releases)} releases*" if data.releases else "No releases yet."),
    ]
    parts += [blocks.section(blocks.log_line(r, data.links.get(r.id or 0))) for r in data.releases]
    view = View(type="home", blocks=parts[:MAX_HOME_BLOCKS])
    view.validate_json()
    return view.to_dict()


async def gather(store: Store, environment: str, watches: list[dict[str, Any]], chat: Any,
                 now: datetime | None = None) -> HomeData:
    """Read the Home tab's data from the release log (and thread links from Slack)."""
    now = now or utcnow()
    releases = store.release_summaries(LAST, environment)
    active = store.active_release(environment)
    window = store.releases_since(environment, now - timedelta(days=31))
    dora = compute(window, first_commits(store), now)
    linked = [*releases, *([active] if active and all(r.id != active.id for r in releases) else [])]
    links = await thread_links(chat, linked)
    return HomeData(environment, active, releases,
                    [w for w in watches if w.get("environment") == environment], dora, links)
