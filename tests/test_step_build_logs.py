"""The `build_logs` step: connection lines and error lines in the Vercel build log, Supabase health."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from bot.providers import supabase_api
from bot.providers.http import ProviderError
from bot.runbook.model import Outcome, Release
from sandbox.server import CALLS_KEY, FAULTS_KEY, serve
from sandbox.supabase_api import Backup, Migration, SupabaseState, create_supabase_app
from sandbox.vercel import ERROR, BuildScript, VercelState, create_vercel_app
from tests.helpers import StepHarness, make_settings

TOKEN = "vercel-test-token"
SB_TOKEN = "sbp_sandbox_access_token"
REF = "abcdefghijklmnopqrst"
SHA = "9e" * 20


@dataclass
class Env:
    vercel: VercelState
    vercel_app: web.Application
    supabase: SupabaseState
    supabase_app: web.Application
    vercel_url: str
    supabase_url: str

    def settings(self, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "VERCEL_API_URL": self.vercel_url,
            "VERCEL_TOKEN": TOKEN,
            "VERCEL_PROJECT_ID": "prj_pocket",
            "HTTP_TIMEOUT_SECONDS": 2,
        }
        values.update(overrides)
        return make_settings(**values)

    def with_supabase(self, **overrides: Any) -> Any:
        values: dict[str, Any] = {"SUPABASE_API_URL": self.supabase_url,
                                  "SUPABASE_ACCESS_TOKEN": SB_TOKEN, "SUPABASE_PROJECT_REF": REF}
        return self.settings(**{**values, **overrides})

    def deployed(self, log: list[tuple[str, str]] | None = None, outcome: str = "READY") -> Release:
        script = BuildScript(outcome=outcome)
        if log is not None:
            script.log = log
        dep = self.vercel.create_deployment(self.vercel.projects["prj_pocket"], sha=SHA, ref="main")
        dep.script = script
        self.vercel.finish(dep)
        data = {"steps": {"deploy": {"deployment_id": dep.id, "inspector_url": "https://vercel.com/x/y/z"}}}
        return Release(id=1, environment="staging", ref="main", started_by="U1", data=data)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    vercel = VercelState(token=TOKEN)
    vercel.add_project("pocket", project_id="prj_pocket")
    supabase = SupabaseState(access_token=SB_TOKEN, ref=REF)
    vapp, sapp = create_vercel_app(vercel), create_supabase_app(supabase)
    async with serve(vapp) as vurl, serve(sapp) as surl:
        yield Env(vercel, vapp, supabase, sapp, vurl, surl)


async def test_connection_lines_present_and_no_errors_passes(env: Env) -> None:
    result = await StepHarness(env.settings(), env.deployed()).run("build_logs")
    assert result.outcome == Outcome.OK, result.summary
    assert "PostgREST connection established" in result.details
    assert "GoTrue connection ok" in result.details
    assert "```" in result.details
    assert result.data["missing_patterns"] == [] and result.data["error_lines"] == []
    assert [link.url for link in result.links] == ["https://vercel.com/x/y/z"]
    (call,) = [c for c in env.vercel_app[CALLS_KEY] if c["path"].endswith("/events")]
    assert call["query"]["limit"] == "-1"


async def test_missing_success_lines_fail_naming_the_pattern(env: Env) -> None:
    log = [("stdout", 'Running "npm run build"'), ("stdout", "PostgREST connection established")]
    result = await StepHarness(env.settings(), env.deployed(log)).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "1 expected line(s) missing" in result.summary
    assert "gotrue" in result.details.lower() and "No line matched" in result.details
    assert "PostgREST connection established" in result.details
    assert "Compiled" not in result.summary


async def test_no_success_lines_at_all_fails(env: Env) -> None:
    result = await StepHarness(env.settings(), env.deployed([("stdout", "Compiled")])).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "2 expected line(s) missing" in result.summary
    assert len(result.data["missing_patterns"]) == 2


async def test_error_line_fails_and_is_shown(env: Env) -> None:
    log = [("stdout", "PostgREST connection established"), ("stdout", "GoTrue connection ok"),
           ("stderr", "Error: Cannot find module 'zod'")]
    result = await StepHarness(env.settings(), env.deployed(log)).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "1 error line(s)" in result.summary
    assert "Error: Cannot find module 'zod'" in result.details
    assert result.data["error_lines"] == ["Error: Cannot find module 'zod'"]


async def test_failed_build_shows_its_error_line(env: Env) -> None:
    result = await StepHarness(env.settings(), env.deployed(outcome=ERROR)).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert 'Error: Command "npm run build" exited with 1' in result.details


async def test_custom_patterns_from_settings(env: Env) -> None:
    settings = env.settings(BUILD_LOG_SUCCESS_PATTERNS="Compiled successfully",
                            BUILD_LOG_ERROR_PATTERNS="(?i)warn")
    log = [("stdout", "Compiled successfully"), ("stdout", "warn: deprecated api")]
    result = await StepHarness(settings, env.deployed(log)).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert result.data["matched"] == ["Compiled successfully"]
    assert result.data["error_lines"] == ["warn: deprecated api"]


async def test_invalid_pattern_fails_clearly(env: Env) -> None:
    settings = env.settings(BUILD_LOG_SUCCESS_PATTERNS="(unclosed")
    result = await StepHarness(settings, env.deployed()).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "not a valid regex" in result.summary


async def test_no_deployment_recorded_fails(env: Env) -> None:
    result = await StepHarness(env.settings()).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert result.summary == "No deployment recorded by the deploy step."


async def test_supabase_health_is_shown(env: Env) -> None:
    result = await StepHarness(env.with_supabase(), env.deployed()).run("build_logs")
    assert result.outcome == Outcome.OK, result.summary
    assert "service  healthy  status" in result.details
    for name in ("auth", "rest", "db"):
        assert f"{name}  " in result.details
    assert result.data["supabase_health"] == {"auth": "ACTIVE_HEALTHY", "rest": "ACTIVE_HEALTHY",
                                              "db": "ACTIVE_HEALTHY"}
    (call,) = [c for c in env.supabase_app[CALLS_KEY] if c["path"].endswith("/health")]
    assert call["headers"]["Authorization"] == f"Bearer {SB_TOKEN}"


async def test_unhealthy_auth_fails(env: Env) -> None:
    env.supabase.health["auth"] = "UNHEALTHY"
    result = await StepHarness(env.with_supabase(), env.deployed()).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "Supabase auth is UNHEALTHY" in result.summary
    assert "UNHEALTHY" in result.details


async def test_unhealthy_db_only_warns(env: Env) -> None:
    env.supabase.health["db"] = "COMING_UP"
    result = await StepHarness(env.with_supabase(), env.deployed()).run("build_logs")
    assert result.outcome == Outcome.WARN
    assert "Supabase db is COMING_UP" in result.summary


async def test_supabase_bad_token_fails_clearly(env: Env) -> None:
    settings = env.with_supabase(SUPABASE_ACCESS_TOKEN="sbp_wrong")
    result = await StepHarness(settings, env.deployed()).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "Supabase health unavailable" in result.summary
    assert "401" in result.details and "access token was rejected" in result.details
    assert "sbp_wrong" not in result.details


async def test_supabase_rate_limit_is_retried(env: Env) -> None:
    env.supabase_app[FAULTS_KEY].add(r"/health$", 429, retry_after=0)
    result = await StepHarness(env.with_supabase(), env.deployed()).run("build_logs")
    assert result.outcome == Outcome.OK, result.summary
    assert len([c for c in env.supabase_app[CALLS_KEY] if c["path"].endswith("/health")]) == 2


async def test_supabase_server_error_is_retried(env: Env) -> None:
    env.supabase_app[FAULTS_KEY].add(r"/health$", 500)
    result = await StepHarness(env.with_supabase(), env.deployed()).run("build_logs")
    assert result.outcome == Outcome.OK, result.summary


async def test_vercel_bad_token_fails_clearly(env: Env) -> None:
    release = env.deployed()
    result = await StepHarness(env.settings(VERCEL_TOKEN="nope"), release).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "Could not read the build log" in result.summary and "401" in result.summary


async def test_vercel_rate_limit_and_server_error_are_retried(env: Env) -> None:
    env.vercel_app[FAULTS_KEY].add(r"/events$", 429, retry_after=0)
    env.vercel_app[FAULTS_KEY].add(r"/events$", 503)
    result = await StepHarness(env.settings(), env.deployed()).run("build_logs")
    assert result.outcome == Outcome.OK, result.summary
    assert len([c for c in env.vercel_app[CALLS_KEY] if c["path"].endswith("/events")]) == 3


async def test_vercel_malformed_json_fails_clearly(env: Env) -> None:
    env.vercel_app[FAULTS_KEY].add(r"/events$", 200, body="[{")
    result = await StepHarness(env.settings(), env.deployed()).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "malformed JSON" in result.summary


async def test_vercel_timeout_fails_clearly(env: Env) -> None:
    env.vercel_app[FAULTS_KEY].add(r"/events$", 0, delay=0.6, times=3)
    result = await StepHarness(env.settings(HTTP_TIMEOUT_SECONDS=0.2), env.deployed()).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "timed out" in result.summary


# --- Supabase Management API functions the rollback reuses ----------------------------------------


async def test_migrations_backups_and_pitr_restore(env: Env) -> None:
    env.supabase.migrations = [Migration("20240101000000", "init"), Migration("20240301000000", "cards")]
    env.supabase.backups = [Backup(1, "2024-04-30T00:00:00Z"), Backup(2, "2024-05-01T00:00:00Z")]
    env.supabase.earliest_backup_unix, env.supabase.latest_backup_unix = 1_714_000_000, 1_714_600_000
    async with supabase_api.supabase_client(env.with_supabase()) as client:
        assert await supabase_api.list_applied_migrations(client, REF) == ["20240101000000", "20240301000000"]
        backups = await supabase_api.list_backups(client, REF)
        assert backups.pitr_enabled and backups.walg_enabled and backups.region == "us-east-1"
        assert [b.id for b in backups.backups] == [1, 2]
        assert backups.backups[0].status == "COMPLETED" and backups.backups[0].is_physical_backup
        assert (backups.earliest_unix, backups.latest_unix) == (1_714_000_000, 1_714_600_000)
        await supabase_api.restore_pitr(client, REF, 1_714_500_000)
        assert env.supabase.restores[-1]["recovery_time_target_unix"] == 1_714_500_000
        health = await supabase_api.project_health(client, REF, ("db", "rest"))
        assert [(h.name, h.healthy, h.status) for h in health] == [
            ("db", False, "COMING_UP"), ("rest", False, "COMING_UP")]
        assert health[0].error == "db is coming up"
        with pytest.raises(ProviderError, match="must be between"):
            await supabase_api.restore_pitr(client, REF, 1)


async def test_management_api_wrong_project_and_malformed_answers(env: Env) -> None:
    async with supabase_api.supabase_client(env.with_supabase()) as client:
        with pytest.raises(ProviderError, match="403"):
            await supabase_api.list_backups(client, "zzzzzzzzzzzzzzzzzzzz")
        env.supabase_app[FAULTS_KEY].add(r"/database/migrations$", 200, body="nope")
        with pytest.raises(ProviderError, match="malformed JSON"):
            await supabase_api.list_applied_migrations(client, REF)


# --- a real app's build prints no PostgREST/GoTrue lines -------------------------------------------

# What a Next.js build on Vercel prints when nothing in it talks to Supabase at build time.
NEXT_BUILD = [
    ("command", "Running build in Washington, D.C., USA (East) - iad1"),
    ("stdout", "Restored build cache from previous deployment"),
    ("command", "Running \"vercel build\""),
    ("stdout", "Detected Next.js version: 14.2.5"),
    ("stderr", "npm warn deprecated inflight@1.0.6: This module is not supported"),
    ("stdout", "   Creating an optimized production build ..."),
    ("stdout", " ✓ Compiled successfully"),
    ("stdout", " ✓ Generating static pages (24/24)"),
    ("stdout", "Build Completed in /vercel/output [52s]"),
]


async def test_no_connection_lines_but_healthy_supabase_warns_and_says_so(env: Env) -> None:
    result = await StepHarness(env.with_supabase(), env.deployed(NEXT_BUILD)).run("build_logs")
    assert result.outcome == Outcome.WARN, result.summary
    assert "no line matched 2 expected pattern(s)" in result.summary
    assert "Supabase auth and rest answer healthy" in result.summary
    assert result.data["missing_patterns"] and result.data["error_lines"] == []
    assert result.data["supabase_health"]["auth"] == "ACTIVE_HEALTHY"
    assert "No line matched" in result.details  # the patterns are still named
    assert "npm warn deprecated" not in "".join(result.data["error_lines"])  # stderr is no error


async def test_no_connection_lines_and_unhealthy_rest_fails(env: Env) -> None:
    env.supabase.health["rest"] = "UNHEALTHY"
    result = await StepHarness(env.with_supabase(), env.deployed(NEXT_BUILD)).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "Supabase rest is UNHEALTHY" in result.summary
    assert "2 expected line(s) missing" in result.summary


async def test_no_connection_lines_with_an_error_line_fails_despite_healthy_supabase(env: Env) -> None:
    log = [*NEXT_BUILD, ("stderr", "Error: Failed to collect page data for /api/marcus")]
    result = await StepHarness(env.with_supabase(), env.deployed(log)).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "1 error line(s)" in result.summary
    assert result.data["error_lines"] == ["Error: Failed to collect page data for /api/marcus"]


async def test_no_connection_lines_and_supabase_unreadable_fails(env: Env) -> None:
    settings = env.with_supabase(SUPABASE_ACCESS_TOKEN="sbp_wrong")
    result = await StepHarness(settings, env.deployed(NEXT_BUILD)).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "2 expected line(s) missing" in result.summary
    assert "Supabase health unavailable" in result.summary


async def test_no_connection_lines_without_supabase_settings_fails_and_names_them(env: Env) -> None:
    result = await StepHarness(env.settings(), env.deployed(NEXT_BUILD)).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert "2 expected line(s) missing" in result.summary
    assert "SUPABASE_ACCESS_TOKEN and SUPABASE_PROJECT_REF" in result.details


async def test_flat_events_and_fatal_or_error_level_events_count(env: Env) -> None:
    # The spec's second event shape: the text at the top level, with an optional `level`.
    release = env.deployed()
    dep_id = release.data["steps"]["deploy"]["deployment_id"]

    def flat(serial: int, kind: str, text: str, **extra: str) -> dict[str, Any]:
        return {"type": kind, "created": 1_700_000_000_000 + serial, "date": 1_700_000_000_000 + serial,
                "deploymentId": dep_id, "id": f"evt_{serial}", "serial": f"{serial:06d}",
                "info": {"type": "build", "name": "bld_1"}, "text": text, **extra}

    events = [flat(1, "stdout", "PostgREST connection established"),
              flat(2, "stdout", "GoTrue connection ok"),
              flat(3, "stdout", "Prerendering /dashboard went wrong", level="error"),
              flat(4, "fatal", "The build container ran out of memory"),
              flat(5, "stderr", "warn - a notice on stderr", level="warning")]
    env.vercel_app[FAULTS_KEY].add(r"/events$", 200, body=json.dumps(events))
    result = await StepHarness(env.settings(), release).run("build_logs")
    assert result.outcome == Outcome.FAIL
    assert result.data["matched"] == ["PostgREST connection established", "GoTrue connection ok"]
    assert result.data["error_lines"] == ["Prerendering /dashboard went wrong",
                                          "The build container ran out of memory"]
    assert "2 error line(s)" in result.summary
