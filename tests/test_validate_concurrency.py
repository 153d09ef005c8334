"""The default runbook's validate phase runs its real checks at the same time.

Each check first waits at a barrier until every check of the phase has started, then does its
real work against the sandbox. Run one after another, the first would wait forever (the barrier
times out and the release fails), so this passes only when the checks really run together.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from bot.chat.blocks import Message
from bot.chat.reporter import ChatReporter
from bot.locks import SqliteLock
from bot.redact import Redactor
from bot.runbook.engine import Engine
from bot.runbook.loader import DEFAULT_RUNBOOK, parse_runbook
from bot.runbook.model import ReleaseStatus, StepResult, StepState
from bot.runbook.step import StepContext, StepDef
from bot.steps.registry import STEPS
from bot.store import Store
from sandbox.posthog import PostHogState, create_posthog_app
from sandbox.server import serve
from sandbox.services import RedisServer
from sandbox.staging_app import StagingState
from tests.helpers import make_settings

CHECKS = ("smoke", "coach_stream", "health", "redis", "telemetry_staging")


class Quiet:
    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        return "1.0"

    async def update(self, channel: str, ts: str, message: Message) -> None:
        return None

    async def ephemeral(self, channel: str, user: str, message: Message) -> None:
        return None


async def test_validate_checks_run_at_the_same_time(
        staging: tuple[str, StagingState], redis_server: RedisServer) -> None:
    url, state = staging
    state.providers = dict.fromkeys(state.providers, True)
    posthog = PostHogState()
    # The staging app reports each completed coach answer, as the real app does.
    state.on_chat_completed = lambda info: posthog.add_event(
        "i_chat_completed", datetime.now(UTC), distinct_id="staging-qa", environment="staging")
    registry = dict(STEPS)
    default = parse_runbook(DEFAULT_RUNBOOK.read_text(), registry)
    validate = next(p for p in default.phases if p.name == "validate")
    assert validate.concurrent and set(CHECKS) <= {s.name for s in validate.steps}
    barrier = asyncio.Barrier(len(CHECKS))
    started: list[str] = []

    def gated(sdef: StepDef) -> StepDef:
        async def run(ctx: StepContext) -> StepResult:
            started.append(sdef.name)
            async with asyncio.timeout(10):
                await barrier.wait()  # every check has started before any does its work
            return await sdef.run(ctx)
        return replace(sdef, run=run)

    for name in CHECKS:
        registry[name] = gated(registry[name])
    phase = validate.model_copy(update={"steps": [s for s in validate.steps if s.name in CHECKS]})
    runbook = default.model_copy(update={"phases": [phase]})
    async with serve(create_posthog_app(posthog)) as posthog_url:
        settings = make_settings(
            STAGING_URL=url, STAGING_TEST_USER_EMAIL=state.test_user_email,
            STAGING_TEST_USER_PASSWORD=state.test_user_password,
            STAGING_REDIS_URL=redis_server.url, POSTHOG_HOST=posthog_url,
            POSTHOG_PROJECT_ID=str(posthog.project_id),
            POSTHOG_PERSONAL_API_KEY=posthog.personal_api_key, STAGING_TELEMETRY_WAIT_SECONDS=5)
        store = Store(":memory:")
        engine = Engine(settings=settings, store=store, runbook=runbook, registry=registry,
                        reporter=ChatReporter(Quiet(), Redactor(), default_channel="C1"),
                        lock=SqliteLock(store))
        release = await engine.start(ref="main", user="U1", channel="C1")
        done = await engine.wait(release.id or 0)
    assert sorted(started) == sorted(CHECKS)
    assert done.status == ReleaseStatus.SUCCEEDED, [(s.name, s.result) for s in done.steps]
    # Without a deployment or a version source, smoke cannot prove which build serves: it warns.
    smoke = done.step("smoke")
    assert smoke is not None and smoke.state == StepState.WARN
    assert "could not verify which build is serving" in smoke.result.summary
    assert all(s.state == StepState.OK for s in done.steps if s.name != "smoke")
