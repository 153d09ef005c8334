"""The shared retry policy: Retry-After on 429 and on GitHub-style 403 rate limits."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.providers.http import ProviderError, make_client, retry_after_seconds, send


def transport(responses: list[httpx.Response]) -> httpx.MockTransport:
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        return queue.pop(0)

    return httpx.MockTransport(handler)


async def test_403_with_retry_after_is_a_rate_limit_and_is_retried() -> None:
    t = transport([httpx.Response(403, headers={"Retry-After": "0"}, json={"message": "secondary"}),
                   httpx.Response(200, json={"ok": True})])
    async with make_client("https://api.example.test", transport=t) as client:
        response = await send(client, "GET", "/x", provider="GitHub")
    assert response.json() == {"ok": True}


async def test_plain_403_is_an_auth_failure_not_retried() -> None:
    t = transport([httpx.Response(403, json={"message": "nope"})])
    async with make_client("https://api.example.test", transport=t) as client:
        with pytest.raises(ProviderError, match="403: the token was rejected"):
            await send(client, "GET", "/x", provider="GitHub")


async def test_persistent_429_gives_up_with_a_sentence() -> None:
    t = transport([httpx.Response(429, headers={"Retry-After": "0"})] * 3)
    async with make_client("https://api.example.test", transport=t) as client:
        with pytest.raises(ProviderError, match=r"rate limited \(429, Retry-After 0s\) after 3 attempts"):
            await send(client, "GET", "/x", provider="Vercel")


def test_retry_after_accepts_seconds_and_dates_and_caps() -> None:
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "7"})) == 7
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "9999"})) == 60
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": past})) == 0
    assert retry_after_seconds(httpx.Response(429)) == 1


async def test_a_request_that_creates_something_is_not_sent_twice_after_a_5xx() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(502)

    async with make_client("https://api.example.test", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ProviderError, match="not retried: the request may have been carried out"):
            await send(client, "POST", "/v13/deployments", provider="Vercel", idempotent=False)
    assert sent == ["POST"]


async def test_deploy_timeout_creates_one_deployment_and_a_retry_reuses_it() -> None:
    from sandbox.server import FAULTS_KEY, serve
    from sandbox.vercel import VercelState, create_vercel_app
    from tests.helpers import StepHarness, make_settings

    state = VercelState()
    project = state.add_project("app", project_id="prj_app")
    app = create_vercel_app(state)
    app[FAULTS_KEY].add("POST /v13/deployments", 0, delay=1.0, times=1)  # slow, then succeeds
    async with serve(app) as url:
        settings = make_settings(VERCEL_API_URL=url, VERCEL_TOKEN=state.token,
                                 VERCEL_PROJECT_ID=project.id, GITHUB_REPOSITORY="acme/app",
                                 HTTP_TIMEOUT_SECONDS=0.3, DEPLOY_POLL_SECONDS=0.01)
        harness = StepHarness(settings)
        harness.release.git_sha = "a" * 40
        first = await harness.run("deploy")
        assert first.outcome.value == "fail" and "not retried" in first.summary
        await asyncio.sleep(1.0)  # the slow request lands
        assert len(state.deployments) == 1
        second = await harness.run("deploy")
    assert second.outcome.value == "ok", second.summary
    assert second.data["reused"] is True and len(state.deployments) == 1


async def test_a_retry_after_longer_than_the_bot_waits_fails_saying_so() -> None:
    t = transport([httpx.Response(429, headers={"Retry-After": "600"})])
    async with make_client("https://api.example.test", transport=t) as client:
        with pytest.raises(ProviderError, match="asks to wait 600s, longer than the bot waits"):
            await send(client, "GET", "/x", provider="PostHog")
