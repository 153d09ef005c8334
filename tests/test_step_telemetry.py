"""telemetry_fresh and telemetry_staging against the PostHog emulator, faults included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from bot.config import Settings
from bot.providers import posthog
from bot.runbook.model import Outcome, Release, StepResult
from sandbox.posthog import PostHogState, create_posthog_app
from sandbox.server import CALLS_KEY, FAULTS_KEY, Faults, serve
from tests.helpers import StepHarness, make_settings

EVENTS = ["i_chat_completed", "i_request_failed", "i_provider_health_changed"]


@dataclass
class PostHog:
    state: PostHogState
    app: web.Application
    url: str

    @property
    def faults(self) -> Faults:
        return self.app[FAULTS_KEY]

    def settings(self, **values: Any) -> Settings:
        base: dict[str, Any] = {
            "POSTHOG_HOST": self.url,
            "POSTHOG_PROJECT_ID": str(self.state.project_id),
            "POSTHOG_PERSONAL_API_KEY": self.state.personal_api_key,
            "HTTP_TIMEOUT_SECONDS": 2.0,
        }
        base.update(values)
        return make_settings(**base)


@pytest.fixture
async def ph() -> AsyncIterator[PostHog]:
    state = PostHogState()
    app = create_posthog_app(state)
    async with serve(app) as url:
        yield PostHog(state, app, url)


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def assert_no_secret(result: StepResult, secret: str) -> None:
    assert secret not in result.model_dump_json()


# --- telemetry_fresh --------------------------------------------------------------------------


async def test_fresh_events_pass_with_table_and_data(ph: PostHog) -> None:
    for i, name in enumerate(EVENTS):
        ph.state.add_event(name, ago(minutes=5 + i))
        ph.state.add_event(name, ago(hours=3))
    ph.state.add_event("unrelated", ago(minutes=1))
    result = await StepHarness(ph.settings()).run("telemetry_fresh")
    assert result.outcome == Outcome.OK, result.summary
    assert result.summary == "All 3 telemetry events seen within 60 min."
    assert set(result.data["events"]) == set(EVENTS)
    newest = datetime.fromisoformat(result.data["events"]["i_chat_completed"])
    assert abs((newest - ago(minutes=5)).total_seconds()) < 5
    assert "event" in result.details and "verdict" in result.details
    assert result.details.count("fresh") == 3
    query = ph.state.queries[-1]
    assert "GROUP BY event" in query and "'i_request_failed'" in query
    assert_no_secret(result, ph.state.personal_api_key)
    body = json.loads(ph.app[CALLS_KEY][-1]["body"])
    assert body["refresh"] == "force_blocking" and body["query"]["kind"] == "HogQLQuery"


async def test_stale_event_fails_and_is_named(ph: PostHog) -> None:
    ph.state.add_event("i_chat_completed", ago(minutes=2))
    ph.state.add_event("i_request_failed", ago(minutes=2))
    ph.state.add_event("i_provider_health_changed", ago(hours=5))
    result = await StepHarness(ph.settings(TELEMETRY_MAX_AGE_MINUTES=60)).run("telemetry_fresh")
    assert result.outcome == Outcome.FAIL
    assert result.summary == "Telemetry is not fresh — older than 60 min: i_provider_health_changed."
    assert "stale" in result.details and "5.0h" in result.details


async def test_missing_event_fails_with_none_in_data(ph: PostHog) -> None:
    ph.state.add_event("i_chat_completed", ago(minutes=2))
    ph.state.add_event("i_request_failed", ago(minutes=2))
    result = await StepHarness(ph.settings()).run("telemetry_fresh")
    assert result.outcome == Outcome.FAIL
    assert "not seen in 30 days: i_provider_health_changed" in result.summary
    assert result.data["events"]["i_provider_health_changed"] is None
    assert "missing" in result.details


async def test_invalid_event_name_is_refused_before_querying(ph: PostHog) -> None:
    settings = ph.settings(TELEMETRY_EVENTS="ok_event,bad' OR 1=1")
    result = await StepHarness(settings).run("telemetry_fresh")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith("TELEMETRY_EVENTS is not usable: event name")
    assert ph.state.queries == []


async def test_fresh_401_names_the_key_problem(ph: PostHog) -> None:
    settings = ph.settings(POSTHOG_PERSONAL_API_KEY="phx_wrong_key_value")
    result = await StepHarness(settings).run("telemetry_fresh")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Could not read event freshness from PostHog: PostHog: 401: the personal API key was "
        "rejected or lacks the query:read permission."
    )
    assert_no_secret(result, "phx_wrong_key_value")


async def test_fresh_403_wrong_project(ph: PostHog) -> None:
    result = await StepHarness(ph.settings(POSTHOG_PROJECT_ID="999")).run("telemetry_fresh")
    assert result.outcome == Outcome.FAIL
    assert "403: the personal API key was rejected or lacks the query:read" in result.summary


async def test_fresh_429_waits_for_retry_after_then_succeeds(ph: PostHog) -> None:
    for name in EVENTS:
        ph.state.add_event(name, ago(minutes=1))
    ph.faults.add(r"POST /api/projects/\d+/query", 429, retry_after=1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await StepHarness(ph.settings()).run("telemetry_fresh")
    assert result.outcome == Outcome.OK, result.summary
    assert loop.time() - start >= 0.9


async def test_fresh_500_is_retried_then_succeeds(ph: PostHog) -> None:
    for name in EVENTS:
        ph.state.add_event(name, ago(minutes=1))
    ph.faults.add(r"POST /api/projects/\d+/query", 500, times=2)
    result = await StepHarness(ph.settings()).run("telemetry_fresh")
    assert result.outcome == Outcome.OK, result.summary


async def test_fresh_persistent_500_is_a_clear_failure(ph: PostHog) -> None:
    ph.faults.add(r"POST /api/projects/\d+/query", 500, times=10)
    result = await StepHarness(ph.settings()).run("telemetry_fresh")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Could not read event freshness from PostHog: PostHog: server error 500 "
        "(gave up after 3 attempts)."
    )


async def test_fresh_timeout_is_a_clear_failure(ph: PostHog) -> None:
    ph.faults.add(r"POST /api/projects/\d+/query", 0, delay=1.0, times=3)
    result = await StepHarness(ph.settings(HTTP_TIMEOUT_SECONDS=0.2)).run("telemetry_fresh")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith("Could not read event freshness from PostHog: PostHog: timed out")
    assert "after 0.2s" in result.summary and "gave up after 3 attempts" in result.summary


async def test_fresh_malformed_json_is_a_clear_failure(ph: PostHog) -> None:
    ph.faults.add(r"POST /api/projects/\d+/query", 200, body='{"results": [')
    result = await StepHarness(ph.settings()).run("telemetry_fresh")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith(
        "Could not read event freshness from PostHog: PostHog: answered 200 with malformed JSON"
    )


async def test_fresh_answer_without_results_is_a_clear_failure(ph: PostHog) -> None:
    ph.faults.add(r"POST /api/projects/\d+/query", 200, body='{"detail": "nope"}')
    result = await StepHarness(ph.settings()).run("telemetry_fresh")
    assert result.outcome == Outcome.FAIL
    assert result.summary.endswith("answered the query without `columns` and `results`.")


# --- telemetry_staging ------------------------------------------------------------------------


def release_deployed(at: datetime) -> Release:
    release = Release(id=7, environment="staging", ref="main", started_by="U1")
    release.started_at = at - timedelta(minutes=10)
    release.data["steps"] = {"deploy": {"ready_at": at.isoformat()}}
    return release


async def test_staging_events_arriving_while_polling_pass(ph: PostHog) -> None:
    deployed = ago(minutes=1)
    # Before the deploy, and not from staging: neither counts.
    ph.state.add_event("i_chat_completed", ago(minutes=3), distinct_id="staging-old")
    ph.state.add_event("i_chat_completed", ago(seconds=10), distinct_id="prod-user")
    harness = StepHarness(
        ph.settings(STAGING_TELEMETRY_DISTINCT_ID_PREFIX="staging-"), release_deployed(deployed)
    )

    async def send_later() -> None:
        for _ in range(400):  # the step has polled twice without finding anything
            if len(ph.state.queries) >= 2:
                break
            await asyncio.sleep(0.05)
        ph.state.add_event("i_chat_completed", distinct_id="staging-u42")

    sender = asyncio.create_task(send_later())
    result = await harness.run("telemetry_staging", wait_seconds=20, poll_seconds=0.2)
    await sender
    assert result.outcome == Outcome.OK, result.summary
    assert result.summary.startswith("1 staging i_chat_completed event(s) since ")
    assert result.data["count"] == 1 and result.data["newest"]
    assert datetime.fromisoformat(result.data["since"]) == deployed
    assert len(ph.state.queries) >= 2
    assert "distinct_id LIKE 'staging-%'" in ph.state.queries[-1]
    assert harness.progress and "Waiting for staging i_chat_completed in PostHog" in harness.progress[0]
    assert " of 20s" in harness.progress[0]


async def test_staging_property_filter_is_used_without_prefix(ph: PostHog) -> None:
    ph.state.add_event("i_chat_completed", ago(seconds=5), distinct_id="u1", environment="production")
    ph.state.add_event("i_chat_completed", ago(seconds=4), distinct_id="u2", environment="staging")
    ph.state.add_event("i_chat_completed", ago(seconds=3), distinct_id="u3", environment="staging")
    harness = StepHarness(ph.settings(), release_deployed(ago(minutes=1)))
    result = await harness.run("telemetry_staging", wait_seconds=5, poll_seconds=0.2)
    assert result.outcome == Outcome.OK, result.summary
    assert result.data["count"] == 2
    assert "properties.environment = 'staging'" in ph.state.queries[-1]
    assert harness.progress == []


async def test_staging_uses_release_start_without_deploy_data(ph: PostHog) -> None:
    release = Release(id=8, environment="staging", ref="main", started_by="U1")
    release.started_at = ago(minutes=2)
    ph.state.add_event("i_chat_completed", ago(minutes=5), environment="staging")
    result = await StepHarness(ph.settings(), release).run(
        "telemetry_staging", wait_seconds=0.6, poll_seconds=0.2
    )
    assert result.outcome == Outcome.FAIL
    assert datetime.fromisoformat(result.data["since"]) == release.started_at


async def test_staging_absent_fails_after_the_wait(ph: PostHog) -> None:
    deployed = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC) - timedelta(days=3650)
    ph.state.add_event("i_chat_completed", deployed - timedelta(minutes=1), distinct_id="staging-1")
    harness = StepHarness(
        ph.settings(STAGING_TELEMETRY_DISTINCT_ID_PREFIX="staging-"), release_deployed(deployed)
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await harness.run("telemetry_staging", wait_seconds=1, poll_seconds=0.25)
    assert result.outcome == Outcome.FAIL
    assert loop.time() - start >= 1  # it gives up only once the whole wait has passed
    when = deployed.strftime("%Y-%m-%d %H:%M:%SZ")
    assert result.summary == f"No staging i_chat_completed events in 1 s since {when}."
    assert result.data["count"] == 0 and result.data["newest"] is None
    # It asked again while waiting (how often depends on the machine's speed, so not counted),
    # and its last answer came after the wait was over.
    assert len(ph.state.queries) >= 2
    assert harness.progress


async def test_staging_property_name_is_validated(ph: PostHog) -> None:
    settings = ph.settings(STAGING_TELEMETRY_PROPERTY="env name=staging")
    result = await StepHarness(settings).run("telemetry_staging", wait_seconds=1)
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith("The staging telemetry filter is not usable: property name")
    assert ph.state.queries == []


async def test_staging_401_is_a_clear_failure(ph: PostHog) -> None:
    result = await StepHarness(ph.settings(POSTHOG_PERSONAL_API_KEY="phx_bad")).run(
        "telemetry_staging", wait_seconds=1
    )
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Could not count staging events in PostHog: PostHog: 401: the personal API key was "
        "rejected or lacks the query:read permission."
    )


async def test_staging_429_then_success(ph: PostHog) -> None:
    ph.state.add_event("i_chat_completed", ago(seconds=1), environment="staging")
    ph.faults.add(r"/query", 429, retry_after=1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await StepHarness(ph.settings(), release_deployed(ago(minutes=1))).run(
        "telemetry_staging", wait_seconds=5
    )
    assert result.outcome == Outcome.OK, result.summary
    assert loop.time() - start >= 0.9
    assert [c["path"] for c in ph.app[CALLS_KEY]] == ["/api/projects/1/query/"] * 2


async def test_staging_500_retried_then_success_and_persistent_500_fails(ph: PostHog) -> None:
    ph.state.add_event("i_chat_completed", ago(seconds=1), environment="staging")
    ph.faults.add(r"/query", 500, times=1)
    harness = StepHarness(ph.settings(), release_deployed(ago(minutes=1)))
    result = await harness.run("telemetry_staging", wait_seconds=5)
    assert result.outcome == Outcome.OK, result.summary
    ph.faults.add(r"/query", 502, times=10)
    result = await harness.run("telemetry_staging", wait_seconds=5)
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Could not count staging events in PostHog: PostHog: server error 502 "
        "(gave up after 3 attempts)."
    )


async def test_staging_timeout_and_malformed_json_fail_clearly(ph: PostHog) -> None:
    harness = StepHarness(ph.settings(HTTP_TIMEOUT_SECONDS=0.2), release_deployed(ago(minutes=1)))
    ph.faults.add(r"/query", 0, delay=1.0, times=3)
    result = await harness.run("telemetry_staging", wait_seconds=5)
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith("Could not count staging events in PostHog: PostHog: timed out")
    ph.faults.clear()
    ph.faults.add(r"/query", 200, body="<html>gateway</html>")
    result = await harness.run("telemetry_staging", wait_seconds=5)
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith(
        "Could not count staging events in PostHog: PostHog: answered 200 with malformed JSON"
    )


# --- provider helpers -------------------------------------------------------------------------


def test_quote_and_like_escape_hogql_literals() -> None:
    assert posthog.quote("it's \\ fine") == "'it\\'s \\\\ fine'"
    assert posthog.like_prefix("stg_1%") == "'stg\\\\_1\\\\%%'"
    with pytest.raises(ValueError, match="event name"):
        posthog.check_event_name("a b")
    assert posthog.check_event_name("$pageview") == "$pageview"


def test_parse_time_treats_epoch_zero_as_none() -> None:
    assert posthog.parse_time("1970-01-01T00:00:00Z") is None
    assert posthog.parse_time("2024-05-01 10:00:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)


async def test_prefix_wildcards_are_literal(ph: PostHog) -> None:
    ph.state.add_event("i_chat_completed", ago(seconds=3), distinct_id="stgX-not-staging")
    harness = StepHarness(
        ph.settings(STAGING_TELEMETRY_DISTINCT_ID_PREFIX="stg_"), release_deployed(ago(minutes=1))
    )
    result = await harness.run("telemetry_staging", wait_seconds=0.5, poll_seconds=0.25)
    assert result.outcome == Outcome.FAIL, "`_` in the prefix must not match any character"
    ph.state.add_event("i_chat_completed", ago(seconds=2), distinct_id="stg_42")
    result = await harness.run("telemetry_staging", wait_seconds=0.5, poll_seconds=0.25)
    assert result.outcome == Outcome.OK, result.summary
    assert result.data["count"] == 1
    assert "distinct_id LIKE 'stg\\\\_%'" in ph.state.queries[-1]
