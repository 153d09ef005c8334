"""The `deploy` step against the Vercel emulator: outcomes, retries without duplicates, hooks, faults."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from bot.app import build_runtime
from bot.chat.console import ConsoleChat
from bot.providers import vercel
from bot.providers.http import ProviderError
from bot.rollback import Choices, controller
from bot.runbook.model import Outcome, Release, ReleaseStatus, utcnow
from bot.store import Store
from sandbox.server import CALLS_KEY, FAULTS_KEY, serve
from sandbox.vercel import (
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
DATA_KEYS = {"deployment_id", "url", "inspector_url", "created_at", "ready_at", "state", "sha", "reused",
             "alias", "alias_previous", "alias_repointed"}


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
    # BUILDING from its first read on, so a slow machine changes how often it is polled, not what
    # the step reports.
    vc.state.build_script = BuildScript(queued_polls=0, outcome=NEVER)
    started = time.monotonic()
    result = await StepHarness(vc.settings(DEPLOY_TIMEOUT_SECONDS=0.3), release()).run(
        "deploy", poll_seconds=0.05
    )
    assert time.monotonic() - started < 60  # it gave up instead of polling forever
    assert result.outcome == Outcome.FAIL
    assert "still BUILDING after 0.3 s" in result.summary
    assert [link.label for link in result.links] == ["Deployment", "Vercel inspector"]
    assert result.data["state"] == "BUILDING"
    # Sleeps of at least 0.05 s between reads within 0.3 s: a handful of reads, however busy.
    assert 1 <= len(vc.calls("GET", "/v13/deployments/")) <= 8


async def test_retried_deploy_reuses_the_deployment(vc: Vercel) -> None:
    # The first attempt times out on its first read (a zero timeout), whatever the machine's speed.
    vc.state.build_script = BuildScript(queued_polls=0, outcome=NEVER)
    harness = StepHarness(vc.settings(DEPLOY_TIMEOUT_SECONDS=0), release())
    first = await harness.run("deploy", poll_seconds=0.01)
    assert first.outcome == Outcome.FAIL, first.summary
    assert "still BUILDING after 0 s" in first.summary
    (dep,) = vc.state.deployments.values()
    assert dep.state == "BUILDING"
    dep.script = BuildScript(queued_polls=0, building_polls=dep.polls + 2)  # now it will finish
    harness.settings = vc.settings(DEPLOY_TIMEOUT_SECONDS=600)  # a ceiling only, never reached
    second = await harness.run("deploy", poll_seconds=0.01)
    assert second.outcome == Outcome.OK, second.summary
    assert second.data["reused"] is True
    assert second.data["deployment_id"] == first.data["deployment_id"] == dep.id
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


# --- staging's domain serves the release ------------------------------------------------------

DOMAIN = "staging.pocket.test"
OLD_SHA = "0d" * 20


async def test_rerelease_after_a_rollback_points_the_domain_back_at_the_release(vc: Vercel) -> None:
    """release -> rollback -> release of the same ref: the reused deployment serves again."""
    vc.state.clock = Tick()
    # As on Vercel, the staging domain follows the staging branch's new deployments.
    vc.state.projects["prj_pocket"].branch_domains["main"] = [DOMAIN]
    settings = vc.settings(STAGING_DOMAIN=DOMAIN)
    runtime = build_runtime(settings, ConsoleChat(out=io.StringIO()), store=Store(":memory:"))
    store = runtime.store

    async def deploy(ref: str, sha: str) -> tuple[Release, Any]:
        rel = store.create_release(Release(environment="staging", ref=ref, started_by="U1",
                                           git_sha=sha, data={"steps": {"merge": {"sha": sha}}}))
        result = await StepHarness(settings, rel).run("deploy")
        assert result.outcome == Outcome.OK, result.summary
        rel.status, rel.finished_at = ReleaseStatus.SUCCEEDED, utcnow()
        store.save_release(rel)
        return rel, result

    _, good = await deploy("release/1", OLD_SHA)
    second, bad = await deploy("release/2", SHA)
    assert vc.state.aliases[DOMAIN] == bad.data["deployment_id"]

    report = await controller(runtime).run(second.id or 0, Choices(reason="coach is empty"), "U1")
    assert report.rolled_back
    assert vc.state.aliases[DOMAIN] == good.data["deployment_id"]  # the rollback moved it

    _, again = await deploy("release/2", SHA)
    assert again.data["reused"] is True
    assert again.data["deployment_id"] == bad.data["deployment_id"]
    assert vc.creates() == 2  # nothing rebuilt
    assert vc.state.aliases[DOMAIN] == again.data["deployment_id"]  # staging serves the release
    assert again.data["alias"] == DOMAIN and again.data["alias_repointed"] is True
    assert again.data["alias_previous"] == good.data["deployment_id"]
    assert f"{DOMAIN} re-pointed" in again.summary
    lookups = vc.calls("GET", f"/v4/aliases/{DOMAIN}")
    assert lookups and all(c["query"].get("teamId") == "team_1" for c in lookups)


async def test_a_domain_already_serving_the_deployment_is_left_alone(vc: Vercel) -> None:
    settings = vc.settings(VERCEL_TARGET="staging", STAGING_DOMAIN="staging.example.test")
    result = await StepHarness(settings, release()).run("deploy")
    assert result.outcome == Outcome.OK, result.summary
    # The custom environment's domain followed the new deployment on its own.
    assert vc.state.aliases["staging.example.test"] == result.data["deployment_id"]
    assert result.data["alias"] == "staging.example.test"
    assert result.data["alias_repointed"] is False
    assert result.data["alias_previous"] == result.data["deployment_id"]
    assert "staging.example.test already served it" in result.summary
    assert len(vc.calls("GET", "/v4/aliases/staging.example.test")) == 1
    assert vc.calls("POST", "/v2/deployments/") == []


async def test_a_new_deployment_the_domain_does_not_follow_gets_the_domain(vc: Vercel) -> None:
    # STAGING_URL's host is the domain when STAGING_DOMAIN is unset; nothing aliases it yet.
    settings = vc.settings(STAGING_URL="https://pocket-staging.example.test")
    result = await StepHarness(settings, release()).run("deploy")
    assert result.outcome == Outcome.OK, result.summary
    assert vc.state.aliases["pocket-staging.example.test"] == result.data["deployment_id"]
    assert result.data["alias_repointed"] is True and result.data["alias_previous"] is None
    assert "pocket-staging.example.test pointed at it" in result.summary
    (post,) = vc.calls("POST", "/v2/deployments/")
    assert post["path"] == f"/v2/deployments/{result.data['deployment_id']}/aliases"
    assert json.loads(post["body"]) == {"alias": "pocket-staging.example.test"}
    assert post["query"].get("teamId") == "team_1"


async def test_without_a_staging_domain_no_alias_is_touched_and_it_says_so(vc: Vercel) -> None:
    result = await StepHarness(vc.settings(), release()).run("deploy")
    assert result.outcome == Outcome.OK, result.summary
    assert result.data["alias"] is None and result.data["alias_repointed"] is None
    assert "no staging domain to check" in result.summary
    assert vc.calls("GET", "/v4/aliases/") == [] and vc.calls("POST", "/v2/deployments/") == []


async def test_a_domain_that_cannot_be_pointed_fails_the_deploy(vc: Vercel) -> None:
    vc.app[FAULTS_KEY].add(r"^POST /v2/deployments/.*/aliases$", 403)
    result = await StepHarness(vc.settings(STAGING_DOMAIN=DOMAIN), release()).run("deploy")
    assert result.outcome == Outcome.FAIL
    assert f"but {DOMAIN} could not be pointed at it" in result.summary and "403" in result.summary
    assert result.data["state"] == "READY" and result.data["alias_repointed"] is None
    assert DOMAIN not in vc.state.aliases


async def test_get_alias_accepts_the_specs_array_and_the_live_object(vc: Vercel) -> None:
    project = vc.state.projects["prj_pocket"]
    dep = vc.state.finish(vc.state.create_deployment(project, sha=SHA, ref="main"))
    vc.state.assign_alias(DOMAIN, dep)
    async with vercel.vercel_client(vc.settings()) as client:
        listed = await vercel.get_alias(client, DOMAIN)  # the emulator answers the spec's array
        assert listed is not None and vercel.alias_deployment_id(listed) == dep.id
        assert vercel.alias_deployment_sha(listed) == SHA
        assert await vercel.get_alias(client, "nowhere.example.test") is None
        live = {"alias": DOMAIN, "uid": "a1", "deployment": {"id": dep.id, "url": dep.url,
                                                             "meta": {"githubCommitSha": SHA}}}
        vc.app[FAULTS_KEY].add(r"^GET /v4/aliases/", 200, body=json.dumps(live))
        one = await vercel.get_alias(client, DOMAIN)
        assert one is not None and vercel.alias_deployment_id(one) == dep.id
        assert vercel.alias_deployment_sha(one) == SHA
