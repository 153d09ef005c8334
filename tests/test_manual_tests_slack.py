""""Manual Tests" asked of the release's starter through the real Bolt app and the Slack
emulator: the button, the form, the answer in the log and the thread, and the one reminder."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlite_utils

from bot.manual_tests import MANUAL_TESTS_ACTION, ManualTests, remind_job
from bot.scheduler import PERSISTENT
from bot.store import Store, migrations
from handlers.manual_tests import CALLBACK_ID, CHECKED, NOTES, VALUE
from sandbox.staging_app import StagingState
from tests.slack_e2e import SlackHarness
from tests.test_watch import blocks_of, released, watch_settings


def manual_of(slack: SlackHarness) -> ManualTests:
    return next(x for x in slack.runtime.listeners if isinstance(x, ManualTests))


async def submit(slack: SlackHarness, view: dict[str, Any], checked: list[str], notes: str | None,
                 user: str = "U0ALICE") -> httpx.Response:
    values = {CHECKED: {VALUE: {"type": "checkboxes",
                                "selected_options": [{"value": v} for v in checked]}},
              NOTES: {VALUE: {"type": "plain_text_input", "value": notes}}}
    payload = {"type": "view_submission", "team": {"id": slack.state.team_id},
               "user": {"id": user, "username": user.lower(), "team_id": slack.state.team_id},
               "api_app_id": "A0RELEASEBOT", "token": "legacy-verification-token",
               "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}",
               "view": {**view, "state": {"values": values}}, "response_urls": []}
    return await slack.interact(payload)


async def test_the_starter_records_manual_tests_through_the_form_and_the_thread_shows_them(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, _ = staging
    async with SlackHarness(tmp_path, **watch_settings(tmp_path, url, WATCH_MINUTES=0)) as slack:
        release = await released(slack)
        assert release.fields["Manual Tests"] == ""
        assert "/api/health ok" in release.fields["Automated Checks"]
        asks = [e for e in slack.state.ephemerals if e["to_user"] == "U0ALICE"
                and any(el.get("action_id") == MANUAL_TESTS_ACTION
                        for b in blocks_of(e) if b["type"] == "actions" for el in b["elements"])]
        assert len(asks) == 1
        manual = manual_of(slack)
        assert manual.scheduler is not None
        assert manual.scheduler.get_job("manual-tests-1", jobstore=PERSISTENT) is not None

        await slack.press(MANUAL_TESTS_ACTION, "1", user="U0BOB")
        await slack.wait_for(lambda: any("only the person who started" in r.get("text", "")
                                         for rs in slack.state.responses.values() for r in rs),
                             what="Bob's refusal")
        assert slack.state.calls_to("views.open") == []

        await slack.press(MANUAL_TESTS_ACTION, "1")
        opened = await slack.wait_for(lambda: slack.state.calls_to("views.open"), what="the form")
        view = opened[0]["view"]
        view = json.loads(view) if isinstance(view, str) else view
        assert view["callback_id"] == CALLBACK_ID
        options = view["blocks"][1]["element"]["options"]
        assert [o["text"]["text"] for o in options] == slack.settings.MANUAL_TEST_CHECKLIST

        empty = await submit(slack, view, [], "  ")
        assert empty.json()["response_action"] == "errors"
        bob = await submit(slack, view, ["0"], "x", user="U0BOB")
        assert bob.json()["response_action"] == "errors"
        assert slack.runtime.store.get_release(1).fields["Manual Tests"] == ""

        answered = await submit(slack, view, ["0", "2", "99"], "<!here> tried the offline page")
        assert answered.status_code == 200 and not answered.text
        stored = await slack.wait_for(
            lambda: slack.runtime.store.get_release(1).fields["Manual Tests"], what="the answer")
        assert stored == ("✓ Dashboard renders; ✓ Offline mode (PWA) works; "
                          "<!here> tried the offline page (by U0ALICE)")
        shown = await slack.wait_for(lambda: [c["text"] for c in slack.thread(release.thread_ts)
                                              if "Manual Tests" in c["text"]], what="the thread")
        assert len(shown) == 1 and "&lt;!here&gt; tried the offline page" in shown[0]
        assert "<!here>" not in shown[0]
        assert manual.scheduler.get_job("manual-tests-1", jobstore=PERSISTENT) is None
        assert await manual.remind(1) is False  # answered: no reminder


async def test_unanswered_manual_tests_get_one_reminder(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, _ = staging
    async with SlackHarness(tmp_path, **watch_settings(tmp_path, url, WATCH_MINUTES=0)) as slack:
        release = await released(slack)
        manual = manual_of(slack)
        job = manual.scheduler.get_job("manual-tests-1", jobstore=PERSISTENT)
        assert job is not None and job.func is remind_job
        before = len(slack.thread(release.thread_ts))
        await remind_job(*job.args)
        await remind_job(*job.args)
        reminders = slack.thread(release.thread_ts)[before:]
        assert len(reminders) == 1
        assert "Reminder" in reminders[0]["text"] and "<@U0ALICE>" in reminders[0]["text"]


def test_the_migration_moves_what_manual_tests_held_to_automated_checks(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(str(path))
    migrations.apply(db, stop_before="m003_automated_checks")
    db.table("releases").insert({"environment": "staging", "ref": "main", "started_by": "U1",
                                 "status": "succeeded", "started_at": "2026-01-01T00:00:00+00:00",
                                 "manual_tests": "npm run test passed at abc123", "data": "{}"})
    db.close()
    release = Store(path).get_release(1)
    assert release is not None
    assert release.fields["Automated Checks"] == "npm run test passed at abc123"
    assert release.fields["Manual Tests"] == ""
