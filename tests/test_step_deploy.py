"""The `deploy` step against the Vercel emulator: outcomes, retries without duplicates, hooks, faults."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from bot.providers import vercel
from bot.providers.http import ProviderError
from bot.runbook.model import Outcome, Release
from bot.sandbox.server import CALLS_KEY, FAULTS_KEY, serve
from bot.sandbox.vercel import (
    CANCELED,
    ERROR,
    NEVER,
    BuildScript,
    CustomEnvironment,
    DeployHook,
    VercelState,
    create_vercel_app,
)
from tests.helpers import StepHarness, make_settings

TOKEN = "vercel-test-token"
SHA = "3f2a" * 10
DATA_KEYS = {"deployment_id", "url", "inspector_url", "created_at", "ready_at", "state", "sha", "reused"}


@dataclass
class Vercel:
    state: VercelState
    app: web.Application
    url: str

    def settings(self, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "VERCEL_API_URL": self.url,
            "VERCEL_TOKEN": TOKEN,
            "VERCEL_PROJECT_ID": "prj_pocket",
            "VERCEL_TEAM_ID": "team_1",
            "GITHUB_REPOSITORY": "acme/app",
            "STAGING_BRANCH": "main",
            "DEPLOY_POLL_SECONDS": 0.01,
            "DEPLOY_TIMEOUT_SECONDS": 5,
            "HTTP_TIMEOUT_SECONDS": 2,
        }
        values.update(overrides)
        return make_settings(**values)

    def calls(self, method: str, prefix: str) -> list[dict[str, Any]]:
        return [c for c in self.app[CALLS_KEY] if c["method"] == method and c["path"].startswith(prefix)]

    def creates(self) -> int:
        return len(self.calls("POST", "/v13/deployments"))


@pytest.fixture
async def vc() -> AsyncIterator[Vercel]:
    state = VercelState(token=TOKEN, team_id="team_1")
    project = state.add_project("pocket", project_id="prj_pocket", production_branch="production")
    project.custom_environments.append(
        CustomEnvironment("env_staging", "staging", branch="staging", domains=["staging.example.test"])
    )
    app = create_vercel_app(state)
    async with serve(app) as url:
        yield Vercel(state, app, url)


def release(sha: str | None = SHA) -> Release:
    data: dict[str, Any] = {"steps": {"merge": {"sha": sha}}} if sha else {}
    return Release(id=3, environment="staging", ref="release/2", started_by="U1", data=data)


async def test_ready_records_url_inspector_and_timestamps(vc: Vercel) -> None:
    vc.state.build_script = BuildScript(queued_polls=1, building_polls=3)
    harness = StepHarness(vc.settings(), release())
    result = await harness.run("deploy", poll_seconds=0.01)
    assert result.outcome == Outcome.OK, result.summary
    assert set(result.data) == DATA_KEYS
    (dep,) = vc.state.deployments.values()
    assert result.data["deployment_id"] == dep.id
    assert result.data["url"] == f"https://{dep.url}"
    assert result.data["inspector_url"].startswith("https://vercel.com/")
    assert result.data["state"] == "READY" and result.data["sha"] == SHA
    assert result.data["reused"] is False
    assert result.data["created_at"].endswith("Z") and result.data["ready_at"].endswith("Z")
    assert {link.url for link in result.links} == {result.data["url"], result.data["inspector_url"]}
    assert any(p.startswith("BUILDING · ") for p in harness.progress)
    (create,) = vc.calls("POST", "/v13/deployments")
    body = json.loads(create["body"])
    assert body["gitSource"] == {"type": "github", "org": "acme", "repo": "app", "ref": "main", "sha": SHA}
    assert body["project"] == "prj_pocket" and "target" not in body
    assert "customEnvironmentSlugOrId" not in body
    assert all(c["query"].get("teamId") == "team_1" for c in vc.app[CALLS_KEY])
    assert all(c["headers"]["Authorization"] == f"Bearer {TOKEN}" for c in vc.app[CALLS_KEY])


async def test_release_git_sha_is_used_without_merge_data(vc: Vercel) -> None:
    rel = release(None)
    rel.git_sha = "b" * 40
    result = await StepHarness(vc.settings(), rel).run("deploy")
    assert result.outcome == Outcome.OK, result.summary
    assert result.data["sha"] == "b" * 40
    assert next(iter(vc.state.deployments.values())).sha == "b" * 40


async def test_no_sha_fails(vc: Vercel) -> None:
    result = await StepHarness(vc.settings(), release(None)).run("deploy")
    assert result.outcome == Outcome.FAIL
    assert "No Git SHA to deploy" in result.summary
    assert vc.creates() == 0


async def test_custom_environment_target(vc: Vercel) -> None:
    result = await StepHarness(vc.settings(VERCEL_TARGET="staging"), release()).run("deploy")
    assert result.outcome == Outcome.OK, result.summary
    body = json.loads(vc.calls("POST", "/v13/deployments")[0]["body"])
    assert body["customEnvironmentSlugOrId"] == "staging"
    (dep,) = vc.state.deployments.values()
    assert dep.custom_environment is not None and dep.custom_environment.slug == "staging"
    assert vc.state.aliases["staging.example.test"] == dep.id


async def test_preview_branch_target_deploys_that_branch(vc: Vercel) -> None:
    vc.state.projects["prj_pocket"].branch_domains["staging"] = ["staging.example.test"]
    result = await StepHarness(vc.settings(VERCEL_TARGET="preview:staging"), release()).run("deploy")
    assert result.outcome == Outcome.OK, result.summary
    body = json.loads(vc.calls("POST", "/v13/deployments")[0]["body"])
    assert body["gitSource"]["ref"] == "staging" and body["gitSource"]["sha"] == SHA
    assert vc.state.aliases["staging.example.test"] == result.data["deployment_id"]


async def test_production_target_deploys_to_production_and_a_retry_reuses_it(vc: Vercel) -> None:
    settings = vc.settings(VERCEL_TARGET="production")
    result = await StepHarness(settings, release()).run("deploy")
    assert result.outcome == Outcome.OK, result.summary
    posts = [c for c in vc.app[CALLS_KEY] if c["method"] == "POST" and c["path"] == "/v13/deployments"]
    body = json.loads(posts[0]["body"])
    assert body["target"] == "production" and "customEnvironmentSlugOrId" not in body
    again = await StepHarness(settings, release()).run("deploy")
    assert again.data["reused"] is True and again.data["deployment_id"] == result.data["deployment_id"]


async def test_build_error_fails_with_the_error_message(vc: Vercel) -> None:
    vc.state.build_script = BuildScript(outcome=ERROR, error_message='Command "npm run build" exited with 1')
    result = await StepHarness(vc.settings(), release()).run("deploy")
    assert result.outcome == Outcome.FAIL
    assert 'Command "npm run build" exited with 1' in result.summary
    assert result.data["state"] == "ERROR"
    assert any("vercel.com" in link.url for link in result.links)


async def test_canceled_fails(vc: Vercel) -> None:
    vc.state.build_script = BuildScript(outcome=CANCELED)
    result = await StepHarness(vc.settings(), release()).run("deploy")
    assert result.outcome == Outcome.FAIL
    assert "canceled" in result.summary
    assert result.data["state"] == "CANCELED"


async def test_build_outliving_the_timeout_fails_with_inspector_link(vc: Vercel) -> None:
    vc.state.build_script = BuildScript(outcome=NEVER)
    started = time.monotonic()
    result = await StepHarness(vc.settings(DEPLOY_TIMEOUT_SECONDS=0.3), release()).run(
        "deploy", poll_seconds=0.05
    )
    assert time.monotonic() - started < 3
    assert result.outcome == Outcome.FAIL
    assert "still BUILDING after 0.3 s" in result.summary
    assert [link.label for link in result.links] == ["Deployment", "Vercel inspector"]
    assert result.data["state"] == "BUILDING"


async def test_retried_deploy_reuses_the_deployment(vc: Vercel) -> None:
    vc.state.build_script = BuildScript(queued_polls=1, building_polls=40)
    harness = StepHarness(vc.settings(DEPLOY_TIMEOUT_SECONDS=0.2), release())
    first = await harness.run("deploy", poll_seconds=0.05)
    assert first.outcome == Outcome.FAIL and "still BUILDING" in first.summary
    harness.settings = vc.settings(DEPLOY_TIMEOUT_SECONDS=10)
    second = await harness.run("deploy", poll_seconds=0.01)
    assert second.outcome == Outcome.OK, second.summary
    assert second.data["reused"] is True
    assert second.data["deployment_id"] == first.data["deployment_id"]
    assert "reused" in second.summary
    assert vc.creates() == 1
    assert len(vc.state.deployments) == 1
    # And a third run after READY still does not create another.
    third = await harness.run("deploy")
    assert third.outcome == Outcome.OK and third.data["reused"] is True
    assert vc.creates() == 1


async def test_retry_after_a_failed_build_creates_a_new_deployment(vc: Vercel) -> None:
    vc.state.build_queue = [BuildScript(outcome=ERROR), BuildScript()]
    harness = StepHarness(vc.settings(), release())
    assert (await harness.run("deploy")).outcome == Outcome.FAIL
    again = await harness.run("deploy")
    assert again.outcome == Outcome.OK, again.summary
    assert again.data["reused"] is False
    assert vc.creates() == 2


async def test_deploy_hook_path_finds_the_hooks_deployment(vc: Vercel) -> None:
    vc.state.deploy_hooks["hk_1"] = DeployHook("prj_pocket", "main")
    vc.state.branch_heads["main"] = SHA
    hook = f"{vc.url}/v1/integrations/deploy/prj_pocket/hk_1"
    settings = vc.settings(VERCEL_DEPLOY_HOOK_URL=hook, GITHUB_REPOSITORY=None)
    result = await StepHarness(settings, release()).run("deploy")
    assert result.outcome == Outcome.OK, result.summary
    assert vc.creates() == 0
    (hook_call,) = vc.calls("POST", "/v1/integrations/deploy/")
    assert "Authorization" not in hook_call["headers"]
    assert result.data["deployment_id"] == vc.state.hook_jobs[0]["deploymentId"]
    assert hook not in result.summary


async def test_deploy_hook_building_another_sha_fails(vc: Vercel) -> None:
    vc.state.deploy_hooks["hk_1"] = DeployHook("prj_pocket", "main")
    vc.state.branch_heads["main"] = "c" * 40
    hook = f"{vc.url}/v1/integrations/deploy/prj_pocket/hk_1"
    settings = vc.settings(VERCEL_DEPLOY_HOOK_URL=hook, DEPLOY_TIMEOUT_SECONDS=0.2)
    result = await StepHarness(settings, release()).run("deploy")
    assert result.outcome == Outcome.FAIL
    assert "no deployment of 3f2a3f2" in result.summary
    assert "hk_1" not in result.summary


async def test_unknown_deploy_hook_fails_without_echoing_the_url(vc: Vercel) -> None:
    hook = f"{vc.url}/v1/integrations/deploy/prj_pocket/hk_secret"
    result = await StepHarness(vc.settings(VERCEL_DEPLOY_HOOK_URL=hook), release()).run("deploy")
    assert result.outcome == Outcome.FAIL
    assert "deploy hook could not be triggered" in result.summary
    assert "hk_secret" not in result.summary


async def test_bad_token_fails_clearly(vc: Vercel) -> None:
    result = await StepHarness(vc.settings(VERCEL_TOKEN="wrong"), release()).run("deploy")
    assert result.outcome == Outcome.FAIL
    assert "401" in result.summary and "token was rejected" in result.summary
    assert vc.state.deployments == {}


async def test_rate_limited_create_is_retried_once(vc: Vercel) -> None:
    vc.app[FAULTS_KEY].add(r"^POST /v13/deployments$", 429, retry_after=1)
    started = time.monotonic()
    result = await StepHarness(vc.settings(), release()).run("deploy")
    assert result.outcome == Outcome.OK, result.summary
    assert time.monotonic() - started >= 0.9
    assert vc.creates() == 2
    assert len(vc.state.deployments) == 1


async def test_server_error_while_polling_is_retried(vc: Vercel) -> None:
    vc.app[FAULTS_KEY].add(r"^GET /v13/deployments/", 500)
    result = await StepHarness(vc.settings(), release()).run("deploy")
    assert result.outcome == Outcome.OK, result.summary


async def test_malformed_json_fails_clearly(vc: Vercel) -> None:
    vc.app[FAULTS_KEY].add(r"^GET /v13/deployments/", 200, body="<html>oops")
    result = await StepHarness(vc.settings(), release()).run("deploy")
    assert result.outcome == Outcome.FAIL
    assert "malformed JSON" in result.summary
    assert result.data["deployment_id"]


async def test_api_timeouts_fail_clearly(vc: Vercel) -> None:
    vc.app[FAULTS_KEY].add(r"^GET /v6/deployments$", 0, delay=0.6, times=3)
    result = await StepHarness(vc.settings(HTTP_TIMEOUT_SECONDS=0.2), release()).run("deploy")
    assert result.outcome == Outcome.FAIL
    assert "timed out" in result.summary
    assert vc.creates() == 0


# --- provider functions the rollback reuses -------------------------------------------------------


class Tick:
    """A clock that moves one second per read, so deployments have distinct creation times."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


async def test_previous_ready_deployment_alias_and_rollback(vc: Vercel) -> None:
    vc.state.clock = Tick()
    project = vc.state.projects["prj_pocket"]
    custom = project.custom_environments[0]
    older = vc.state.finish(vc.state.create_deployment(project, sha="a" * 40, ref="staging",
                                                       custom_environment=custom))
    failed = vc.state.create_deployment(project, sha="b" * 40, ref="staging", custom_environment=custom)
    failed.script = BuildScript(outcome=ERROR)
    vc.state.finish(failed)
    preview = vc.state.finish(vc.state.create_deployment(project, sha="c" * 40, ref="feature"))
    current = vc.state.finish(vc.state.create_deployment(project, sha="d" * 40, ref="staging",
                                                         custom_environment=custom))
    prod = vc.state.finish(vc.state.create_deployment(project, sha="e" * 40, ref="production",
                                                      target="production"))
    async with vercel.vercel_client(vc.settings()) as client:
        previous = await vercel.previous_ready_deployment(client, "prj_pocket", "staging", current.id)
        assert previous is not None and vercel.deployment_id(previous) == older.id
        as_preview = await vercel.previous_ready_deployment(client, "prj_pocket", "preview", current.id)
        assert as_preview is not None and vercel.deployment_id(as_preview) == preview.id
        assert await vercel.previous_ready_deployment(client, "prj_pocket", "staging", older.id) is None

        assert vc.state.aliases["staging.example.test"] == current.id
        moved = await vercel.assign_alias(client, older.id, "staging.example.test")
        assert moved["alias"] == "staging.example.test" and moved["oldDeploymentId"] == current.id
        assert vc.state.aliases["staging.example.test"] == older.id
        again = await vercel.assign_alias(client, older.id, "staging.example.test")
        assert again == {"alias": "staging.example.test", "unchanged": True}

        await vercel.rollback_production(client, "prj_pocket", prod.id, "release #3 rolled back")
        assert vc.state.promotions[-1]["kind"] == "rollback"
        assert vc.state.promotions[-1]["description"] == "release #3 rolled back"
        with pytest.raises(ProviderError, match="Only production deployments"):
            await vercel.rollback_production(client, "prj_pocket", older.id, "nope")
    assert all(c["query"].get("teamId") == "team_1" for c in vc.app[CALLS_KEY])


async def test_assign_alias_to_a_failed_deployment_raises_clearly(vc: Vercel) -> None:
    project = vc.state.projects["prj_pocket"]
    failed = vc.state.create_deployment(project, sha="b" * 40, ref="staging")
    failed.script = BuildScript(outcome=ERROR)
    vc.state.finish(failed)
    async with vercel.vercel_client(vc.settings()) as client:
        with pytest.raises(ProviderError, match="not READY"):
            await vercel.assign_alias(client, failed.id, "staging.example.test")
