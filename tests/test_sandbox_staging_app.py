"""The sandbox staging app answers with the real Pocket Philosopher routes' wire shapes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import pairwise

import httpx
import pytest
from aiohttp import web
from httpx_sse import aconnect_sse

from sandbox.server import CALLS_KEY, FAULTS_KEY, serve
from sandbox.staging_app import (
    COACH_UNAVAILABLE,
    FONT_CACHE,
    FONT_PATH,
    StagingState,
    cookie_name,
    create_staging_app,
)


@dataclass
class Staging:
    state: StagingState
    app: web.Application
    client: httpx.AsyncClient
    base_url: str


@pytest.fixture
async def staging() -> AsyncIterator[Staging]:
    state = StagingState()
    app = create_staging_app(state)
    async with (
        serve(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        yield Staging(state, app, client, base_url)


async def sign_in(staging: Staging) -> httpx.Response:
    return await staging.client.post(
        "/api/auth",
        json={
            "action": "signIn",
            "email": staging.state.test_user_email,
            "password": staging.state.test_user_password,
        },
    )


async def read_events(
    client: httpx.AsyncClient, payload: dict[str, str]
) -> list[tuple[str, dict[str, object], float]]:
    events: list[tuple[str, dict[str, object], float]] = []
    async with aconnect_sse(client, "POST", "/api/marcus", json=payload) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            events.append((sse.event, json.loads(sse.data), time.monotonic()))
    return events


COACH_PAYLOAD = {"message": "I feel overwhelmed by work", "persona": "marcus", "mode": "coach"}


# --- dashboard ---------------------------------------------------------------------------


async def test_dashboard_renders_marker_and_registers_service_worker(staging: Staging) -> None:
    response = await staging.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Pocket Philosopher" in response.text
    assert "/sw.js" in response.text
    assert 'rel="manifest"' in response.text


async def test_dashboard_marker_status_and_empty_follow_state(staging: Staging) -> None:
    staging.state.dashboard_marker = "Release 1.2.0"
    assert "Release 1.2.0" in (await staging.client.get("/")).text
    staging.state.dashboard_empty = True
    empty = await staging.client.get("/")
    assert empty.status_code == 200
    assert empty.text == ""
    staging.state.dashboard_status = 500
    assert (await staging.client.get("/")).status_code == 500


async def test_scripted_faults_and_call_recording_apply(staging: Staging) -> None:
    staging.app[FAULTS_KEY].add(r"GET /api/health", 500)
    assert (await staging.client.get("/api/health")).status_code == 500
    assert (await staging.client.get("/api/health")).status_code == 200
    assert [call["path"] for call in staging.app[CALLS_KEY]] == ["/api/health"] * 2


# --- health ------------------------------------------------------------------------------


async def test_health_ok_shape(staging: Staging) -> None:
    response = await staging.client.get("/api/health")
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data["status"] == "ok"
    assert data["timestamp"].endswith("Z")
    deps = data["dependencies"]
    assert deps["supabase"] == {"status": "ok", "latencyMs": 14, "message": None}
    assert deps["analytics"] == {"status": "ok"}
    config = deps["aiProviders"]["configuration"]
    assert config == {
        "openai": "configured",
        "anthropic": "configured",
        "together": "missing",
        "ollama": "missing",
    }
    stats = deps["aiProviders"]["stats"]
    assert stats["openai"]["status"] == "healthy"
    assert isinstance(stats["openai"]["latencyMs"], int)
    assert stats["together"]["status"] == "unavailable"
    assert deps["aiProviders"]["selection"]["providerId"] == "openai"


async def test_health_supabase_down_is_503_with_details(staging: Staging) -> None:
    staging.state.supabase_ok = False
    response = await staging.client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False
    assert body["error"] == "Health check failed"
    details = body["details"]
    assert details["status"] == "degraded"
    assert details["dependencies"]["supabase"]["status"] == "error"
    assert details["dependencies"]["supabase"]["message"] == staging.state.supabase_error


async def test_health_provider_flags(staging: Staging) -> None:
    staging.state.providers = {"openai": False, "anthropic": False}
    staging.state.analytics_enabled = False
    staging.state.provider_status["ollama"] = "degraded"
    deps = (await staging.client.get("/api/health")).json()["data"]["dependencies"]
    assert set(deps["aiProviders"]["configuration"].values()) == {"missing"}
    assert deps["aiProviders"]["selection"] is None
    assert deps["aiProviders"]["stats"]["ollama"]["status"] == "degraded"
    assert deps["analytics"]["status"] == "disabled"


# --- auth --------------------------------------------------------------------------------


async def test_sign_in_sets_supabase_cookie(staging: Staging) -> None:
    response = await sign_in(staging)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    session = body["data"]["session"]
    assert session["token_type"] == "bearer"
    assert session["access_token"].count(".") == 2
    assert body["data"]["user"]["email"] == staging.state.test_user_email
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{cookie_name(staging.state)}=base64-")
    assert cookie_name(staging.state) == "sb-ppstaging-auth-token"
    assert "Path=/" in set_cookie
    assert "SameSite=Lax" in set_cookie


async def test_sign_in_wrong_password_is_400(staging: Staging) -> None:
    response = await staging.client.post(
        "/api/auth",
        json={"action": "signIn", "email": staging.state.test_user_email, "password": "nope-nope"},
    )
    assert response.status_code == 400
    assert response.json() == {"success": False, "error": "Invalid login credentials"}
    assert "set-cookie" not in response.headers


async def test_auth_unknown_action_and_bad_payload_are_400(staging: Staging) -> None:
    unknown = await staging.client.post("/api/auth", json={"action": "hack"})
    assert unknown.status_code == 400
    body = unknown.json()
    assert body["success"] is False
    assert body["error"] == "Invalid payload"
    assert "action" in body["details"]["fieldErrors"]
    not_json = await staging.client.post("/api/auth", content=b"{", headers={"content-type": "x"})
    assert not_json.status_code == 400
    short = await staging.client.post(
        "/api/auth", json={"action": "signIn", "email": "a@b.co", "password": "123"}
    )
    assert short.status_code == 400
    assert "password" in short.json()["details"]["fieldErrors"]


async def test_sign_out_invalidates_session(staging: Staging) -> None:
    await sign_in(staging)
    assert staging.state.sessions
    response = await staging.client.delete("/api/auth")
    assert response.json() == {"success": True, "data": {"success": True}}
    assert not staging.state.sessions


async def test_long_session_is_chunked_into_numbered_cookies(staging: Staging) -> None:
    staging.state.test_user_email = "x" * 1200 + "@pocketphilosopher.app"
    response = await sign_in(staging)
    names = {cookie.name for cookie in staging.client.cookies.jar}
    assert response.status_code == 200
    base = cookie_name(staging.state)
    assert {f"{base}.0", f"{base}.1"} <= names
    stream = await read_events(staging.client, COACH_PAYLOAD)
    assert stream[-1][0] == "complete"


# --- the coach ---------------------------------------------------------------------------


async def test_marcus_without_session_is_401(staging: Staging) -> None:
    response = await staging.client.post("/api/marcus", json=COACH_PAYLOAD)
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Unauthorized"}


async def test_marcus_with_forged_cookie_is_401(staging: Staging) -> None:
    staging.client.cookies.set(cookie_name(staging.state), "base64-eyJhY2Nlc3NfdG9rZW4iOiJ4In0")
    response = await staging.client.post("/api/marcus", json=COACH_PAYLOAD)
    assert response.status_code == 401


async def test_marcus_streams_start_chunks_complete(staging: Staging) -> None:
    await sign_in(staging)
    events = await read_events(staging.client, COACH_PAYLOAD)
    names = [name for name, _, _ in events]
    assert names[0] == "start"
    assert names[-1] == "complete"
    assert names.count("chunk") >= 3
    start = events[0][1]
    assert set(start) == {"conversation_id", "message_id", "persona_id"}
    assert start["persona_id"] == "marcus"
    chunks = [data for name, data, _ in events if name == "chunk"]
    assert all(set(chunk) == {"delta", "tokens"} for chunk in chunks)
    text = "".join(str(chunk["delta"]) for chunk in chunks)
    assert "overwhelmed" in text
    complete = events[-1][1]
    assert complete["message_id"] == start["message_id"]
    assert complete["citations"]
    assert isinstance(complete["tokens"], int) and complete["tokens"] > 0


async def test_marcus_chunks_arrive_incrementally(staging: Staging) -> None:
    await sign_in(staging)
    staging.state.chunk_delay = 0.1
    staging.state.chunk_count = 4
    events = await read_events(staging.client, COACH_PAYLOAD)
    chunk_times = [at for name, _, at in events if name == "chunk"]
    assert len(chunk_times) == 4
    # Each chunk was read on its own, about chunk_delay after the previous one.
    assert events[-1][2] - chunk_times[0] >= 0.25
    gaps = [b - a for a, b in pairwise(chunk_times)]
    assert min(gaps) >= 0.05


async def test_marcus_slow_first_chunk(staging: Staging) -> None:
    await sign_in(staging)
    staging.state.first_chunk_delay = 0.4
    events = await read_events(staging.client, COACH_PAYLOAD)
    start_at = events[0][2]
    first_chunk_at = next(at for name, _, at in events if name == "chunk")
    assert first_chunk_at - start_at >= 0.3


async def test_marcus_without_citations(staging: Staging) -> None:
    await sign_in(staging)
    staging.state.citations = []
    events = await read_events(staging.client, COACH_PAYLOAD)
    assert events[-1][0] == "complete"
    assert events[-1][1]["citations"] == []


async def test_marcus_no_provider_configured_streams_error(staging: Staging) -> None:
    await sign_in(staging)
    staging.state.providers = {pid: False for pid in staging.state.providers}
    events = await read_events(staging.client, COACH_PAYLOAD)
    assert [name for name, _, _ in events] == ["start", "error"]
    assert events[1][1] == {"message": COACH_UNAVAILABLE}


async def test_marcus_error_mid_stream(staging: Staging) -> None:
    await sign_in(staging)
    staging.state.fail_after_chunks = 2
    events = await read_events(staging.client, COACH_PAYLOAD)
    assert [name for name, _, _ in events] == ["start", "chunk", "chunk", "error"]


async def test_marcus_bad_payload_is_400(staging: Staging) -> None:
    await sign_in(staging)
    response = await staging.client.post("/api/marcus", json={"persona": "marcus"})
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid payload"


# --- PWA ---------------------------------------------------------------------------------


async def test_pwa_assets(staging: Staging) -> None:
    manifest = await staging.client.get("/manifest.webmanifest")
    assert manifest.json()["name"] == "Pocket Philosopher"
    sw = await staging.client.get("/sw.js")
    assert sw.headers["content-type"].startswith("application/javascript")
    assert FONT_CACHE in sw.text
    assert FONT_PATH in sw.text
    assert "/offline" in sw.text
    font = await staging.client.get(FONT_PATH)
    assert font.headers["content-type"] == "font/woff2"
    assert font.content.startswith(b"wOF2")
    offline = await staging.client.get("/offline")
    assert "<h1>You're offline</h1>" in offline.text


async def test_broken_pwa_service_worker_caches_nothing(staging: Staging) -> None:
    staging.state.pwa_broken = True
    sw = await staging.client.get("/sw.js")
    assert sw.status_code == 200
    assert FONT_CACHE not in sw.text
    assert "caches.open" not in sw.text


async def test_version_and_commit_header_report_the_serving_commit(staging: Staging) -> None:
    unknown = await staging.client.get("/api/version")
    assert unknown.status_code == 404 and unknown.json() == {"success": False, "error": "Not found"}
    assert "x-commit-sha" not in (await staging.client.get("/")).headers

    staging.state.commit = "c0ffee" * 6 + "abcd"
    answer = await staging.client.get("/api/version")
    assert answer.status_code == 200
    assert answer.json()["data"] == {"commit": staging.state.commit, "buildId": "sandbox"}
    assert (await staging.client.get("/")).headers["x-commit-sha"] == staging.state.commit

    serving = ["a" * 40]
    staging.state.commit_source = lambda: serving[0]  # e.g. whatever the staging alias serves
    assert (await staging.client.get("/api/version")).json()["data"]["commit"] == "a" * 40
    serving[0] = "b" * 40  # the domain moved: the next request reports the other build
    assert (await staging.client.get("/api/version")).json()["data"]["commit"] == "b" * 40
    assert (await staging.client.get("/api/health")).headers["x-commit-sha"] == "b" * 40
