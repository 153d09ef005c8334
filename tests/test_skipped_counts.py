"""Skipped steps are counted apart from passed ones: parent, phase summary, log, log show, JSON."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from bot.chat.blocks import final_message, parent_message, phase_summary
from bot.report import release_json, release_table, releases_table
from bot.runbook.model import Release, ReleaseStatus, StepRecord, StepResult, StepState, utcnow
from bot.store import Store
from tests.test_cli import cli


def release(status: ReleaseStatus = ReleaseStatus.SUCCEEDED) -> Release:
    now = utcnow()
    states = [("smoke", StepState.OK), ("health", StepState.WARN), ("redis", StepState.SKIPPED),
              ("coach_stream", StepState.SKIPPED), ("playwright", StepState.OK)]
    steps = [StepRecord(name=name, title=name.title(), phase="validate", position=i, state=state,
                        result=StepResult(outcome=state.value, summary=f"{name} said so"))
             for i, (name, state) in enumerate(states)]
    return Release(id=7, environment="staging", ref="release/1.2.0", started_by="U0ALICE",
                   status=status, started_at=now - timedelta(seconds=75), finished_at=now, steps=steps)


def test_phase_summary_never_counts_a_skip_as_a_pass() -> None:
    head = phase_summary("validate", release().steps).summary
    assert head == "*Validate summary*: 3 passed (1 with warnings), 2 skipped"
    all_skipped = [r.model_copy(update={"state": StepState.SKIPPED}) for r in release().steps]
    assert phase_summary("validate", all_skipped).summary == "*Validate summary*: 0 passed, 5 skipped"


def test_parent_and_final_message_say_how_many_were_skipped() -> None:
    done = release()
    assert "Succeeded in 1m 15s · 2 skipped" in parent_message(done).text
    final = final_message(done)
    assert "Succeeded in 1m 15s · 2 skipped" in final.text
    assert "Skipped: Redis (redis said so), Coach_Stream (coach_stream said so)" in final.text


def test_log_views_and_json_count_skipped_steps(tmp_path: Path) -> None:
    done = release()
    assert "Steps: 3 passed (1 with warnings), 2 skipped" in release_table(done)
    assert releases_table([done]).splitlines()[1].endswith(" 2")
    assert "skipped" in releases_table([done]).splitlines()[0]
    data = release_json(done)
    assert data["skipped"] == 2 and data["counts"] == {"ok": 2, "warn": 1, "skipped": 2}

    path = tmp_path / "log.db"
    store = Store(path)
    store.create_release(done)
    out = cli("log", "--json", env={"DATABASE_PATH": str(path)})
    assert json.loads(out.stdout)[0]["skipped"] == 2, out.stderr
    shown = cli("log", "show", str(done.id), env={"DATABASE_PATH": str(path)}).stdout
    assert "Steps: 3 passed (1 with warnings), 2 skipped" in shown
