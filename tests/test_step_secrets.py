"""secrets_present against the Vercel emulator: targets, missing and outdated keys, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.config import Settings
from bot.runbook.model import Outcome, StepResult
from bot.steps.secrets_present import list_env_meta
from sandbox.server import CALLS_KEY, FAULTS_KEY, Faults, serve
from sandbox.vercel import CustomEnvironment, Project, VercelState, create_vercel_app
from tests.helpers import StepHarness, make_settings

KEYS = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "REDIS_URL"]
DAY_MS = 86_400_000
T0 = 1_700_000_000_000
ENV_PATH = r"GET /v10/projects/[^/]+/env"


@dataclass
class Vercel:
    state: VercelState
    app: web.Application
    url: str
    project: Project

    @property
    def faults(self) -> Faults:
        return self.app[FAULTS_KEY]

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self.app[CALLS_KEY]

    def settings(self, **values: Any) -> Settings:
        base: dict[str, Any] = {
            "VERCEL_API_URL": self.url,
            "VERCEL_TOKEN": self.state.token,
            "VERCEL_PROJECT_ID": self.project.id,
            "REQUIRED_SECRETS": ",".join(KEYS),
            "HTTP_TIMEOUT_SECONDS": 2.0,
        }
        base.update(values)
        return make_settings(**base)

    def values(self) -> list[str]:
        return [env.value for env in self.project.envs]

    def add(self, key: str, target: list[str], updated: int = T0, **kw: Any) -> None:
        value = f"value-of-{key}-{'-'.join(target)}-{kw.get('git_branch') or 'all'}-{updated}"
        self.state.add_env(self.project, key, value, target=target, updated_at=updated, **kw)


@pytest.fixture
async def vc() -> AsyncIterator[Vercel]:
    state = VercelState()
    project = state.add_project(
        "pocket-philosopher",
        custom_environments=[CustomEnvironment(id="env_stg123", slug="staging", branch="staging")],
    )
    app = create_vercel_app(state)
    async with serve(app) as url:
        yield Vercel(state, app, url, project)


def assert_no_values(result: StepResult, vc: Vercel) -> None:
    text = result.model_dump_json()
    for value in vc.values():
        assert value not in text
    assert vc.state.token not in text


def env_calls(vc: Vercel) -> list[dict[str, Any]]:
    return [c for c in vc.calls if c["path"].endswith("/env")]


async def test_all_present_on_preview(vc: Vercel) -> None:
    for key in KEYS:
        vc.add(key, ["preview"])
        vc.add(key, ["production"], updated=T0 - DAY_MS)
    result = await StepHarness(vc.settings()).run("secrets_present")
    assert result.outcome == Outcome.OK, result.summary
    assert result.summary == "All 3 required env vars are set for staging (Preview (all branches))."
    assert result.data["missing"] == [] and result.data["outdated"] == []
    for header in ("key", "present", "last updated", "verdict"):
        assert header in result.details
    assert "2023-11-14 22:13 UTC" in result.details
    assert_no_values(result, vc)
    call = env_calls(vc)[0]
    assert call["query"] == {}  # no decrypt=true, no filters
    assert call["headers"]["Authorization"] == f"Bearer {vc.state.token}"


async def test_missing_keys_fail_and_are_named(vc: Vercel) -> None:
    vc.add("OPENAI_API_KEY", ["preview", "production"])
    vc.add("REDIS_URL", ["production"])  # production only: not staging's
    result = await StepHarness(vc.settings()).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Staging (Preview (all branches)) is missing 2 of 3 required env vars: "
        "ANTHROPIC_API_KEY, REDIS_URL."
    )
    assert result.data["missing"] == ["ANTHROPIC_API_KEY", "REDIS_URL"]
    assert result.details.count("missing") == 2
    assert_no_values(result, vc)


async def test_production_newer_than_staging_warns(vc: Vercel) -> None:
    for key in KEYS:
        vc.add(key, ["preview"], updated=T0)
    vc.add("ANTHROPIC_API_KEY", ["production"], updated=T0 + DAY_MS)
    vc.add("REDIS_URL", ["production"], updated=T0 - DAY_MS)
    result = await StepHarness(vc.settings()).run("secrets_present")
    assert result.outcome == Outcome.WARN
    assert result.summary == (
        "Production updated after staging for ANTHROPIC_API_KEY; check staging has the latest keys."
    )
    assert result.data["outdated"] == ["ANTHROPIC_API_KEY"]
    assert "production updated after staging" in result.details
    assert_no_values(result, vc)


async def test_preview_branch_target(vc: Vercel) -> None:
    vc.add("OPENAI_API_KEY", ["preview"], git_branch="staging")
    vc.add("ANTHROPIC_API_KEY", ["preview"])  # all branches: applies too
    vc.add("REDIS_URL", ["preview"], git_branch="feature-x")  # another branch: does not
    result = await StepHarness(vc.settings(VERCEL_TARGET="preview:staging")).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.data["missing"] == ["REDIS_URL"]
    assert "Preview for branch staging" in result.summary
    # Plain `preview` does not count branch-only vars.
    result = await StepHarness(vc.settings(VERCEL_TARGET="preview")).run("secrets_present")
    assert result.data["missing"] == ["OPENAI_API_KEY", "REDIS_URL"]


async def test_branch_specific_copy_wins_for_freshness(vc: Vercel) -> None:
    for key in KEYS:
        vc.add(key, ["preview"], updated=T0 - 2 * DAY_MS)
        vc.add(key, ["production"], updated=T0 - DAY_MS)
        vc.add(key, ["preview"], git_branch="staging", updated=T0)
    result = await StepHarness(vc.settings(VERCEL_TARGET="preview:staging")).run("secrets_present")
    assert result.outcome == Outcome.OK, result.summary
    result = await StepHarness(vc.settings(VERCEL_TARGET="preview")).run("secrets_present")
    assert result.outcome == Outcome.WARN
    assert result.data["outdated"] == KEYS


@pytest.mark.parametrize("target", ["staging", "env_stg123"])
async def test_custom_environment_target_by_slug_or_id(vc: Vercel, target: str) -> None:
    for key in KEYS[:2]:
        vc.add(key, [], custom_environment_ids=["env_stg123"])
    vc.add("REDIS_URL", ["preview"])  # Preview is not the custom environment
    result = await StepHarness(vc.settings(VERCEL_TARGET=target)).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Staging (custom environment staging) is missing 1 of 3 required env vars: REDIS_URL."
    )
    assert result.data["target"] == "custom environment staging"
    assert_no_values(result, vc)


async def test_unknown_custom_environment_fails_clearly(vc: Vercel) -> None:
    result = await StepHarness(vc.settings(VERCEL_TARGET="qa")).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Cannot tell which Vercel env vars are staging's: VERCEL_TARGET 'qa' is not `preview`, "
        "`preview:<branch>` or a custom environment of the project (custom environments: staging)."
    )


async def test_team_id_is_sent(vc: Vercel) -> None:
    vc.state.team_id = "team_abc"
    for key in KEYS:
        vc.add(key, ["preview"])
    result = await StepHarness(vc.settings(VERCEL_TEAM_ID="team_abc")).run("secrets_present")
    assert result.outcome == Outcome.OK, result.summary
    assert env_calls(vc)[0]["query"] == {"teamId": "team_abc"}
    result = await StepHarness(vc.settings()).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith("Could not list the Vercel project's env vars: Vercel: 403:")


async def test_401_is_a_clear_failure(vc: Vercel) -> None:
    result = await StepHarness(vc.settings(VERCEL_TOKEN="tok_wrong_1234")).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Could not list the Vercel project's env vars: Vercel: 401: the Vercel token was rejected "
        "or cannot read this project's environment variables."
    )
    assert "tok_wrong_1234" not in result.model_dump_json()


async def test_429_with_retry_after_then_success(vc: Vercel) -> None:
    for key in KEYS:
        vc.add(key, ["preview"])
    vc.faults.add(ENV_PATH, 429, retry_after=1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await StepHarness(vc.settings()).run("secrets_present")
    assert result.outcome == Outcome.OK, result.summary
    assert loop.time() - start >= 0.9
    assert len(env_calls(vc)) == 2


async def test_500_retried_then_success(vc: Vercel) -> None:
    for key in KEYS:
        vc.add(key, ["preview"])
    vc.faults.add(ENV_PATH, 500, times=2)
    result = await StepHarness(vc.settings()).run("secrets_present")
    assert result.outcome == Outcome.OK, result.summary
    assert len(env_calls(vc)) == 3


async def test_persistent_500_is_a_clear_failure(vc: Vercel) -> None:
    vc.faults.add(ENV_PATH, 500, times=10)
    result = await StepHarness(vc.settings()).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Could not list the Vercel project's env vars: Vercel: server error 500 "
        "(gave up after 3 attempts)."
    )


async def test_timeout_is_a_clear_failure(vc: Vercel) -> None:
    vc.faults.add(ENV_PATH, 0, delay=1.0, times=3)
    result = await StepHarness(vc.settings(HTTP_TIMEOUT_SECONDS=0.2)).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.summary.startswith("Could not list the Vercel project's env vars: Vercel: timed out")
    assert "gave up after 3 attempts" in result.summary


async def test_malformed_json_fails_without_quoting_the_body(vc: Vercel) -> None:
    vc.add("OPENAI_API_KEY", ["preview"])
    leaked = vc.values()[0]
    vc.faults.add(ENV_PATH, 200, body='{"envs": [{"key": "OPENAI_API_KEY", "value": "' + leaked)
    result = await StepHarness(vc.settings()).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.summary == (
        "Could not list the Vercel project's env vars: Vercel: answered the env var list with "
        "malformed JSON."
    )
    assert leaked not in result.model_dump_json()


async def test_custom_environment_lookup_faults_fail_clearly(vc: Vercel) -> None:
    vc.faults.add(r"custom-environments", 200, body="not json")
    result = await StepHarness(vc.settings(VERCEL_TARGET="staging")).run("secrets_present")
    assert result.outcome == Outcome.FAIL
    assert result.summary.endswith("answered the custom environment list with malformed JSON.")


async def test_pagination_is_followed_with_until() -> None:
    pages = {
        None: {"envs": [{"key": "A", "value": "secret-a", "type": "encrypted", "target": "preview",
                         "updatedAt": 5}], "pagination": {"count": 1, "next": 111, "prev": None}},
        "111": {"envs": [{"key": "B", "value": "secret-b", "type": "encrypted",
                          "target": ["preview", "production"], "updatedAt": 6}],
                "pagination": {"count": 1, "next": None, "prev": 111}},
    }
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return httpx.Response(200, json=pages[request.url.params.get("until")])

    async with httpx.AsyncClient(base_url="https://api.test",
                                 transport=httpx.MockTransport(handler)) as client:
        envs = await list_env_meta(client, "prj_1", {"teamId": "t"})
    assert [e.key for e in envs] == ["A", "B"]
    assert envs[0].targets == ("preview",) and envs[1].targets == ("preview", "production")
    assert seen == [{"teamId": "t"}, {"teamId": "t", "until": "111"}]
    assert "secret" not in repr(envs)
