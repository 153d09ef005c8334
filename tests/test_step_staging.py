"""smoke, health and coach_stream against the sandbox staging app, with their failure answers."""

from __future__ import annotations

from typing import Any

from bot.runbook.model import Outcome
from bot.sandbox.server import FAULTS_KEY, serve
from bot.sandbox.staging_app import StagingState, create_staging_app
from tests.helpers import StepHarness, make_settings


def settings_for(url: str, state: StagingState, **extra: Any) -> Any:
    return make_settings(STAGING_URL=url, STAGING_TEST_USER_EMAIL=state.test_user_email,
                         STAGING_TEST_USER_PASSWORD=state.test_user_password,
                         HTTP_TIMEOUT_SECONDS=2, **extra)


async def run(step: str, state: StagingState, fault: dict[str, Any] | None = None,
              **extra: Any) -> Any:
    app = create_staging_app(state)
    if fault:
        app[FAULTS_KEY].add(**fault)
    async with serve(app) as url:
        return await StepHarness(settings_for(url, state, **extra)).run(step)


# --- smoke ------------------------------------------------------------------------------------
async def test_smoke_passes_on_the_rendered_dashboard() -> None:
    result = await run("smoke", StagingState(), SMOKE_MARKER="Pocket Philosopher")
    assert result.outcome == Outcome.OK, result.summary
    assert "rendered with 'Pocket Philosopher'" in result.summary
    assert "Smoke" in result.fields["Manual Tests"]


async def test_smoke_fails_on_500_empty_page_or_missing_marker() -> None:
    state = StagingState(dashboard_status=500)
    assert "answered 500" in (await run("smoke", state)).summary
    empty = await run("smoke", StagingState(dashboard_empty=True))
    assert empty.outcome == Outcome.FAIL and "did not return an HTML page" in empty.summary
    marker = await run("smoke", StagingState(), SMOKE_MARKER="Welcome back, Marcus")
    assert marker.outcome == Outcome.FAIL and "without the marker" in marker.summary


async def test_smoke_timeout_is_a_clear_failure() -> None:
    result = await run("smoke", StagingState(), fault={"pattern": "GET /$", "status": 0, "delay": 3,
                                                       "times": 5})
    assert result.outcome == Outcome.FAIL and "timed out" in result.summary


# --- health -----------------------------------------------------------------------------------
async def test_health_table_and_warning_for_unconfigured_providers() -> None:
    result = await run("health", StagingState())
    assert result.outcome == Outcome.WARN
    assert "together is missing" in result.summary
    assert "supabase" in result.details and "ai:openai" in result.details


async def test_health_ok_when_every_provider_is_configured() -> None:
    state = StagingState(providers={"openai": True, "anthropic": True, "together": True, "ollama": True})
    result = await run("health", state)
    assert result.outcome == Outcome.OK, result.summary


async def test_health_503_when_supabase_is_down_fails_and_names_it() -> None:
    result = await run("health", StagingState(supabase_ok=False))
    assert result.outcome == Outcome.FAIL
    assert "HTTP 503" in result.summary and "Supabase is error" in result.summary


async def test_health_malformed_json_and_500_are_clear_failures() -> None:
    malformed = await run("health", StagingState(),
                          fault={"pattern": "/api/health", "status": 200, "body": "{not json"})
    assert malformed.outcome == Outcome.FAIL and "malformed JSON" in malformed.summary
    broken = await run("health", StagingState(), fault={"pattern": "/api/health", "status": 500,
                                                        "times": 3})
    assert broken.outcome == Outcome.FAIL and "server error 500" in broken.summary


async def test_health_recovers_from_one_500() -> None:
    state = StagingState(providers={"openai": True, "anthropic": True, "together": True, "ollama": True})
    result = await run("health", state, fault={"pattern": "/api/health", "status": 500})
    assert result.outcome == Outcome.OK


# --- coach stream -----------------------------------------------------------------------------
async def test_coach_streams_incrementally_with_citations() -> None:
    result = await run("coach_stream", StagingState(chunk_count=6, chunk_delay=0.02))
    assert result.outcome == Outcome.OK, result.summary
    assert result.data["chunks"] == 6 and result.data["citations"] >= 1
    assert "first after" in result.summary and "Meditations" in result.details


async def test_coach_wrong_credentials_are_named() -> None:
    state = StagingState()
    app = create_staging_app(state)
    async with serve(app) as url:
        settings = make_settings(STAGING_URL=url, STAGING_TEST_USER_EMAIL=state.test_user_email,
                                 STAGING_TEST_USER_PASSWORD="wrong-password-123")
        result = await StepHarness(settings).run("coach_stream")
    assert result.outcome == Outcome.FAIL
    assert "was refused (400: Invalid login credentials)" in result.summary
    assert "wrong-password-123" not in result.summary


async def test_coach_sse_error_event_fails() -> None:
    state = StagingState(providers={"openai": False, "anthropic": False, "together": False,
                                    "ollama": False})
    result = await run("coach_stream", state)
    assert result.outcome == Outcome.FAIL and "sent an error" in result.summary


async def test_coach_missing_citations_fails() -> None:
    result = await run("coach_stream", StagingState(citations=[]))
    assert result.outcome == Outcome.FAIL and "no citations" in result.summary


async def test_coach_stream_error_midway_fails() -> None:
    result = await run("coach_stream", StagingState(fail_after_chunks=2))
    assert result.outcome == Outcome.FAIL and "sent an error" in result.summary


async def test_coach_stalled_stream_times_out_clearly() -> None:
    result = await run("coach_stream", StagingState(first_chunk_delay=4))
    assert result.outcome == Outcome.FAIL and "stalled" in result.summary


async def test_coach_without_session_gets_401_reported() -> None:
    # A sign-in that sets no cookie leaves /api/marcus unauthenticated.
    result = await run("coach_stream", StagingState(),
                       fault={"pattern": "POST /api/auth", "status": 200, "body": '{"success": true}'})
    assert result.outcome == Outcome.FAIL and "set no session cookie" in result.summary


async def test_coach_answer_buffered_in_one_piece_is_not_streaming() -> None:
    # Every chunk in one write (a buffering proxy): it parses into chunks, but nothing streamed.
    result = await run("coach_stream", StagingState(chunk_count=4, buffered_stream=True))
    assert result.outcome == Outcome.FAIL and "arrived in one piece" in result.summary
