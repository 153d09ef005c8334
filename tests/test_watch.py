"""The post-deploy watch against the sandbox: the real Bolt app, the Slack emulator, the sandbox
staging app and the PostHog emulator. Checks are driven by calling the persistent job's function
(`bot.watch.watch_check`), never by waiting on the clock; the schedule's interval is an hour."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.chat.blocks import ROLLBACK_ACTION
from bot.config import Settings
from bot.runbook.model import ReleaseStatus, utcnow
from bot.scheduler import PERSISTENT
from bot.watch import ENDED, WATCHING, Watcher, watch_check
from bot.watch_readings import Reading, evaluate
from sandbox.posthog import PostHogState, create_posthog_app
from sandbox.server import serve
from sandbox.staging_app import StagingState
from tests.helpers import make_settings
from tests.slack_e2e import SlackHarness, blocks_of

RUNBOOK = """
name: watch
phases:
  - name: deploy
    steps:
      - name: smoke
  - name: validate
    steps:
      - name: health
"""


@pytest.fixture
async def posthog_emulator() -> AsyncIterator[tuple[str, PostHogState]]:
    state = PostHogState()
    async with serve(create_posthog_app(state)) as url:
        yield url, state


def watch_settings(tmp_path: Path, staging_url: str, posthog: tuple[str, PostHogState] | None = None,
                   **extra: Any) -> dict[str, Any]:
    runbook = tmp_path / "runbook.yml"
    runbook.write_text(RUNBOOK)
    values: dict[str, Any] = {"STAGING_URL": staging_url, "RUNBOOK_PATH": str(runbook),
                              "WATCH_MINUTES": 30, "WATCH_INTERVAL_SECONDS": 3600}
    if posthog is not None:
        url, state = posthog
        values.update(POSTHOG_HOST=url, POSTHOG_PROJECT_ID=str(state.project_id),
                      POSTHOG_PERSONAL_API_KEY=state.personal_api_key)
    values.update(extra)
    return values


def watcher_of(slack: SlackHarness) -> Watcher:
    return next(w for w in slack.runtime.listeners if isinstance(w, Watcher))


def texts(calls: list[dict[str, Any]]) -> list[str]:
    return [str(c.get("text", "")) for c in calls]




async def released(slack: SlackHarness, number: int = 1, ref: str = "release/1.2.0") -> Any:
    await slack.command(f"start {ref}")
    release = await slack.finished(number)
    assert release.status == ReleaseStatus.SUCCEEDED, [s.result for s in release.steps]
    return release


def test_evaluate_compares_with_the_baseline() -> None:
    settings = make_settings(WATCH_FAILURE_RATIO=2.0, WATCH_MIN_FAILURES=5)
    baseline = Reading(health_ok=True, providers={"together": "degraded"},
                       services={"auth": "ACTIVE_HEALTHY"})
    same = Reading(health_ok=True, providers={"together": "degraded"},
                   services={"auth": "ACTIVE_HEALTHY"}, failures=2)
    assert not evaluate(baseline, same, 1.0, settings).unhealthy
    worse = Reading(health_ok=True, providers={"together": "degraded", "openai": "down"},
                    services={"auth": "UNHEALTHY"}, failures=4)
    verdict = evaluate(baseline, worse, 1.0, settings)
    assert verdict.reasons == ["AI provider openai is down (was ok)",
                               "Supabase auth is UNHEALTHY (was ACTIVE_HEALTHY)"]
    assert verdict.rate_regression is None  # 4 is below WATCH_MIN_FAILURES
    assert evaluate(baseline, Reading(failures=5), 1.0, settings).rate_regression
    assert evaluate(baseline, Reading(failures=6), 3.0, settings).rate_regression is None
    assert evaluate(baseline, Reading(failures=5), 0.0, settings).rate_regression  # none before
    assert evaluate(baseline, Reading(health_ok=False, health_summary="Supabase is error"),
                    None, settings).reasons == ["/api/health: Supabase is error"]


async def test_health_degraded_mid_watch_alerts_in_the_thread_with_roll_back_and_a_mention(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, state = staging
    async with SlackHarness(tmp_path, **watch_settings(tmp_path, url)) as slack:
        release = await released(slack)
        watcher = watcher_of(slack)
        row = watcher._row(1)
        assert row is not None and row["state"] == WATCHING and row["checks"] == 1
        assert json.loads(row["baseline"])["health_ok"] is True  # read before the deploy phase
        thread = texts(slack.thread(release.thread_ts))
        assert "Post-deploy watch, check 1" in thread[-1] and "health ok" in thread[-1]
        assert watcher.scheduler is not None
        assert watcher.scheduler.get_job("watch-1", jobstore=PERSISTENT) is not None

        state.supabase_ok = False
        await watch_check(watcher.key, 1)  # once: noted, no alert yet
        assert not [c for c in slack.state.calls_to("chat.postMessage")
                  if c.get("reply_broadcast") and "regressed" in str(c.get("text"))]
        assert "Not ok once" in slack.state.calls_to("chat.update")[-1]["text"]
        await watch_check(watcher.key, 1)  # twice in a row: a regression

        alerts = [c for c in slack.state.calls_to("chat.postMessage")
                  if c.get("reply_broadcast") and "regressed" in str(c.get("text"))]
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert["thread_ts"] == release.thread_ts and "<@U0ALICE>" in alert["text"]
        assert "Supabase is error" in alert["text"]
        buttons = [e for b in blocks_of(alert) if b["type"] == "actions" for e in b["elements"]]
        assert [(b["action_id"], b["value"]) for b in buttons] == [(ROLLBACK_ACTION, "1")]
        assert watcher._row(1)["outcome"] == "regression"
        assert watcher.scheduler.get_job("watch-1", jobstore=PERSISTENT) is None
        assert await watcher.check(1) == ENDED  # a stray run after the end does nothing


async def test_a_quiet_watch_ends_with_one_line(tmp_path: Path,
                                                staging: tuple[str, StagingState]) -> None:
    url, _ = staging
    async with SlackHarness(tmp_path, **watch_settings(tmp_path, url)) as slack:
        release = await released(slack)
        watcher = watcher_of(slack)
        assert await watcher.check(1) == WATCHING
        watcher.clock = lambda: utcnow() + timedelta(minutes=31)
        assert await watch_check(watcher.key, 1) is None
        assert watcher._row(1)["outcome"] == "quiet"
        status_ts = watcher._row(1)["message_ts"]
        final = [c for c in slack.state.calls_to("chat.update") if c["ts"] == status_ts][-1]
        assert final["text"] == ":white_check_mark: 30 min watched: no regression"
        watch_lines = [t for t in texts(slack.thread(release.thread_ts)) if "watch" in t]
        assert len(watch_lines) == 1  # one message, kept current
        assert watcher.scheduler is not None
        assert watcher.scheduler.get_job("watch-1", jobstore=PERSISTENT) is None


async def test_failure_rate_above_the_hour_before_is_a_regression(
        tmp_path: Path, staging: tuple[str, StagingState],
        posthog_emulator: tuple[str, PostHogState]) -> None:
    url, _ = staging
    _, events = posthog_emulator
    now = utcnow()
    # 11 in the hour before, none near the edge of the watch's 5-minute window (a slow machine
    # moves that edge by the time the release took): under 1 per 5 minutes
    for minutes in range(7, 60, 5):
        events.add_event("i_request_failed", now - timedelta(minutes=minutes), environment="staging")
    events.add_event("i_request_failed", now - timedelta(minutes=10), environment="production")
    async with SlackHarness(tmp_path, **watch_settings(tmp_path, url, posthog_emulator)) as slack:
        release = await released(slack)
        watcher = watcher_of(slack)
        baseline = json.loads(watcher._row(1)["baseline"])
        assert baseline["failure_rate"] == pytest.approx(11 / 12)
        for _ in range(6):
            events.add_event("i_request_failed", environment="staging")
        await watch_check(watcher.key, 1)
        alerts = [c for c in slack.state.calls_to("chat.postMessage")
                  if c.get("reply_broadcast") and "regressed" in str(c.get("text"))]
        assert len(alerts) == 1 and alerts[0]["thread_ts"] == release.thread_ts
        assert "6 `i_request_failed` in the last 5 min" in alerts[0]["text"]
        assert any("i_request_failed" in q and "toDateTime" in q for q in events.queries)


async def test_a_rollback_or_a_newer_release_ends_the_watch(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, _ = staging
    async with SlackHarness(tmp_path, **watch_settings(tmp_path, url)) as slack:
        await released(slack, 1)
        watcher = watcher_of(slack)
        await released(slack, 2, "release/1.3.0")
        assert watcher._row(1)["state"] == ENDED and watcher._row(1)["outcome"] == "stopped"
        assert watcher._row(2)["state"] == WATCHING
        second = slack.runtime.store.get_release(2)
        second.status = ReleaseStatus.ROLLED_BACK
        slack.runtime.store.save_release(second)
        assert await watcher.check(2) == ENDED
        assert "rolled back" in slack.state.calls_to("chat.update")[-1]["text"]
        assert [w["release_id"] for w in watcher.open_watches()] == []


async def restart_continues(tmp_path: Path, staging_url: str, **extra: Any) -> None:
    async with SlackHarness(tmp_path, **watch_settings(tmp_path, staging_url, **extra)) as slack:
        await released(slack)
        await slack.stop_bot()
        await slack.start_bot(**slack.overrides)  # a new process on the same release log
        watcher = watcher_of(slack)
        assert watcher.scheduler is not None
        job = watcher.scheduler.get_job("watch-1", jobstore=PERSISTENT)
        assert job is not None and job.args == (watcher.key, 1)
        assert job.func is watch_check
        await job.func(*job.args)  # what the scheduler runs at the next interval
        assert watcher._row(1)["checks"] == 2


async def test_a_restart_mid_watch_continues_it_from_sqlite(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    await restart_continues(tmp_path, staging[0])


async def test_a_restart_mid_watch_continues_it_from_redis(
        tmp_path: Path, staging: tuple[str, StagingState], redis_server: Any) -> None:
    await restart_continues(tmp_path, staging[0], REDIS_URL=redis_server.url,
                            ENVIRONMENT=f"staging-{uuid.uuid4().hex[:8]}")


def test_watch_minutes_zero_turns_it_off(tmp_path: Path) -> None:
    settings: Settings = make_settings(WATCH_MINUTES=0, DATABASE_PATH=str(tmp_path / "db.sqlite"))
    from bot.app import build_runtime
    from bot.chat.console import ConsoleChat

    runtime = build_runtime(settings, ConsoleChat())
    assert not watcher_of_runtime(runtime).enabled


def watcher_of_runtime(runtime: Any) -> Watcher:
    return next(w for w in runtime.listeners if isinstance(w, Watcher))


class Recorder:
    """A Chat that keeps what it is sent."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, str | None]] = []

    async def post(self, channel: str, message: Any, thread_ts: str | None = None) -> str:
        self.posts.append((channel, message.text, thread_ts))
        return f"1.{len(self.posts)}"

    async def update(self, channel: str, ts: str, message: Any) -> None:
        self.posts.append((channel, message.text, ts))

    async def ephemeral(self, channel: str, user: str, message: Any) -> None:
        return None


async def test_with_nothing_to_watch_the_thread_is_told_once_and_nothing_is_scheduled() -> None:
    from bot.redact import Redactor
    from bot.runbook.model import Release
    from bot.steps.registry import STEPS
    from bot.store import Store

    store = Store(":memory:")
    chat = Recorder()
    watcher = Watcher(make_settings(DATABASE_PATH=":memory:"), store, chat, Redactor(), STEPS)
    release = store.create_release(Release(environment="staging", ref="main", started_by="U0ALICE",
                                           channel="C1", thread_ts="1.0",
                                           status=ReleaseStatus.SUCCEEDED))
    await watcher.release_finished(release)
    assert len(chat.posts) == 1 and "nothing to watch (set STAGING_URL" in chat.posts[0][1]
    assert watcher._row(1)["outcome"] == "off" and watcher.open_watches() == []


def test_open_watches_are_found_through_an_index() -> None:
    """A long log holds a watch row per succeeded release: starting a release reads the open
    ones through (state, release_id), not every row."""
    from bot.redact import Redactor
    from bot.steps.registry import STEPS
    from bot.store import Store

    store = Store(":memory:")
    Watcher(make_settings(DATABASE_PATH=":memory:"), store, Recorder(), Redactor(), STEPS)
    plan = " ".join(r["detail"] for r in store.db.query(
        "explain query plan select * from watches where state = ? order by release_id", [WATCHING]))
    assert "idx_watches_state_release_id" in plan and "TEMP B-TREE" not in plan
