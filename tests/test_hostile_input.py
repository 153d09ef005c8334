"""Hostile input over HTTP: the real Bolt app behind aiohttp, probed the way anyone on the internet
could. Unsigned or malformed requests are refused before parsing and change nothing; a signed
request is acted on once; odd signed payloads get a clear answer, never a 500 or a traceback;
`response_url` is only ever Slack; text people type never pings a channel or hides a link."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aiohttp import web

from bot.chat.blocks import GATE_ACTION_PREFIX, RETRY_ACTION, ROLLBACK_ACTION
from bot.runbook.model import ReleaseStatus
from bot.slack_request import Verifier
from handlers.rollback import CALLBACK_ID
from sandbox.server import serve
from tests.slack_e2e import CHANNEL, SIGNING_SECRET, SlackHarness
from tests.test_rollback import Env, env  # noqa: F401
from tests.test_rollback_slack import bot_settings, submit, two_releases, view_values

RUNBOOK = """
name: tiny
phases:
  - name: report
    steps:
      - name: monitoring_links
"""


def tiny(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """Settings for a release that runs one quick, real step (monitoring links)."""
    path = tmp_path / "tiny.yml"
    path.write_text(RUNBOOK)
    return {"RUNBOOK_PATH": str(path), "STAGING_URL": "https://staging.pocket.test", **extra}


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.exc_info or "Traceback" in r.getMessage() or r.levelno >= logging.ERROR]


def no_body_logged(caplog: pytest.LogCaptureFixture, marker: str) -> None:
    assert not any(marker in r.getMessage() for r in caplog.records)


# --- unsigned and malformed: refused before anything is parsed --------------------------------
async def test_a_megabyte_unsigned_request_is_refused_while_healthz_keeps_answering(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with SlackHarness(tmp_path) as slack:
        body = "pad=" + "qwertyuiop" * 100_000  # about 1 MB of letters, as in the report
        events: list[str] = []

        async def big(i: int) -> httpx.Response:
            response = await slack.http.post(
                "/slack/events", content=body, timeout=120,
                headers={"X-Slack-Signature": "v0=bad", "X-Slack-Request-Timestamp": "1",
                         "Content-Type": "application/x-www-form-urlencoded"})
            events.append(f"big{i}")
            return response

        async def health(i: int) -> httpx.Response:
            response = await slack.http.get("/healthz", timeout=120)
            events.append(f"health{i}")
            return response

        results = await asyncio.gather(*(coro for i in range(3) for coro in (big(i), health(i))))
        assert [r.status_code for r in results] == [401, 200] * 3
        assert sorted(events) == sorted([f"big{i}" for i in range(3)]
                                        + [f"health{i}" for i in range(3)])
        # With a valid-looking signature the body is hashed, still refused, still not logged.
        signed_wrong = slack.signed_headers(body, secret="not-the-secret")
        refused = await slack.http.post("/slack/events", content=body, headers=signed_wrong,
                                        timeout=120)
        assert refused.status_code == 401
        assert "Server" not in refused.headers
        assert (await slack.http.get("/healthz")).status_code == 200
        no_body_logged(caplog, "qwertyuiop")
        assert tracebacks(caplog) == []
        assert slack.runtime.store.list_releases() == []


async def test_an_oversized_signature_header_is_refused_without_hashing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[int] = []
    original = Verifier.is_valid

    def counting(self: Verifier, *args: Any, **kwargs: Any) -> bool:
        hashed.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Verifier, "is_valid", counting)
    async with SlackHarness(tmp_path) as slack:
        body = urlencode({"command": "/release", "text": "start main"})
        headers = slack.signed_headers(body)
        headers["X-Slack-Signature"] = "v0=" + "a" * 8000
        response = await slack.http.post("/slack/events", content=body, headers=headers)
        assert response.status_code == 401 and "malformed signature" in response.text
        assert hashed == []
        assert slack.runtime.store.list_releases() == []


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"\xff\xfe\x00bad", "application/x-www-form-urlencoded", 400),
    (b"[1, 2]", "application/json", 400),
    (b"null", "application/json", 400),
    (b"payload=%5B%5D", "application/x-www-form-urlencoded", 400),
    (b"payload=%7Bnot-json", "application/x-www-form-urlencoded", 400),
    (b"payload=" + b"%5B" * 20_000, "application/x-www-form-urlencoded", 400),
    (b'{"type": "url_verification"', "application/json", 400),
])
async def test_signed_bodies_slack_would_never_send_are_400(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str,
        status: int) -> None:
    async with SlackHarness(tmp_path) as slack:
        ts = str(int(time.time()))
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": Verifier(SIGNING_SECRET).signature(ts, body)}
        response = await slack.http.post("/slack/events", content=body, headers=headers)
        assert response.status_code == status
        unsigned = await slack.http.post("/slack/events", content=body,
                                         headers={"Content-Type": content_type})
        assert unsigned.status_code == 401
        bad_ts = {**headers, "X-Slack-Request-Timestamp": "soon"}
        assert (await slack.http.post("/slack/events", content=body,
                                      headers=bad_ts)).status_code == 401
        assert tracebacks(caplog) == []
        assert slack.runtime.store.list_releases() == []


# --- each signed request is acted on once ------------------------------------------------------
async def test_a_replayed_signed_start_makes_one_release(tmp_path: Path) -> None:
    async with SlackHarness(tmp_path, **tiny(tmp_path)) as slack:
        fields = {"command": "/release", "text": "start main", "user_id": "U0ALICE",
                  "channel_id": CHANNEL, "team_id": slack.state.team_id,
                  "response_url": f"{slack.slack_url}/response/replay", "trigger_id": "t-1"}
        body = urlencode(fields)
        headers = slack.signed_headers(body)
        first = await slack.http.post("/slack/events", content=body, headers=headers)
        assert first.status_code == 200
        await slack.finished(1)
        again = await slack.http.post("/slack/events", content=body, headers=headers)
        retry = await slack.http.post("/slack/events", content=body,
                                      headers={**headers, "X-Slack-Retry-Num": "1",
                                               "X-Slack-Retry-Reason": "http_timeout"})
        assert again.status_code == 200 and retry.status_code == 200
        assert not again.content and not retry.content
        await asyncio.sleep(0.2)
        assert [r.id for r in slack.runtime.store.list_releases()] == [1]
        assert len(slack.parent_posts()) == 1
        # A new request (new timestamp and signature) is a new command, and is acted on.
        reply, key = await slack.command("status")
        assert "Release #1" in (await slack.answer(reply, key))["text"]


async def test_replays_are_remembered_in_redis_across_bot_processes(
        tmp_path: Path, redis_server: Any) -> None:
    async with SlackHarness(tmp_path, **tiny(tmp_path, REDIS_URL=redis_server.url)) as slack:
        fields = {"command": "/release", "text": "start main", "user_id": "U0ALICE",
                  "channel_id": CHANNEL, "response_url": f"{slack.slack_url}/response/r2"}
        body = urlencode(fields)
        headers = slack.signed_headers(body)
        assert (await slack.http.post("/slack/events", content=body,
                                      headers=headers)).status_code == 200
        await slack.finished(1)
        await slack.stop_bot()
        await slack.start_bot(**tiny(tmp_path, REDIS_URL=redis_server.url,
                                     DATABASE_PATH=str(tmp_path / "other.db")))
        again = await slack.http.post("/slack/events", content=body, headers=headers)
        assert again.status_code == 200 and not again.content
        await asyncio.sleep(0.2)
        assert slack.runtime.store.list_releases() == []  # the second process did nothing


async def test_a_replayed_rollback_submission_rolls_back_once(
        tmp_path: Path, env: Env) -> None:  # noqa: F811
    async with SlackHarness(tmp_path, **bot_settings(env, tmp_path)) as slack:
        ts = await two_releases(slack, env)
        await slack.press(ROLLBACK_ACTION, "2", message_ts=ts)
        await slack.wait_for(lambda: slack.state.calls_to("views.update"), 10, "views.update")
        view = next(iter(slack.state.views.values()))
        submitted = {**view, "state": {"values": view_values("Coach is down", "", ["deployment"])}}
        payload = {"type": "view_submission", "team": {"id": slack.state.team_id},
                   "user": {"id": "U0ALICE"}, "api_app_id": "A0RELEASEBOT",
                   "trigger_id": "trigger-x", "view": submitted, "response_urls": []}
        body = urlencode({"payload": json.dumps(payload)})
        headers = slack.signed_headers(body)
        for _ in range(3):
            response = await slack.http.post("/slack/events", content=body, headers=headers)
            assert response.status_code == 200
        await slack.wait_for(
            lambda: (r := slack.runtime.store.get_release(2)) and r.status ==
            ReleaseStatus.ROLLED_BACK, what="the rollback")
        await asyncio.sleep(0.3)
        rows = slack.runtime.store.db.execute(
            "select count(distinct rollback_id) from rollback_actions where release_id = 2"
        ).fetchone()
        assert rows[0] == 1
        announced = [c for c in slack.state.calls_to("chat.postMessage")
                     if "Rollback of release #2" in str(c.get("text"))]
        assert len(announced) == 2  # the engineering channel and the thread, once each


# --- text people type stays text -----------------------------------------------------------------
async def test_a_rollback_reason_and_tickets_cannot_ping_or_hide_links(
        tmp_path: Path, env: Env) -> None:  # noqa: F811
    async with SlackHarness(tmp_path, **bot_settings(env, tmp_path)) as slack:
        ts = await two_releases(slack, env)
        await slack.press(ROLLBACK_ACTION, "2", message_ts=ts)
        await slack.wait_for(lambda: slack.state.calls_to("views.update"), 10, "views.update")
        view = next(iter(slack.state.views.values()))
        reason = "<!channel> <!here> <@U123> <https://evil.example|click> & more"
        await submit(slack, view, view_values(reason, "https://evil.example/x|PP-142, PP-7",
                                              ["deployment"]))
        posts = await slack.wait_for(
            lambda: [c for c in slack.state.calls_to("chat.postMessage")
                     if "Rollback of release #2" in str(c.get("text"))], what="announcement")
        for post in posts:
            text = str(post["text"]) + json.dumps(post.get("blocks") or "")
            for forbidden in ("<!channel>", "<!here>", "<@U123>", "<https://evil", "|PP-142>"):
                assert forbidden not in text, forbidden
            assert "&lt;!channel&gt;" in text
        stored = slack.runtime.store.get_release(2)
        assert stored is not None and reason in stored.fields["Rollback Trigger (if used)"]


async def test_notes_and_unknown_words_are_escaped_in_replies(tmp_path: Path) -> None:
    async with SlackHarness(tmp_path, **tiny(tmp_path)) as slack:
        response, _ = await slack.command("deploy <!channel>")
        assert "<!channel>" not in response.json()["text"]
        response, _ = await slack.command("start <!here>")
        assert "<!here>" not in response.json()["text"]


# --- signed but odd payloads: an answer, never a 500 -----------------------------------------------
async def test_signed_odd_payloads_get_an_answer_and_change_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with SlackHarness(tmp_path, **tiny(tmp_path)) as slack:
        await slack.command("start main")
        before = (await slack.finished(1)).model_dump_json()
        button = {"type": "block_actions", "user": {"id": "U0ALICE"}, "api_app_id": "A0",
                  "container": {"channel_id": CHANNEL}, "channel": {"id": CHANNEL},
                  "trigger_id": "t", "response_url": f"{slack.slack_url}/response/odd"}
        odd: list[dict[str, Any]] = [
            {**button, "actions": [{"action_id": RETRY_ACTION, "value": "9" * 30}]},
            {**button, "actions": [{"action_id": RETRY_ACTION, "value": None}]},
            {**button, "actions": [{"action_id": ROLLBACK_ACTION, "value": "9" * 30}]},
            {**button, "actions": [{"action_id": f"{GATE_ACTION_PREFIX}apply",
                                    "value": '{"release": 1e999, "step": "x", "gate": "y"}'}]},
            {**button, "actions": [{"action_id": f"{GATE_ACTION_PREFIX}apply", "value": "[]"}]},
            {**button, "user": None, "actions": [{"action_id": RETRY_ACTION, "value": "1"}]},
            {**button, "user": "U0ALICE", "actions": [{"action_id": RETRY_ACTION, "value": "1"}]},
            {**button, "actions": []},
            {**button, "actions": [{"value": "1"}]},  # no action_id
            {**button, "actions": [{"action_id": 7, "value": "1"}]},
            {"type": "view_submission", "user": {"id": "U0ALICE"}, "view": {"state": {}}},
            {"type": "view_submission", "user": {"id": "U0ALICE"},
             "view": {"callback_id": CALLBACK_ID, "private_metadata": '{"release": 1e999}',
                      "state": {"values": []}}},
            {"type": "view_submission", "user": None,
             "view": {"callback_id": CALLBACK_ID, "private_metadata": "[]", "state": None}},
        ]
        for payload in odd:
            response = await slack.interact(payload)
            assert response.status_code in (200, 404), (payload, response.text)
        await asyncio.sleep(0.3)
        assert tracebacks(caplog) == []
        assert slack.runtime.store.get_release(1).model_dump_json() == before
        assert [r.id for r in slack.runtime.store.list_releases()] == [1]


async def test_status_of_a_huge_release_id_is_an_answer(tmp_path: Path) -> None:
    async with SlackHarness(tmp_path, **tiny(tmp_path)) as slack:
        response, _ = await slack.command("status " + "9" * 30)
        assert response.status_code == 200
        assert "is not a release id" in response.json()["text"]


# --- response_url is only ever Slack -------------------------------------------------------------
async def test_replies_never_go_to_a_foreign_response_url(tmp_path: Path) -> None:
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(await request.text())
        return web.Response(text="ok")

    foreign = web.Application()
    foreign.router.add_route("*", "/{tail:.*}", record)
    async with serve(foreign) as evil, SlackHarness(tmp_path, **tiny(tmp_path)) as slack:
        base = {"command": "/release", "user_id": "U0ALICE", "channel_id": CHANNEL,
                "team_id": slack.state.team_id, "response_url": f"{evil}/hook"}
        for text in ("status", "start main --dry-run"):  # answered in the acknowledgement
            response = await slack.post_form({**base, "text": text})
            assert response.status_code == 200 and response.json()["text"]
        for text in ("start main", "log"):  # answered later, never to the foreign URL
            response = await slack.post_form({**base, "text": text})
            assert response.status_code == 200
            await slack.finished(1)
        ephemerals = await slack.wait_for(
            lambda: len(slack.state.calls_to("chat.postEphemeral")) >= 2 and
            slack.state.calls_to("chat.postEphemeral"), what="two ephemeral answers")
        assert all(e["user"] == "U0ALICE" and e["channel"] == CHANNEL for e in ephemerals)
        assert seen == []
        # No response_url at all: the answer still comes, and nothing raises.
        del base["response_url"]
        await slack.post_form({**base, "text": "log"})
        await slack.wait_for(lambda: len(slack.state.calls_to("chat.postEphemeral")) >= 3,
                             what="a third ephemeral answer")
        assert seen == []


async def test_a_rollback_command_without_trigger_id_explains_and_rolls_nothing_back(
        tmp_path: Path, env: Env) -> None:  # noqa: F811
    async with SlackHarness(tmp_path, **bot_settings(env, tmp_path)) as slack:
        await two_releases(slack, env)
        serving = env.serving()
        key = "notrigger"
        await slack.post_form({"command": "/release", "text": "rollback 2 coach is down",
                               "user_id": "U0ALICE", "channel_id": CHANNEL,
                               "response_url": f"{slack.slack_url}/response/{key}"})
        answer = await slack.wait_response(key)
        assert "form" in answer["text"] and "nothing was rolled back" in answer["text"]
        assert env.serving() == serving
        assert slack.runtime.store.get_release(2).status == ReleaseStatus.SUCCEEDED
        assert slack.state.calls_to("views.open") == []


async def test_replies_share_one_http_session(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers import safety

    opened: list[Any] = []
    original = safety.Sessions.get

    def counting(self: safety.Sessions) -> Any:
        session = original(self)
        if session not in opened:
            opened.append(session)
        return session

    monkeypatch.setattr(safety.Sessions, "get", counting)
    async with SlackHarness(tmp_path, **tiny(tmp_path)) as slack:
        keys = [(await slack.command(text))[1] for text in ("log", "log 5", "log")]
        for key in keys:
            await slack.wait_response(key)
        assert len(opened) == 1 and not opened[0].closed
    assert opened[0].closed  # closed when the bot stopped


def test_the_http_server_will_not_start_without_a_signing_secret(tmp_path: Path) -> None:
    # `check()` is the one signature check (Bolt's own is off), so a server without a secret to
    # check with must not exist: not even built from a Socket Mode app, which needs none.
    from bot.app import build_bolt_app
    from bot.config import MissingSetting
    from bot.server import create_web_app
    from tests.helpers import make_settings

    for secret in (None, ""):
        settings = make_settings(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET=secret,
                                 DATABASE_PATH=str(tmp_path / "log.db"))
        app, runtime = build_bolt_app(settings, socket_mode=True)
        with pytest.raises(MissingSetting, match="SLACK_SIGNING_SECRET"):
            create_web_app(app, runtime)
