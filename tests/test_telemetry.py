"""The bot's own PostHog events, through the real posthog library into the PostHog emulator."""

from __future__ import annotations

import asyncio

from bot.runbook.model import Release, ReleaseStatus, StepRecord, StepResult, StepState
from bot.telemetry import BotTelemetry, Reporters
from sandbox.posthog import PostHogState, create_posthog_app
from sandbox.server import serve
from tests.helpers import make_settings


async def test_release_events_reach_posthog_without_details() -> None:
    state = PostHogState(project_api_key="phc_botkey0123456789abcdef")
    async with serve(create_posthog_app(state)) as url:
        settings = make_settings(BOT_POSTHOG_API_KEY=state.project_api_key, BOT_POSTHOG_HOST=url)
        telemetry = BotTelemetry.from_settings(settings)
        assert telemetry is not None
        release = Release(id=7, environment="staging", ref="main", started_by="U1")
        failed = StepRecord(name="health", title="Health", phase="validate", state=StepState.FAIL,
                            result=StepResult.fail("Supabase is error (secret detail)"))
        fanout = Reporters(telemetry)
        await fanout.release_started(release)
        await fanout.step_finished(release, failed)
        release.status = ReleaseStatus.FAILED
        await fanout.release_finished(release)
        await asyncio.to_thread(telemetry.shutdown)
    names = [e.event for e in state.events]
    assert names == ["release_started", "release_step_fail", "release_finished"]
    assert state.events[1].properties["step"] == "health"
    assert state.events[2].properties["status"] == "failed"
    assert all("secret detail" not in str(e.properties) for e in state.events)


def test_off_without_a_key() -> None:
    assert BotTelemetry.from_settings(make_settings()) is None
