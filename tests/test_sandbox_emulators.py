"""Tests of the sandbox emulators over real HTTP: happy paths, vendor error shapes, spec fields."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from sandbox.github import GitHubState, create_github_app
from sandbox.posthog import PostHogState, create_posthog_app
from sandbox.server import FAULTS_KEY, serve
from sandbox.supabase_api import Backup, Migration, SupabaseState, create_supabase_app
from sandbox.vercel import (
    ERROR,
    NEVER,
    BuildScript,
    CustomEnvironment,
    DeployHook,
    VercelState,
    create_vercel_app,
)
from tests.helpers import vendor_specs
from tests.mock_slack_api import SlackState, create_slack_app, response_url_for

SPECS = vendor_specs()
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def client_for(app: web.Application, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with serve(app) as base, httpx.AsyncClient(base_url=base, headers=headers) as client:
        yield client


# --- Vercel ---------------------------------------------------------------------------------


def vercel_state(**kwargs: Any) -> VercelState:
    state = VercelState(token="vt", team_id="team_1", clock=NOW.timestamp, **kwargs)
    project = state.add_project("pocket", project_id="prj_pocket", production_domains=["app.example.test"])
    project.custom_environments.append(
        CustomEnvironment("env_staging", "staging", branch="staging", domains=["staging.example.test"])
    )
    state.add_env(project, "OPENAI_API_KEY", "sk-live-secret", target=["preview", "production"])
    state.add_env(project, "POSTHOG_API_KEY", "phc_x", custom_environment_ids=["env_staging"])
    state.branch_heads["staging"] = "a" * 40
    return state


T = {"teamId": "team_1"}


async def _deploy(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    payload = {
        "name": "pocket",
        "project": "prj_pocket",
        "gitSource": {"type": "github", "org": "acme", "repo": "app", "ref": "staging"},
        **body,
    }
    response = await client.post("/v13/deployments", params=T, json=payload)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_vercel_deploy_progresses_to_ready_and_lists_logs_and_aliases() -> None:
    state = vercel_state()
    async with client_for(create_vercel_app(state), "vt") as client:
        created = await _deploy(client, customEnvironmentSlugOrId="staging")
        assert created["id"].startswith("dpl_")
        assert created["readyState"] == "QUEUED"
        assert created["meta"]["githubCommitSha"] == "a" * 40
        assert created["customEnvironment"]["slug"] == "staging"
        seen = []
        for _ in range(3):
            seen.append((await client.get(f"/v13/deployments/{created['id']}", params=T)).json())
        assert [d["readyState"] for d in seen] == ["QUEUED", "BUILDING", "READY"]
        assert seen[-1]["ready"] >= seen[-1]["createdAt"]
        assert state.aliases["staging.example.test"] == created["id"]

        events = (await client.get(f"/v3/deployments/{created['id']}/events", params=T)).json()
        texts = [e["payload"]["text"] for e in events]
        assert "PostgREST connection established" in texts and "GoTrue connection ok" in texts
        assert all(e["type"] in ("stdout", "stderr", "command") for e in events)

        listed = (
            await client.get("/v6/deployments", params={**T, "projectId": "prj_pocket", "state": "READY"})
        ).json()
        assert [d["uid"] for d in listed["deployments"]] == [created["id"]]
        assert listed["pagination"]["count"] == 1
        by_sha = await client.get("/v6/deployments", params={**T, "sha": "b" * 40})
        assert by_sha.json()["deployments"] == []


async def test_vercel_alias_moves_and_reports_old_deployment() -> None:
    state = vercel_state(build_script=BuildScript(queued_polls=0, building_polls=0))
    async with client_for(create_vercel_app(state), "vt") as client:
        first = await _deploy(client)
        second = await _deploy(client)
        one = await client.post(
            f"/v2/deployments/{first['id']}/aliases", params=T, json={"alias": "s.example.test"}
        )
        assert one.status_code == 200 and one.json()["oldDeploymentId"] is None
        two = await client.post(
            f"/v2/deployments/{second['id']}/aliases", params=T, json={"alias": "s.example.test"}
        )
        assert two.json()["oldDeploymentId"] == first["id"]
        assert state.aliases["s.example.test"] == second["id"]
        again = await client.post(
            f"/v2/deployments/{second['id']}/aliases", params=T, json={"alias": "s.example.test"}
        )
        assert again.status_code == 409
        read = (await client.get("/v4/aliases/s.example.test", params=T)).json()
        assert read[0]["deploymentId"] == second["id"]
        back = await client.post(
            f"/v2/deployments/{first['id']}/aliases", params=T, json={"alias": "s.example.test"}
        )
        assert back.json()["oldDeploymentId"] == second["id"]
        assert state.aliases["s.example.test"] == first["id"]


async def test_vercel_failures_never_finishing_and_errors() -> None:
    state = vercel_state(build_queue=[BuildScript(outcome=ERROR, log=[]), BuildScript(outcome=NEVER)])
    async with client_for(create_vercel_app(state), "vt") as client:
        failing, stuck = await _deploy(client), await _deploy(client)
        for _ in range(3):
            final = (await client.get(f"/v13/deployments/{failing['id']}", params=T)).json()
        assert final["readyState"] == "ERROR" and "exited with 1" in final["errorMessage"]
        events = (await client.get(f"/v3/deployments/{failing['id']}/events", params=T)).json()
        assert not any("PostgREST" in e["payload"]["text"] for e in events)
        assert events[-1]["type"] == "stderr"
        for _ in range(10):
            still = (await client.get(f"/v13/deployments/{stuck['id']}", params=T)).json()
        assert still["readyState"] == "BUILDING"
        not_ready = await client.post(
            f"/v2/deployments/{stuck['id']}/aliases", params=T, json={"alias": "x.test"}
        )
        assert not_ready.status_code == 400

        assert (await client.get("/v13/deployments/dpl_missing", params=T)).status_code == 404
        wrong_team = await client.get(f"/v13/deployments/{stuck['id']}", params={"teamId": "team_2"})
        assert wrong_team.status_code == 403
        bad = await client.get("/v6/deployments", params=T, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.json()["error"]["invalidToken"] is True


async def test_vercel_env_never_leaks_plaintext_and_filters_custom_env() -> None:
    state = vercel_state()
    async with client_for(create_vercel_app(state), "vt") as client:
        body = (await client.get("/v10/projects/pocket/env", params=T)).json()
        assert {e["key"] for e in body["envs"]} == {"OPENAI_API_KEY", "POSTHOG_API_KEY"}
        assert "sk-live-secret" not in json.dumps(body)
        staging = (
            await client.get("/v10/projects/prj_pocket/env", params={**T, "customEnvironmentSlug": "staging"})
        ).json()
        assert [e["key"] for e in staging["envs"]] == ["POSTHOG_API_KEY"]
        assert staging["envs"][0]["customEnvironmentIds"] == ["env_staging"]
        assert (await client.get("/v10/projects/nope/env", params=T)).status_code == 404


async def test_vercel_promote_rollback_and_deploy_hook() -> None:
    state = vercel_state(build_script=BuildScript(queued_polls=0, building_polls=0))
    state.branch_heads["main"] = "c" * 40
    state.deploy_hooks["hook1"] = DeployHook("prj_pocket", "main")
    async with client_for(create_vercel_app(state), "vt") as client:
        hook = await client.post("/v1/integrations/deploy/prj_pocket/hook1", headers={"Authorization": ""})
        assert hook.status_code == 201 and hook.json()["job"]["state"] == "PENDING"
        prod_old = state.deployments[state.hook_jobs[0]["deploymentId"]]
        assert prod_old.sha == "c" * 40 and prod_old.target == "production"
        assert state.aliases["app.example.test"] == prod_old.id
        prod_new = await _deploy(client, target="production")
        assert state.aliases["app.example.test"] == prod_new["id"]
        rolled = await client.post(
            f"/v1/projects/prj_pocket/rollback/{prod_old.id}", params={**T, "description": "bad release"}
        )
        assert rolled.status_code == 201 and state.aliases["app.example.test"] == prod_old.id
        assert state.promotions[-1]["description"] == "bad release"
        promoted = await client.post(f"/v10/projects/prj_pocket/promote/{prod_new['id']}", params=T)
        assert promoted.status_code == 201 and state.aliases["app.example.test"] == prod_new["id"]
        preview = await _deploy(client)
        refused = await client.post(f"/v1/projects/prj_pocket/rollback/{preview['id']}", params=T)
        assert refused.status_code == 400
        assert (await client.post("/v1/integrations/deploy/prj_pocket/nope")).status_code == 404


async def test_vercel_faults_from_server_apply() -> None:
    state = vercel_state()
    app = create_vercel_app(state)
    app[FAULTS_KEY].add(r"GET /v6/deployments", 429, retry_after=3)
    async with client_for(app, "vt") as client:
        limited = await client.get("/v6/deployments", params=T)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
        assert (await client.get("/v6/deployments", params=T)).status_code == 200


def _spec() -> dict[str, Any] | None:
    path = SPECS / "vercel-api.openapi.json"
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is required in CI")
        pytest.skip(f"{path} not present")
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return spec


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _missing_required(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> list[str]:
    """Required properties absent from `value`; for oneOf, those of the closest alternative."""
    schema = _resolve(spec, schema)
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        results = [_missing_required(spec, alt, value, where) for alt in alternatives]
        return min(results, key=len)
    if schema.get("type") == "array" and isinstance(value, list):
        return [
            m for item in value for m in _missing_required(spec, schema.get("items", {}), item, where + "[]")
        ]
    if schema.get("type") != "object" or not isinstance(value, dict):
        return []
    missing = [f"{where}.{name}" for name in schema.get("required", []) if name not in value]
    for name, sub in schema.get("properties", {}).items():
        if name in value and value[name] is not None:
            missing += _missing_required(spec, sub, value[name], f"{where}.{name}")
    return missing


def _response_schema(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    return schema


async def test_vercel_responses_carry_the_specs_required_properties() -> None:
    spec = _spec()
    assert spec is not None
    state = vercel_state()
    async with client_for(create_vercel_app(state), "vt") as client:
        created = await _deploy(client)
        deployment = (await client.get(f"/v13/deployments/{created['id']}", params=T)).json()
        envs = (await client.get("/v10/projects/prj_pocket/env", params=T)).json()
        listed = (await client.get("/v6/deployments", params=T)).json()
    deployment_schema = _resolve(spec, _response_schema(spec, "/v13/deployments/{idOrUrl}", "get"))
    # Hold the deployment to the owner's (fullest) variant, not merely the closest one.
    owner_variant = max(
        deployment_schema["oneOf"], key=lambda alt: len(_resolve(spec, alt).get("required", []))
    )
    assert _missing_required(spec, owner_variant, deployment, "deployment") == []
    assert (
        _missing_required(spec, _response_schema(spec, "/v13/deployments", "post"), created, "created") == []
    )
    env_schema = _response_schema(spec, "/v10/projects/{idOrName}/env", "get")
    paginated = [
        alt for alt in env_schema["oneOf"] if "pagination" in _resolve(spec, alt).get("properties", {})
    ]
    assert paginated and _missing_required(spec, paginated[0], envs, "env") == []
    assert _missing_required(spec, _response_schema(spec, "/v6/deployments", "get"), listed, "list") == []


async def test_vercel_alias_lookup_and_assignment_follow_the_spec() -> None:
    spec = _spec()
    assert spec is not None
    state = vercel_state(build_script=BuildScript(queued_polls=0, building_polls=0))
    async with client_for(create_vercel_app(state), "vt") as client:
        first = await _deploy(client)
        second = await _deploy(client)
        assert (await client.get("/v4/aliases/s.example.test", params=T)).status_code == 404
        assigned = await client.post(
            f"/v2/deployments/{first['id']}/aliases", params=T, json={"alias": "s.example.test"}
        )
        moved = await client.post(
            f"/v2/deployments/{second['id']}/aliases", params=T, json={"alias": "s.example.test"}
        )
        by_name = await client.get("/v4/aliases/s.example.test", params=T)
        (alias,) = by_name.json()
        by_uid = await client.get(f"/v4/aliases/{alias['uid']}", params=T)
        mine = await client.get("/v4/aliases/s.example.test", params={**T, "projectId": "prj_pocket"})
        other = await client.get("/v4/aliases/s.example.test", params={**T, "projectId": "prj_other"})
        listed = await client.get(f"/v2/deployments/{second['id']}/aliases", params=T)
        events = await client.get(f"/v3/deployments/{second['id']}/events", params=T)
        no_team = await client.get("/v4/aliases/s.example.test")
    assert assigned.json()["oldDeploymentId"] is None
    assert moved.json()["oldDeploymentId"] == first["id"]
    assert alias["deploymentId"] == second["id"] and alias["deployment"]["id"] == second["id"]
    assert alias["projectId"] == "prj_pocket" and alias["alias"] == "s.example.test"
    assert json.loads(alias["deployment"]["meta"])["githubCommitSha"] == "a" * 40  # a JSON string
    assert by_uid.json()[0]["alias"] == "s.example.test"
    assert mine.status_code == 200 and other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert no_team.status_code == 403
    assert state.serving("s.example.test") is not None and state.serving_sha("s.example.test") == "a" * 40
    assert "s.example.test" in [a["alias"] for a in listed.json()["aliases"]]
    checks = [
        ("/v4/aliases/{idOrAlias}", "get", by_name.json()),
        ("/v2/deployments/{id}/aliases", "post", moved.json()),
        ("/v2/deployments/{id}/aliases", "get", listed.json()),
        ("/v3/deployments/{idOrUrl}/events", "get", events.json()),
    ]
    for path, method, body in checks:
        assert _missing_required(spec, _response_schema(spec, path, method), body, path) == []
    kinds = spec["paths"]["/v3/deployments/{idOrUrl}/events"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]["items"]["oneOf"][0]["properties"]["type"]["enum"]
    assert {e["type"] for e in events.json()} <= set(kinds)


# --- GitHub ---------------------------------------------------------------------------------


def github_state() -> GitHubState:
    state = GitHubState(token="gt", repo="acme/app", clock=NOW.timestamp)
    state.add_commit("main", "Initial commit")
    state.branch_from("staging", "main")
    state.add_commit("main", "Add coach streaming", pr_title="Coach: stream answers with citations")
    state.add_commit("main", "Fix offline fonts", pr_title="PWA: cache fonts offline")
    return state


async def test_github_compare_merge_and_pulls() -> None:
    state = github_state()
    async with client_for(create_github_app(state), "gt") as client:
        compared = (await client.get("/repos/acme/app/compare/staging...main")).json()
        assert compared["status"] == "ahead" and compared["ahead_by"] == 2 and compared["total_commits"] == 2
        assert [c["commit"]["message"] for c in compared["commits"]] == [
            "Add coach streaming",
            "Fix offline fonts",
        ]
        head_sha = compared["commits"][-1]["sha"]
        pulls = (await client.get(f"/repos/acme/app/commits/{head_sha}/pulls")).json()
        assert pulls[0]["title"] == "PWA: cache fonts offline" and pulls[0]["html_url"].endswith("/pull/2")

        merged = await client.post("/repos/acme/app/merges", json={"base": "staging", "head": "main"})
        assert merged.status_code == 201
        assert merged.json()["commit"]["message"] == "Merge main into staging"
        assert state.head("staging") == merged.json()["sha"]
        again = await client.post("/repos/acme/app/merges", json={"base": "staging", "head": "main"})
        assert again.status_code == 204
        commit = (await client.get("/repos/acme/app/commits/staging")).json()
        assert commit["sha"] == merged.json()["sha"] and len(commit["parents"]) == 2
        after = (await client.get("/repos/acme/app/compare/staging...main")).json()
        assert after["status"] == "behind" and after["ahead_by"] == 0


async def test_github_errors_conflict_unknown_auth_and_rate_limit() -> None:
    state = github_state()
    state.conflicts.add(("staging", "main"))
    app = create_github_app(state)
    app[FAULTS_KEY].add(
        r"GET /repos/acme/app/compare", 403, retry_after=60, body='{"message": "rate limited"}'
    )
    async with client_for(app, "gt") as client:
        conflict = await client.post("/repos/acme/app/merges", json={"base": "staging", "head": "main"})
        assert conflict.status_code == 409 and conflict.json()["message"] == "Merge conflict"
        assert "documentation_url" in conflict.json()
        missing = await client.post("/repos/acme/app/merges", json={"base": "nope", "head": "main"})
        assert missing.status_code == 404 and missing.json()["message"] == "Base does not exist"
        no_head = await client.post("/repos/acme/app/merges", json={"base": "main", "head": "nope"})
        assert no_head.status_code == 404
        limited = await client.get("/repos/acme/app/compare/staging...main")
        assert limited.status_code == 403 and limited.headers["Retry-After"] == "60"
        assert (await client.get("/repos/acme/app/compare/staging...ghost")).status_code == 404
        assert (await client.get("/repos/other/repo/commits/main")).status_code == 404
        denied = await client.get("/repos/acme/app/commits/main", headers={"Authorization": "token bad"})
        assert denied.status_code == 401 and denied.json()["message"] == "Bad credentials"


# --- PostHog --------------------------------------------------------------------------------


def posthog_state() -> PostHogState:
    state = PostHogState(personal_api_key="phx", project_api_key="phc", project_id=42, clock=NOW.timestamp)
    state.add_event("i_chat_completed", NOW - timedelta(minutes=5), "staging-user-1", environment="staging")
    state.add_event("i_chat_completed", NOW - timedelta(hours=3), "prod-user-9", environment="production")
    state.add_event("i_request_failed", NOW - timedelta(minutes=30), "staging-user-2", environment="staging")
    return state


async def _hogql(client: httpx.AsyncClient, query: str) -> httpx.Response:
    return await client.post(
        "/api/projects/42/query/", json={"query": {"kind": "HogQLQuery", "query": query}}
    )


async def test_posthog_freshness_and_count_queries() -> None:
    state = posthog_state()
    async with client_for(create_posthog_app(state), "phx") as client:
        fresh = await _hogql(
            client,
            "SELECT event, max(timestamp) FROM events "
            "WHERE event IN ('i_chat_completed', 'i_request_failed', 'i_provider_health_changed') "
            "GROUP BY event",
        )
        body = fresh.json()
        assert fresh.status_code == 200 and body["columns"] == ["event", "max(timestamp)"]
        assert body["results"] == [
            ["i_chat_completed", "2024-05-01T11:55:00Z"],
            ["i_request_failed", "2024-05-01T11:30:00Z"],
        ]
        assert body["is_cached"] is False and body["types"][1][1].startswith("DateTime")

        since = "SELECT count(), max(timestamp) FROM events WHERE event = 'i_chat_completed' AND "
        by_prefix = await _hogql(
            client, since + "timestamp >= toDateTime('2024-05-01 11:00:00') AND distinct_id LIKE 'staging-%'"
        )
        assert by_prefix.json()["results"] == [[1, "2024-05-01T11:55:00Z"]]
        by_property = await _hogql(
            client, since + "timestamp > now() - INTERVAL 1 DAY AND properties.environment = 'staging'"
        )
        assert by_property.json()["results"][0][0] == 1
        none = await _hogql(client, since + "timestamp >= toDateTime('2024-06-01 00:00:00')")
        assert none.json()["results"] == [[0, "1970-01-01T00:00:00Z"]]


async def test_posthog_errors_and_ingestion() -> None:
    state = posthog_state()
    async with client_for(create_posthog_app(state), "phx") as client:
        bad = await _hogql(client, "SELECT * FROM persons")
        assert bad.status_code == 400 and bad.json()["type"] == "validation_error"
        assert {"code", "detail"} <= set(bad.json())
        unauth = await client.post("/api/projects/42/query/", json={}, headers={"Authorization": ""})
        assert unauth.status_code == 401 and unauth.json()["code"] == "not_authenticated"
        assert unauth.json()["type"] == "authentication_error"
        other = await _hogql(client, "SELECT count() FROM events")
        assert other.json()["results"] == [[3]]

        batch = {
            "api_key": "phc",
            "batch": [
                {
                    "event": "release_started",
                    "distinct_id": "bot",
                    "properties": {"sha": "abc"},
                    "timestamp": "2024-05-01T12:00:00+00:00",
                }
            ],
        }
        assert (await client.post("/batch/", json=batch)).json() == {"status": 1}
        assert state.events[-1].event == "release_started" and state.events[-1].properties["sha"] == "abc"
        rejected = await client.post("/capture/", json={"api_key": "wrong", "event": "x", "distinct_id": "d"})
        assert rejected.status_code == 401


# --- Supabase -------------------------------------------------------------------------------


def supabase_state() -> SupabaseState:
    return SupabaseState(
        access_token="sbp",
        ref="pocketstagingrefabcd",
        migrations=[Migration("20240101000000", "init"), Migration("20240420120000", "coach_sessions")],
        backups=[Backup(1, "2024-04-30T00:00:00Z")],
        clock=NOW.timestamp,
    )


async def test_supabase_health_migrations_backups_and_pitr() -> None:
    state = supabase_state()
    base = "/v1/projects/pocketstagingrefabcd"
    async with client_for(create_supabase_app(state), "sbp") as client:
        health = (await client.get(f"{base}/health", params={"services": "auth,rest,db"})).json()
        assert [(h["name"], h["healthy"], h["status"]) for h in health] == [
            ("auth", True, "ACTIVE_HEALTHY"),
            ("rest", True, "ACTIVE_HEALTHY"),
            ("db", True, "ACTIVE_HEALTHY"),
        ]
        assert health[0]["info"]["name"] == "GoTrue"
        migrations = (await client.get(f"{base}/database/migrations")).json()
        assert migrations[-1] == {"version": "20240420120000", "name": "coach_sessions"}
        backups = (await client.get(f"{base}/database/backups")).json()
        assert backups["pitr_enabled"] is True and backups["backups"][0]["is_physical_backup"] is True
        window = backups["physical_backup_data"]
        target = window["latest_physical_backup_date_unix"] - 600
        restored = await client.post(
            f"{base}/database/backups/restore-pitr", json={"recovery_time_target_unix": target}
        )
        assert restored.status_code == 201 and state.restores[-1]["recovery_time_target_unix"] == target
        statuses = []
        for _ in range(3):
            reads = (
                await client.get(f"{base}/health", params=[("services", "db"), ("services", "auth")])
            ).json()
            statuses.append(reads[0]["status"])
        assert statuses == ["COMING_UP", "COMING_UP", "ACTIVE_HEALTHY"]


async def test_supabase_errors() -> None:
    state = supabase_state()
    base = "/v1/projects/pocketstagingrefabcd"
    async with client_for(create_supabase_app(state), "sbp") as client:
        denied = await client.get(f"{base}/database/migrations", headers={"Authorization": "Bearer x"})
        assert denied.status_code == 401 and denied.json() == {"message": "Unauthorized"}
        assert (await client.get("/v1/projects/otherprojectrefabcde/health?services=db")).status_code == 403
        assert (await client.get(f"{base}/health")).status_code == 400
        too_old = await client.post(
            f"{base}/database/backups/restore-pitr", json={"recovery_time_target_unix": 1}
        )
        assert too_old.status_code == 400
        state.refuse_restore = "Restore already in progress"
        refused = await client.post(
            f"{base}/database/backups/restore-pitr",
            json={"recovery_time_target_unix": int(NOW.timestamp()) - 60},
        )
        assert refused.status_code == 400 and refused.json()["message"] == "Restore already in progress"
        assert state.restores == []
        state.refuse_restore = None
        assert (await client.post(f"{base}/database/backups/restore", json={"id": 99})).status_code == 400
        assert (await client.post(f"{base}/database/backups/restore", json={"id": 1})).status_code == 201


# --- Slack ----------------------------------------------------------------------------------


async def test_slack_messages_threads_views_and_permalinks() -> None:
    spec = SPECS / "slack-web-api.openapi2.json"
    state = SlackState(token="xoxb-t", spec_path=str(spec) if spec.is_file() else None)
    async with client_for(create_slack_app(state), "xoxb-t") as client:
        parent = (
            await client.post("/api/chat.postMessage", json={"channel": "#releases", "text": "Release"})
        ).json()
        assert parent["ok"] is True and parent["channel"] == "C0RELEASES"
        form = {
            "channel": "C0RELEASES",
            "thread_ts": parent["ts"],
            "text": "step 1",
            "blocks": json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "ok"}}]),
        }
        reply = (await client.post("/api/chat.postMessage", data=form)).json()
        assert reply["ok"] and float(reply["ts"]) > float(parent["ts"])
        assert reply["message"]["blocks"][0]["type"] == "section"
        updated = (
            await client.post(
                "/api/chat.update", json={"channel": "C0RELEASES", "ts": parent["ts"], "text": "Done"}
            )
        ).json()
        assert updated["ok"] and (state.find_message("C0RELEASES", parent["ts"]) or {}).get("text") == "Done"
        assert [m["text"] for m in state.thread_replies("C0RELEASES", parent["ts"])] == ["step 1"]
        assert len(state.calls_to("chat.postMessage")) == 2

        ephemeral = (
            await client.post(
                "/api/chat.postEphemeral", json={"channel": "C0RELEASES", "user": "U0ALICE", "text": "hi"}
            )
        ).json()
        assert ephemeral["ok"] and "message_ts" in ephemeral
        view = {"type": "modal", "title": {"type": "plain_text", "text": "Rollback"}, "blocks": []}
        opened = (await client.post("/api/views.open", json={"trigger_id": "t1", "view": view})).json()
        assert opened["ok"] and opened["view"]["id"].startswith("V")
        replaced = (
            await client.post("/api/views.update", json={"view_id": opened["view"]["id"], "view": view})
        ).json()
        assert replaced["ok"] and replaced["view"]["root_view_id"] == opened["view"]["id"]
        link = (
            await client.get(
                "/api/chat.getPermalink", params={"channel": "C0RELEASES", "message_ts": parent["ts"]}
            )
        ).json()
        assert link["permalink"].endswith("/archives/C0RELEASES/p" + parent["ts"].replace(".", ""))
        who = (await client.post("/api/auth.test")).json()
        assert who["ok"] and who["user_id"] == state.bot_user_id
        info = (await client.get("/api/conversations.info", params={"channel": "C0RELEASES"})).json()
        assert info["channel"]["name"] == "releases"
        user = (await client.get("/api/users.info", params={"user": "U0ALICE"})).json()
        assert user["user"]["real_name"] == "Alice Admin"


async def test_slack_errors_and_response_urls() -> None:
    state = SlackState(token="xoxb-t")
    async with serve(create_slack_app(state)) as base, httpx.AsyncClient(base_url=base) as client:
        bad = await client.post(
            "/api/chat.postMessage",
            json={"channel": "C0RELEASES", "text": "x"},
            headers={"Authorization": "Bearer xoxb-wrong"},
        )
        assert bad.status_code == 200 and bad.json() == {"ok": False, "error": "invalid_auth"}
        auth = {"Authorization": "Bearer xoxb-t"}
        assert (await client.post("/api/auth.test")).json()["error"] == "not_authed"
        assert (await client.post("/api/auth.test", data={"token": "xoxb-t"})).json()["ok"] is True
        missing = (await client.post("/api/chat.postMessage", json={"text": "x"}, headers=auth)).json()
        assert missing["error"] == "invalid_arguments"
        lost = (
            await client.post("/api/chat.postMessage", json={"channel": "#nope", "text": "x"}, headers=auth)
        ).json()
        assert lost["error"] == "channel_not_found"
        state.expired_triggers.add("old")
        view = {"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []}
        expired = (
            await client.post("/api/views.open", json={"trigger_id": "old", "view": view}, headers=auth)
        ).json()
        assert expired["error"] == "expired_trigger_id"
        assert (await client.post("/api/nope.method", headers=auth)).json()["error"] == "unknown_method"

        url = response_url_for(base, "cmd1")
        for index in range(5):
            sent = await client.post(url, json={"text": f"update {index}", "response_type": "ephemeral"})
            assert sent.status_code == 200
        assert (await client.post(url, json={"text": "sixth"})).status_code == 404
        assert [p["text"] for p in state.responses["cmd1"]] == [f"update {i}" for i in range(5)]


def test_slack_required_args_come_from_the_spec_when_given() -> None:
    spec = SPECS / "slack-web-api.openapi2.json"
    if not spec.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{spec} is required in CI")
        pytest.skip(f"{spec} not present")
    state = SlackState(spec_path=str(spec))
    assert state.required_args("chat.update") == ("channel", "ts")
    assert state.required_args("views.open") == ("trigger_id", "view")
    assert SlackState().required_args("chat.postEphemeral") == ("channel", "user")


# --- Real vendor clients against the emulators ---------------------------------------------


async def test_slack_sdk_client_talks_to_the_emulator() -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    state = SlackState(token="xoxb-t")
    async with serve(create_slack_app(state)) as base:
        client = AsyncWebClient(token="xoxb-t", base_url=f"{base}/api/")
        parent = await client.chat_postMessage(
            channel="C0RELEASES", text="Release", blocks=[{"type": "divider"}]
        )
        await client.chat_postMessage(channel="C0RELEASES", thread_ts=parent["ts"], text="step")
        await client.chat_update(channel="C0RELEASES", ts=parent["ts"], text="Release done")
        link = await client.chat_getPermalink(channel="C0RELEASES", message_ts=parent["ts"])
        info = await client.conversations_info(channel="C0RELEASES")
    assert parent["message"]["blocks"] == [{"type": "divider"}]
    assert [m["text"] for m in state.thread_replies("C0RELEASES", parent["ts"])] == ["step"]
    assert (state.find_message("C0RELEASES", parent["ts"]) or {}).get("text") == "Release done"
    assert link["permalink"].startswith("https://sandbox.slack.com/archives/C0RELEASES/p")
    assert info["channel"]["id"] == "C0RELEASES"


async def test_posthog_python_library_batches_reach_the_emulator() -> None:
    import asyncio

    from posthog import Posthog

    state = posthog_state()
    async with serve(create_posthog_app(state)) as base:
        client = Posthog("phc", host=base, sync_mode=True, gzip=True, max_retries=0)

        def send() -> None:
            client.capture("release_finished", distinct_id="release-bot", properties={"env": "staging"})
            client.shutdown()

        await asyncio.to_thread(send)
    sent = [e for e in state.events if e.event == "release_finished"]
    assert sent and sent[0].distinct_id == "release-bot" and sent[0].properties["env"] == "staging"
