"""smoke, health and coach_stream against the sandbox staging app, with their failure answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from bot.runbook.model import Outcome, Release, ReleaseStatus
from sandbox.server import CALLS_KEY, FAULTS_KEY, serve
from sandbox.staging_app import StagingState, create_staging_app
from sandbox.vercel import Deployment, VercelState, create_vercel_app
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
async def test_smoke_renders_but_says_it_could_not_verify_the_build_without_a_source() -> None:
    result = await run("smoke", StagingState(commit="ab" * 20), SMOKE_MARKER="Pocket Philosopher")
    assert result.outcome == Outcome.WARN, result.summary
    assert "rendered with 'Pocket Philosopher'" in result.summary
    assert "could not verify which build is serving" in result.summary
    assert "VERCEL_TOKEN" in result.summary and "SMOKE_VERSION_PATH" in result.summary
    assert "Smoke" in result.fields["Automated Checks"]


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
    assert result.data["reads"] > 1  # separate writes, 20 ms apart, came in separate reads
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
    # Judged by the reads that carried the chunks, so a busy machine pausing between parsed chunks
    # cannot make it look streamed.
    result = await run("coach_stream", StagingState(chunk_count=4, buffered_stream=True))
    assert result.outcome == Outcome.FAIL and "arrived in one piece" in result.summary
    assert "4 chunks in 1 read within" in result.summary
    assert result.data["chunks"] == 4 and result.data["reads"] == 1


# --- smoke: which build is serving -------------------------------------------------------------
VERCEL_TOKEN = "vercel-test-token"
DOMAIN = "staging.pocket.test"
RELEASE_SHA, OLD_SHA = "b2" * 20, "a1" * 20


@dataclass
class Served:
    """The staging app and the Vercel emulator; `new` is this release's deployment, `old` the
    one before it."""

    staging: StagingState
    staging_url: str
    vercel: VercelState
    vercel_app: web.Application
    vercel_url: str
    old: Deployment
    new: Deployment

    def settings(self, vercel: bool = True, **extra: Any) -> Any:
        values: dict[str, Any] = {"STAGING_URL": self.staging_url, "HTTP_TIMEOUT_SECONDS": 2}
        if vercel:
            values.update(VERCEL_API_URL=self.vercel_url, VERCEL_TOKEN=VERCEL_TOKEN,
                          VERCEL_PROJECT_ID="prj_pocket", VERCEL_TEAM_ID="team_1",
                          STAGING_DOMAIN=DOMAIN)
        values.update(extra)
        return make_settings(**values)

    def release(self, status: ReleaseStatus = ReleaseStatus.RUNNING) -> Release:
        deploy = {"deployment_id": self.new.id, "url": f"https://{self.new.url}", "sha": RELEASE_SHA}
        return Release(id=7, environment="staging", ref="release/2", started_by="U1",
                       git_sha=RELEASE_SHA, status=status,
                       data={"steps": {"merge": {"sha": RELEASE_SHA}, "deploy": deploy}})

    def serve_build(self, dep: Deployment) -> None:
        """Point the staging domain at `dep`; the app then reports that deployment's commit."""
        self.vercel.assign_alias(DOMAIN, dep)

    async def smoke(self, settings: Any, release: Release | None = None, **options: Any) -> Any:
        return await StepHarness(settings, release or self.release()).run("smoke", **options)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    vercel = VercelState(token=VERCEL_TOKEN, team_id="team_1")
    project = vercel.add_project("pocket", project_id="prj_pocket")
    old = vercel.finish(vercel.create_deployment(project, sha=OLD_SHA, ref="main"))
    new = vercel.finish(vercel.create_deployment(project, sha=RELEASE_SHA, ref="main"))
    state = StagingState(commit_source=lambda: vercel.serving_sha(DOMAIN))
    vapp = create_vercel_app(vercel)
    async with serve(vapp) as vurl, serve(create_staging_app(state)) as surl:
        found = Served(state, surl, vercel, vapp, vurl, old, new)
        found.serve_build(new)
        yield found


async def test_smoke_proves_the_release_is_serving_by_alias_and_version_path(served: Served) -> None:
    result = await served.smoke(served.settings(SMOKE_VERSION_PATH="/api/version"))
    assert result.outcome == Outcome.OK, result.summary
    assert f"serving {served.new.id} @ {RELEASE_SHA[:7]}" in result.summary
    assert result.data["serving_deployment"] == served.new.id
    assert result.data["serving_sha"] == RELEASE_SHA
    assert result.data["verified_by"] == [f"Vercel alias {DOMAIN}", "/api/version"]
    assert f"Vercel alias {DOMAIN}" in result.details and "/api/version" in result.details
    assert "build verified" in result.fields["Automated Checks"]
    (lookup,) = [c for c in served.vercel_app[CALLS_KEY] if c["path"] == f"/v4/aliases/{DOMAIN}"]
    assert lookup["query"].get("teamId") == "team_1"


async def test_smoke_fails_when_the_domain_serves_another_deployment(served: Served) -> None:
    served.serve_build(served.old)  # e.g. a rollback moved the domain and nothing moved it back
    result = await served.smoke(served.settings())
    assert result.outcome == Outcome.FAIL
    assert "wrong build" in result.summary
    assert f"{DOMAIN} serves {served.old.id} ({OLD_SHA[:7]})" in result.summary
    assert f"not this release's {served.new.id} ({RELEASE_SHA[:7]})" in result.summary
    assert result.data["serving_deployment"] == served.old.id


async def test_smoke_fails_when_the_app_reports_another_commit(served: Served) -> None:
    served.staging.commit_source = None
    served.staging.commit = OLD_SHA  # an old build answers, whatever Vercel says
    result = await served.smoke(served.settings(vercel=False, SMOKE_VERSION_PATH="/api/version"))
    assert result.outcome == Outcome.FAIL
    assert f"/api/version reports commit {OLD_SHA[:12]}" in result.summary
    assert f"not this release's {RELEASE_SHA[:12]}" in result.summary
    assert result.data["serving_sha"] == OLD_SHA


async def test_smoke_reads_the_commit_from_a_response_header(served: Served) -> None:
    settings = served.settings(vercel=False, SMOKE_VERSION_HEADER="X-Commit-Sha")
    ok = await served.smoke(settings)
    assert ok.outcome == Outcome.OK, ok.summary
    assert ok.data["verified_by"] == ["header X-Commit-Sha"]
    assert f"serving commit {RELEASE_SHA[:7]}, this release's build" in ok.summary
    served.serve_build(served.old)
    wrong = await served.smoke(settings)
    assert wrong.outcome == Outcome.FAIL
    assert f"header X-Commit-Sha reports commit {OLD_SHA[:12]}" in wrong.summary


async def test_smoke_accepts_a_short_sha_but_not_another_one(served: Served) -> None:
    served.staging.commit_source = None
    served.staging.commit = RELEASE_SHA[:7]
    settings = served.settings(vercel=False, SMOKE_VERSION_PATH="/api/version")
    assert (await served.smoke(settings)).outcome == Outcome.OK
    served.staging.commit = OLD_SHA[:7]
    assert (await served.smoke(settings)).outcome == Outcome.FAIL


async def test_a_configured_version_source_that_does_not_answer_fails(served: Served) -> None:
    served.staging.commit_source = None  # /api/version answers 404, no header is sent
    path = await served.smoke(served.settings(vercel=False, SMOKE_VERSION_PATH="/api/version"))
    assert path.outcome == Outcome.FAIL
    assert "/api/version answered 404" in path.summary
    header = await served.smoke(served.settings(vercel=False, SMOKE_VERSION_HEADER="x-commit-sha"))
    assert header.outcome == Outcome.FAIL
    assert "carried no x-commit-sha header" in header.summary
    no_field = await served.smoke(served.settings(vercel=False, SMOKE_VERSION_PATH="/api/health"))
    assert no_field.outcome == Outcome.FAIL
    assert "/api/health answered no commit" in no_field.summary


async def test_an_unknown_alias_fails_and_a_vercel_error_is_reported(served: Served) -> None:
    gone = await served.smoke(served.settings(STAGING_DOMAIN="elsewhere.pocket.test"))
    assert gone.outcome == Outcome.FAIL
    assert "elsewhere.pocket.test is not an alias on Vercel" in gone.summary
    refused = await served.smoke(served.settings(VERCEL_TOKEN="wrong"))
    assert refused.outcome == Outcome.FAIL
    assert "could not ask Vercel" in refused.summary and "401" in refused.summary
    assert "wrong" not in refused.summary.replace("wrong build", "")


async def test_a_release_without_a_recorded_deployment_cannot_be_verified(served: Served) -> None:
    release = Release(id=8, environment="staging", ref="main", started_by="U1")
    result = await served.smoke(served.settings(SMOKE_VERSION_PATH="/api/version"), release)
    assert result.outcome == Outcome.WARN, result.summary
    assert "could not verify which build is serving" in result.summary
    assert "recorded no deployment" in result.summary and "no Git SHA" in result.summary
    assert f"(it serves {served.new.id} @ {RELEASE_SHA[:7]})" in result.summary
    assert "not compared" in result.details


async def test_after_the_release_ended_smoke_names_the_serving_build_without_expecting_it(
        served: Served) -> None:
    # The rollback's re-check: staging now serves the build the rollback went back to.
    served.serve_build(served.old)
    result = await served.smoke(served.settings(SMOKE_VERSION_PATH="/api/version"),
                                served.release(ReleaseStatus.SUCCEEDED))
    assert result.outcome == Outcome.OK, result.summary
    assert f"serving {served.old.id} @ {OLD_SHA[:7]}" in result.summary
    assert "not compared" in result.summary
    # Told what to expect, it compares again.
    expected = await served.smoke(served.settings(), served.release(ReleaseStatus.SUCCEEDED),
                                  expect_deployment=served.new.id)
    assert expected.outcome == Outcome.FAIL and served.old.id in expected.summary
