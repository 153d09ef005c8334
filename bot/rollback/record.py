"""A rollback in the release log: each action and check, the summary in `release.data`, the
guide's "Rollback Trigger (if used)" field, and the release's status."""

from __future__ import annotations

from bot import kb
from bot.rollback.model import TRIGGER, RollbackReport, stamp
from bot.runbook.model import Release, ReleaseStatus, utcnow
from bot.store import Store


def trigger_line(report: RollbackReport) -> str:
    """The trigger field's line for this rollback: reason, who, when, tickets."""
    tickets = ", ".join(f"{t.label} ({t.url})" if t.url and t.url != t.label else t.label
                        for t in report.tickets)
    text = f"{report.reason} (by {report.user}, {stamp(report.at)}"
    text += f"; tickets: {tickets})" if tickets else ")"
    return text


def record(store: Store, report: RollbackReport) -> Release:
    """Keep the rollback in the log (before anyone is told) and return the release as saved."""
    release_id = report.release.id
    assert release_id is not None
    for result in report.results:
        store.record_rollback_action(release_id, report.rollback_id, result.action,
                                     result.outcome.value, result.summary, result.details,
                                     utcnow())
    for name, check in report.checks:
        store.record_rollback_action(release_id, report.rollback_id, f"check:{name}",
                                     check.outcome.value, check.summary, check.details, utcnow())
    release = store.get_release(release_id) or report.release
    _summarize(release, report)
    store.save_release(release)
    kb.rollback_recorded(store, release)
    return release


def _summarize(release: Release, report: RollbackReport) -> None:
    """The rollback's summary, trigger line and status on the release."""
    earlier = release.data.get("rollback")
    if isinstance(earlier, dict):
        release.data.setdefault("rollback_history", []).append(earlier)
    release.data["rollback"] = report.summary()
    # Each rollback adds its line: the first trigger stays on record.
    trigger, earlier_text = trigger_line(report), release.fields.get(TRIGGER, "")
    if trigger not in earlier_text.split("\n"):
        release.fields[TRIGGER] = f"{earlier_text}\n{trigger}" if earlier_text else trigger
    if report.rolled_back:
        release.status = ReleaseStatus.ROLLED_BACK
        release.finished_at = release.finished_at or report.at
