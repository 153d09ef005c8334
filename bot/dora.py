"""The four DORA measures, computed from the release log (pure: no I/O).

- A *deployment* is a release that went live on staging: its `deploy` step passed (live at that
  step's end). A runbook without a deploy step counts a succeeded or rolled-back release as live
  when it finished.
- Deployment frequency: deployments live within the window, per week.
- Lead time for changes: from the first commit of the release (GitHub's compare against the
  previous release, `first_commits`) to live on staging; the median over deployments that have it.
- Change failure rate: deployments later rolled back or failed after the deploy, over deployments.
- Time to restore: from the rollback (or the failure) to the next successful release going live;
  the median over failed changes that were restored.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.runbook.model import Release, ReleaseStatus, StepState

WINDOW_DAYS = 30
LIVE_STATES = (StepState.OK, StepState.WARN)


@dataclass(frozen=True)
class Dora:
    """The measures over `days`; None where nothing could be measured."""

    days: int
    deployments: int
    per_week: float
    lead_time: timedelta | None
    lead_time_known: int
    failed_changes: int
    change_failure_rate: float | None
    time_to_restore: timedelta | None
    restored: int


def live_at(release: Release) -> datetime | None:
    """When the release went live on staging, or None when it never did."""
    for record in release.steps:
        if record.name == "deploy":
            return record.finished_at if record.state in LIVE_STATES else None
    if release.status in (ReleaseStatus.SUCCEEDED, ReleaseStatus.ROLLED_BACK):
        return release.finished_at
    return None


def failed_change(release: Release) -> datetime | None:
    """When a live release broke: its rollback, or its failure after the deploy; else None."""
    if live_at(release) is None:
        return None
    rollback = release.data.get("rollback")
    if release.status == ReleaseStatus.ROLLED_BACK or (
            isinstance(rollback, dict) and rollback.get("status") == "rolled_back"):
        at = rollback.get("at") if isinstance(rollback, dict) else None
        return _parse(at) or release.finished_at
    if release.status == ReleaseStatus.FAILED:
        return release.finished_at
    return None


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _median(values: list[timedelta]) -> timedelta | None:
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values)) if values else None


def compute(releases: list[Release], first_commits: dict[int, datetime], now: datetime,
            days: int = WINDOW_DAYS) -> Dora:
    """The measures over the `days` before `now`, from `releases` of one environment."""
    since = now - timedelta(days=days)
    ordered = sorted(releases, key=lambda r: r.id or 0)
    live = [(r, at) for r in ordered if (at := live_at(r)) is not None and since <= at <= now]
    leads = [at - first_commits[r.id] for r, at in live if r.id in first_commits]
    failures = [(r, broke) for r, _ in live if (broke := failed_change(r)) is not None]
    restores: list[timedelta] = []
    for release, broke in failures:
        later = [at for r, at in ((r, live_at(r)) for r in ordered if (r.id or 0) > (release.id or 0))
                 if r.status == ReleaseStatus.SUCCEEDED and at is not None and at >= broke]
        if later:
            restores.append(min(later) - broke)
    return Dora(
        days=days,
        deployments=len(live),
        per_week=len(live) * 7 / days,
        lead_time=_median(leads),
        lead_time_known=len(leads),
        failed_changes=len(failures),
        change_failure_rate=len(failures) / len(live) if live else None,
        time_to_restore=_median(restores),
        restored=len(restores),
    )
