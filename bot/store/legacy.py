"""Earlier layouts of the release log, read (and written) only by the migrations that leave them.

Until m007 each step had a row in a `steps` table and the release row a `data` column. From m005
on, a copy in `data["steps"]` equal to its step row's `data` was stored as null and its name
listed in `folded_steps` (`fold_steps`); m007 fills such copies back in and moves data and steps
into the release's body (`bot.store.body`), field for field (`body_of`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.store.body import loads

STEP_COLUMNS = ("name, title, phase, position, state, outcome, summary, details, links, output_tail, "
                "data, gate, started_at, finished_at")


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


def step_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `steps` row as a body's step: what reading the row gave, field for field."""
    result = None
    if row["outcome"]:
        result = {"outcome": row["outcome"], "summary": row["summary"] or "",
                  "details": row["details"] or "", "links": loads(row["links"] or "[]"),
                  "output_tail": row["output_tail"] or "", "data": loads(row["data"] or "{}")}
    return {"name": row["name"], "title": row["title"], "phase": row["phase"],
            "position": row["position"], "state": row["state"], "result": result,
            "gate": json.loads(row["gate"]) if row["gate"] else None,
            "started_at": row["started_at"], "finished_at": row["finished_at"]}


def release_data(data_json: str | None, folded_json: str | None,
                 steps: list[dict[str, Any]]) -> Any:
    """A release row's `data` with its folded step copies filled back in from its steps."""
    data = loads(data_json or "{}")
    copies = data.get("steps") if isinstance(data, dict) else None
    if folded_json and isinstance(copies, dict):
        results = {step["name"]: step["result"] for step in steps}
        for name in loads(folded_json):
            result = results.get(name)
            copies[name] = result["data"] if result is not None else None
    return data
