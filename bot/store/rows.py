"""Releases to `releases` rows and back (pure: no database here).

A row holds what people query as plain columns (ids, environment, ref, SHA, status, times, notes,
the guide's template fields) and everything else of the release, its data and its steps, in
its `body` (`bot.store.body`). Free text (notes, fields, the readable strings in results and
data) comes from people and tools and is redacted on the way in; ids, SHAs, timestamps and the
JSON's shape are stored as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from bot.redact import default_redactor
from bot.runbook.model import (
    TEMPLATE_FIELDS,
    Gate,
    Release,
    ReleaseStatus,
    StepRecord,
    StepResult,
    StepState,
)
from bot.store import body

FIELD_COLUMNS = {
    "Release Date": "release_date",
    "Git SHA": "git_sha",
    "Migrations Applied": "migrations_applied",
    "Feature Highlights": "feature_highlights",
    "Manual Tests": "manual_tests",
    "Automated Checks": "automated_checks",
    "Post-Deploy Monitoring Links": "monitoring_links",
    "Rollback Trigger (if used)": "rollback_trigger",
}



class Row(Protocol):
    """A table row read by column name (a dict, or a `sqlite3.Row`)."""

    def __getitem__(self, column: str, /) -> Any: ...


def iso(value: datetime | None) -> str | None:
    """A timestamp as stored (ISO 8601), or None."""
    return value.isoformat() if value else None


def dt(value: str | None) -> datetime | None:
    """A stored timestamp back, or None."""
    return datetime.fromisoformat(value) if value else None


def release_columns(release: Release) -> dict[str, Any]:
    """The plain columns of `release`'s row (everything but its body), redacted."""
    redact = default_redactor()
    row: dict[str, Any] = {
        "id": release.id,
        "environment": release.environment,
        "ref": release.ref,
        "git_sha": release.git_sha,
        "started_by": release.started_by,
        "channel": release.channel,
        "thread_ts": release.thread_ts,
        "status": release.status.value,
        "started_at": iso(release.started_at),
        "finished_at": iso(release.finished_at),
        "notes": redact(release.notes),
    }
    for name, column in FIELD_COLUMNS.items():
        if column != "git_sha":
            value = release.fields.get(name, "") or ""
            row[column] = value if column == "release_date" else redact(value)
    return row


def release_data(release: Release) -> Any:
    """The release's `data` as its body keeps it: every step copy in it, redacted."""
    return default_redactor().data(release.data)


def step_entry(record: StepRecord) -> dict[str, Any]:
    """One step of a release as its body keeps it, its result and gate redacted."""
    redact = default_redactor()
    result = record.result
    if result is not None:  # text and the data's readable strings; never ids or shape
        result = StepResult.model_validate(redact.data(result.model_dump()))
    gate = Gate.model_validate(redact.data(record.gate.model_dump())) if record.gate else None
    return {
        "name": record.name,
        "title": record.title,
        "phase": record.phase,
        "position": record.position,
        "state": record.state.value,
        "result": {
            "outcome": result.outcome.value, "summary": result.summary, "details": result.details,
            "links": [link.model_dump() for link in result.links], "output_tail": result.output_tail,
            "data": result.data,
        } if result else None,
        "gate": gate.model_dump(mode="json") if gate else None,
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
    }


def release_from_row(row: Row, *, results: bool = True, dictionary: bytes | None = None) -> Release:
    """The release of a `releases` row (its body unpacked against `dictionary`, the one its
    `body_dictionary` names); `results=False` builds its steps without their results and gates,
    unvalidated (listings: see `step_summary`)."""
    stored = body.unpack(row["body"], dictionary)
    build = step_from_entry if results else step_summary
    fields = {name: row[column] or "" for name, column in FIELD_COLUMNS.items()}
    fields["Git SHA"] = row["git_sha"] or ""
    return Release(
        id=row["id"],
        environment=row["environment"],
        ref=row["ref"],
        git_sha=row["git_sha"],
        started_by=row["started_by"],
        channel=row["channel"],
        thread_ts=row["thread_ts"],
        status=ReleaseStatus(row["status"]),
        started_at=datetime.fromisoformat(row["started_at"]),
        finished_at=dt(row["finished_at"]),
        notes=row["notes"] or "",
        fields={k: v for k, v in fields.items() if k in TEMPLATE_FIELDS},
        data=stored["data"],
        steps=[build(entry) for entry in stored["steps"]],
    )


def step_summary(entry: Mapping[str, Any]) -> StepRecord:
    """A step's name, place, state and times, without its result (for listings: `log`, App
    Home), built without validation from what the store itself wrote."""
    return StepRecord.model_construct(
        name=entry["name"], title=entry["title"], phase=entry["phase"], position=entry["position"],
        state=StepState(entry["state"]), result=None, gate=None,
        started_at=dt(entry["started_at"]), finished_at=dt(entry["finished_at"]))


def step_from_entry(entry: Mapping[str, Any]) -> StepRecord:
    """The step record of a body's step (validated in one call)."""
    return StepRecord.model_validate({**entry, "started_at": dt(entry["started_at"]),
                                      "finished_at": dt(entry["finished_at"])})
