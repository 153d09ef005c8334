"""App Home: DORA figures from a release log built here with known answers, lead times from the
GitHub emulator's compare, and the Home tab published through the real Bolt app and the Slack
emulator (required arguments from Slack's OpenAPI file, the view checked by slack_sdk's model)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.models.views import View

from bot.dora import compute
from bot.home import HomeData, home_view
from bot.lead_time import LeadTimes, first_commits
from bot.runbook.model import Release, ReleaseStatus, StepRecord, StepState
from bot.store import Store
from sandbox.github import GitHubState, create_github_app
from sandbox.server import serve
from sandbox.staging_app import StagingState
from tests.helpers import make_settings
from tests.slack_e2e import SlackHarness
from tests.test_watch import released, watch_settings

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "slack-web-api.openapi2.json"
SPEC = SPEC if SPEC.exists() else Path("/work/shared/specs/slack-web-api.openapi2.json")
H = timedelta(hours=1)
D = timedelta(days=1)


def release(number: int, status: ReleaseStatus, started: datetime, *, deploy: StepState | None,
            live: datetime | None = None, finished: datetime | None = None,
            rollback_at: datetime | None = None) -> Release:
    steps = []
    if deploy is not None:
        steps.append(StepRecord(name="deploy", title="Deploy", phase="deploy", state=deploy,
                                started_at=started, finished_at=live or started))
    data: dict[str, Any] = {}
    if rollback_at is not None:
        data["rollback"] = {"at": rollback_at.isoformat(), "status": "rolled_back"}
    return Release(id=number, environment="staging", ref=f"release/{number}", started_by="U0ALICE",
                   status=status, started_at=started, finished_at=finished or live or started,
                   steps=steps, data=data)


def known_log() -> tuple[list[Release], dict[int, datetime]]:
    """Seven releases; the answers are worked out in the test's comments."""
    ok, failed = StepState.OK, StepState.FAIL
    releases = [
        release(1, ReleaseStatus.SUCCEEDED, NOW - 41 * D, deploy=ok, live=NOW - 40 * D),  # outside
        release(2, ReleaseStatus.SUCCEEDED, NOW - 20 * D - H, deploy=ok, live=NOW - 20 * D),
        release(3, ReleaseStatus.ROLLED_BACK, NOW - 15 * D - H, deploy=ok, live=NOW - 15 * D,
                rollback_at=NOW - 15 * D + H),
        release(4, ReleaseStatus.FAILED, NOW - 15 * D + H, deploy=failed),  # never live
        release(5, ReleaseStatus.SUCCEEDED, NOW - 15 * D + 2 * H, deploy=ok, live=NOW - 15 * D + 3 * H),
        release(6, ReleaseStatus.FAILED, NOW - 5 * D - H, deploy=ok, live=NOW - 5 * D,
                finished=NOW - 5 * D + 10 * timedelta(minutes=1)),  # failed after the deploy
        release(7, ReleaseStatus.SUCCEEDED, NOW - D - H, deploy=ok, live=NOW - D),
        release(8, ReleaseStatus.ROLLED_BACK, NOW - 3 * H, deploy=ok, live=NOW - 2 * H,
                rollback_at=NOW - H),  # not restored yet
    ]
    first = {2: NOW - 20 * D - 2 * H, 5: NOW - 15 * D - H, 7: NOW - D - 6 * H, 1: NOW - 50 * D}
    return releases, first


def test_dora_from_a_log_with_known_answers() -> None:
    releases, first = known_log()
    dora = compute(releases, first, NOW)
    assert dora.deployments == 6  # 2, 3, 5, 6, 7, 8 (1 is older than 30 days, 4 never went live)
    assert dora.per_week == pytest.approx(6 * 7 / 30)
    assert dora.lead_time == 4 * H and dora.lead_time_known == 3  # median of 2h, 4h, 6h
    assert dora.failed_changes == 3 and dora.change_failure_rate == pytest.approx(0.5)  # 3, 6, 8
    # 3: rolled back at +1h, 5 live at +3h: 2h. 6: failed at -5d+10min, 7 live at -1d: 3d 23h50m.
    # 8: no successful release since. Median of 2h and 95h50m: 48h55m.
    assert dora.restored == 2
    assert dora.time_to_restore == timedelta(hours=48, minutes=55)


def test_dora_of_an_empty_log_says_so() -> None:
    dora = compute([], {}, NOW)
    assert (dora.deployments, dora.lead_time, dora.change_failure_rate, dora.time_to_restore) == \
        (0, None, None, None)
    text = json.dumps(home_view(HomeData("staging", None, [], [], dora, {})))
    assert "No release is running." in text and "No releases yet." in text


def test_home_view_shows_the_running_release_and_its_current_step() -> None:
    releases, first = known_log()
    running = Release(id=8, environment="staging", ref="release/<!channel>", started_by="U0BOB",
                      status=ReleaseStatus.RUNNING, started_at=NOW,
                      steps=[StepRecord(name="tests", title="npm run test", phase="prepare",
                                        state=StepState.OK),
                             StepRecord(name="lint", title="npm run lint", phase="prepare",
                                        state=StepState.RUNNING)])
    watches = [{"release_id": 7, "checks": 3, "ends_at": (NOW + H).isoformat(), "environment": "staging"}]
    view = home_view(HomeData("staging", running, [running, *releases[::-1]], watches,
                              compute(releases, first, NOW), {7: "https://sandbox.slack.com/x"}))
    View(**view).validate_json()
    text = json.dumps(view)
    assert "Current step: *npm run lint*" in text and "<@U0BOB>" in text
    assert "release/&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "Release #7: 3 checks so far" in text
    assert "*Change failure rate*: 50%" in text and "4h 00m median" in text
    assert "(2 of 3 restored)" in text
    assert "<https://sandbox.slack.com/x|thread>" in text


async def test_lead_time_is_the_first_commit_of_the_release_from_github_compare(
        tmp_path: Path) -> None:
    github = GitHubState()
    clock = [1_780_000_000.0]
    github.clock = lambda: clock[0]
    base = github.add_commit("main", "initial").sha
    for message in ("first of the release", "second", "third"):
        github.add_commit("main", message)
        clock[0] += 3600
    head = github.branches["main"][-1].sha
    async with serve(create_github_app(github)) as url:
        settings = make_settings(GITHUB_API_URL=url, GITHUB_TOKEN=github.token,
                                 GITHUB_REPOSITORY=github.repo)
        store = Store(tmp_path / "log.db")
        previous = store.create_release(Release(environment="staging", ref="r1", started_by="U1",
                                                git_sha=base, status=ReleaseStatus.SUCCEEDED))
        current = store.create_release(Release(environment="staging", ref="r2", started_by="U1",
                                               git_sha=head, status=ReleaseStatus.SUCCEEDED))
        assert previous.id == 1
        first = await LeadTimes(settings, store).record(current)
    assert first == datetime.fromtimestamp(1_780_000_000, tz=UTC)
    assert first_commits(store) == {2: first}


def test_the_manifest_enables_the_home_tab_and_its_event() -> None:
    manifest = yaml.safe_load((Path(__file__).resolve().parents[1] / "manifest.yml").read_text())
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    events = manifest["settings"]["event_subscriptions"]
    assert events["bot_events"] == ["app_home_opened"]
    assert events["request_url"] == manifest["settings"]["interactivity"]["request_url"]


async def send_event(slack: SlackHarness, event: dict[str, Any], event_id: str) -> int:
    body = json.dumps({"token": "legacy", "team_id": slack.state.team_id, "api_app_id": "A0RELEASEBOT",
                       "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
                       "event": event})
    headers = {**slack.signed_headers(body), "Content-Type": "application/json"}
    response = await slack.http.post("/slack/events", content=body, headers=headers)
    return response.status_code


async def test_app_home_opened_publishes_the_home_tab(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, _ = staging
    async with SlackHarness(tmp_path, **watch_settings(tmp_path, url)) as slack:
        slack.state.spec_path = str(SPEC)
        await released(slack)
        event = {"type": "app_home_opened", "user": "U0ALICE", "channel": "D0ALICE", "tab": "messages",
                 "event_ts": f"{time.time():.6f}"}
        assert await send_event(slack, event, "Ev0MESSAGES") == 200
        assert await send_event(slack, {**event, "tab": "home"}, "Ev0HOME") == 200
        calls = await slack.wait_for(lambda: slack.state.calls_to("views.publish"), what="publish")
        assert len(calls) == 1 and calls[0]["user_id"] == "U0ALICE"
        assert "views.publish" in [name for name, _ in slack.state.calls]
        view_id = slack.state.home_views["U0ALICE"]
        published = slack.state.views[view_id]
        assert published["type"] == "home" and len(published["blocks"]) <= 100
        View(type="home", blocks=published["blocks"]).validate_json()
        text = json.dumps(published["blocks"])
        assert "*Running now*" in text and "No release is running." in text
        assert "Release #1: 1 check so far" in text  # the watch of the release just finished
        assert "*Deployment frequency*: 1 in 30 days" in text
        assert "*#1* succeeded" in text and "|thread>" in text
