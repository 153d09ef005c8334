"""Releases and steps to table rows and back (pure: no database here).

Free text (notes, fields, the readable strings in results and data) comes from people and tools
and is redacted on the way in; ids, SHAs, timestamps and the JSON's shape are stored as they are.

A release's `data["steps"]` repeats each step's result data (steps read each other's results
there). The row keeps such a copy as null when it equals the step row's `data`, and lists its
name in the `folded_steps` column (`fold_steps`); reading fills it back in from the step
(`unfold_steps`). Each result is stored once, and a null that was written stays null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from pydantic_core import from_json

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


def loads(text: str) -> Any:
    """Parse stored JSON with pydantic-core's parser (2-3 times faster than `json.loads` on
    step data; a listing parses hundreds), falling back to `json` for what it refuses."""
    try:
        return from_json(text)
    except ValueError:
        return json.loads(text)


def iso(value: datetime | None) -> str | None:
    """A timestamp as stored (ISO 8601), or None."""
    return value.isoformat() if value else None


def dt(value: str | None) -> datetime | None:
    """A stored timestamp back, or None."""
    return datetime.fromisoformat(value) if value else None


def release_row(release: Release) -> dict[str, Any]:
    """The `releases` row of `release`, redacted; `data` holds every step copy (unfolded)."""
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
        "data": json.dumps(redact.data(release.data), default=str),
    }
    for name, column in FIELD_COLUMNS.items():
        if column != "git_sha":
            value = release.fields.get(name, "") or ""
            row[column] = value if column == "release_date" else redact(value)
    return row


def step_row(release_id: int, record: StepRecord) -> dict[str, Any]:
    """The `steps` row of one step of a release, its result and gate redacted."""
    redact = default_redactor()
    result = record.result
    if result is not None:  # text and the data's readable strings; never ids or shape
        result = StepResult.model_validate(redact.data(result.model_dump()))
    gate = Gate.model_validate(redact.data(record.gate.model_dump())) if record.gate else None
    return {
        "release_id": release_id,
        "name": record.name,
        "title": record.title,
        "phase": record.phase,
        "position": record.position,
        "state": record.state.value,
        "outcome": result.outcome.value if result else None,
        "summary": result.summary if result else None,
        "details": result.details if result else None,
        "links": json.dumps([link.model_dump() for link in result.links]) if result else None,
        "output_tail": result.output_tail if result else None,
        "data": json.dumps(result.data, default=str) if result else None,
        "gate": gate.model_dump_json() if gate else None,
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
    }


def fold_steps(data_json: str, stored: Mapping[str, str]) -> dict[str, str | None]:
    """The `data` and `folded_steps` columns for `data_json` (a release's data, every copy in it)
    and `stored` (step name -> its step row's `data`): copies equal to their row become null."""
    data = json.loads(data_json)
    copies = data.get("steps")
    folded = [name for name, value in copies.items()
              if json.dumps(value, default=str) == stored.get(name)] if isinstance(copies, dict) else []
    if not folded:
        return {"data": data_json, "folded_steps": None}
    for name in folded:
        copies[name] = None
    return {"data": json.dumps(data, default=str), "folded_steps": json.dumps(folded)}


def unfold_steps(data: dict[str, Any], folded_json: str | None, steps: list[StepRecord]) -> dict[str, Any]:
    """`data` with each folded `steps` copy filled in from its step's result data (in place)."""
    copies = data.get("steps")
    if folded_json and isinstance(copies, dict):
        results = {record.name: record.result for record in steps}
        for name in loads(folded_json):
            result = results.get(name)
            copies[name] = result.data if result is not None else None
    return data


def release_from_row(row: Row, steps: list[StepRecord], *, unfold: bool = True) -> Release:
    """The release of a `releases` row and its steps (already read); `unfold=False` leaves the
    steps' folded data copies out of `data["steps"]` (steps read without their results)."""
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
        data=unfold_steps(loads(row["data"] or "{}"), row["folded_steps"] if unfold else None, steps),
        steps=steps,
    )


SUMMARY_STEP_COLUMNS = "release_id, name, title, phase, position, state, started_at, finished_at"


def step_summary_from_row(row: Row) -> StepRecord:
    """A step's name, place, state and times, without its result (for listings: `log`, App
    Home), built without validation from columns the store itself wrote."""
    return StepRecord.model_construct(
        name=row["name"], title=row["title"], phase=row["phase"], position=row["position"],
        state=StepState(row["state"]), result=None, gate=None,
        started_at=dt(row["started_at"]), finished_at=dt(row["finished_at"]))


def step_from_row(row: Row) -> StepRecord:
    """The step record of a `steps` row (validated in one call: a listing reads hundreds)."""
    result = None
    if row["outcome"]:
        result = {
            "outcome": row["outcome"],
            "summary": row["summary"] or "",
            "details": row["details"] or "",
            "links": loads(row["links"] or "[]"),
            "output_tail": row["output_tail"] or "",
            "data": loads(row["data"] or "{}"),
        }
    return StepRecord.model_validate({
        "name": row["name"],
        "title": row["title"],
        "phase": row["phase"],
        "position": row["position"],
        "state": row["state"],
        "result": result,
        "gate": json.loads(row["gate"]) if row["gate"] else None,
        "started_at": dt(row["started_at"]),
        "finished_at": dt(row["finished_at"]),
    })
