"""Rollback end to end through Slack: the real Bolt app over HTTP with signed requests, the Slack
emulator, and the Vercel/Supabase emulators and sandbox staging app behind the bot."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bot.chat.blocks import ROLLBACK_ACTION
from bot.runbook.model import ReleaseStatus, utcnow
from handlers.rollback import CALLBACK_ID, CHOSEN, CONFIRM, REASON, TICKETS
from tests.mock_slack_api import response_url_for
from tests.slack_e2e import CHANNEL, SlackHarness, blocks_of
from tests.test_rollback import DOMAIN, REF, VERCEL_TOKEN, Env, deploy_data, env  # noqa: F401

RUNBOOK = """
name: e2e
phases:
  - name: validate
    concurrent: true
    steps:
      - name: smoke
      - name: health
"""
ENG = "C0ENG"


def bot_settings(env: Env, tmp_path: Path, **extra: Any) -> dict[str, Any]:  # noqa: F811
    runbook = tmp_path / "runbook.yml"
    runbook.write_text(RUNBOOK)
    return env.values(RUNBOOK_PATH=str(runbook), ENGINEERING_CHANNEL=ENG, **extra)


async def two_releases(slack: SlackHarness, env: Env) -> str:  # noqa: F811
    """Releases #1 (old deployment) and #2 (new, serving); returns #2's parent ts."""
    for number, (ref, dep) in enumerate([("release/1.0.0", env.old), ("release/1.2.0", env.new)],
                                        start=1):
        await slack.command(f"start {ref}")
        release = await slack.finished(number)
        assert release.status == ReleaseStatus.SUCCEEDED
        release.data.setdefault("steps", {})["deploy"] = deploy_data(dep)  # as the deploy step does
        slack.runtime.store.save_release(release)
    second = slack.runtime.store.get_release(2)
    assert second is not None and second.thread_ts is not None
    return second.thread_ts


def view_values(reason: str, tickets: str, actions: list[str], confirm: str = "") -> dict[str, Any]:
    return {
        REASON: {"value": {"type": "plain_text_input", "value": reason}},
        TICKETS: {"value": {"type": "plain_text_input", "value": tickets or None}},
        CHOSEN: {"value": {"type": "checkboxes",
                           "selected_options": [{"value": a} for a in actions]}},
        CONFIRM: {"value": {"type": "plain_text_input", "value": confirm or None}},
    }


async def submit(slack: SlackHarness, view: dict[str, Any], values: dict[str, Any],
                 user: str = "U0ALICE") -> httpx.Response:
    submitted = {**view, "state": {"values": values}}
    payload = {
        "type": "view_submission",
        "team": {"id": slack.state.team_id, "domain": "sandbox"},
        "user": {"id": user, "username": user.lower(), "team_id": slack.state.team_id},
        "api_app_id": "A0RELEASEBOT",
        "token": "legacy-verification-token",
        "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}",
        "view": submitted,
        "response_urls": [],
    }
    return await slack.interact(payload)




def view_of(call: dict[str, Any]) -> dict[str, Any]:
    raw = call["view"]
    return json.loads(raw) if isinstance(raw, str) else raw


async def test_button_form_and_submission_roll_back_and_announce_with_links(
        tmp_path: Path, env: Env) -> None:  # noqa: F811
    async with SlackHarness(tmp_path, **bot_settings(env, tmp_path)) as slack:
        ts = await two_releases(slack, env)
        assert ROLLBACK_ACTION in json.dumps(blocks_of(slack.updates(ts)[-1]))  # the button

        response, key = await slack.press(ROLLBACK_ACTION, "2", message_ts=ts)
        assert response.status_code == 200
        # how fast the form opens is the bench's to measure (acks against bare Bolt), not a test's
        opened = await slack.wait_for(lambda: slack.state.calls_to("views.open"), 30, "views.open")
        form = view_of(opened[0])
        assert form["callback_id"] == CALLBACK_ID
        assert json.loads(form["private_metadata"]) == {"release": 2, "channel": CHANNEL,
                                                        "target": env.old.id}
        text = json.dumps(form["blocks"])
        assert env.old.id in text and DOMAIN in text and "release #1" in text
        # The refreshed form (Vercel, Supabase and Redis asked) replaces it.
        updated = await slack.wait_for(lambda: slack.state.calls_to("views.update"), 10,
                                       "views.update")
        refreshed = view_of(updated[0])
        assert "point in time" in json.dumps(refreshed["blocks"])
        view = next(iter(slack.state.views.values()))

        response = await submit(slack, view, view_values(
            "Coach answers are empty", "ENG-42, https://github.com/acme/app/issues/7",
            ["deployment"]))
        assert response.status_code == 200 and not response.content

        def rolled_back() -> Any:
            release = slack.runtime.store.get_release(2)
            return release if release and release.status == ReleaseStatus.ROLLED_BACK else None

        release = await slack.wait_for(rolled_back, 30, "release #2 rolled back")
        assert env.serving() == env.old.id  # the alias really moved in the Vercel emulator
        trigger = release.fields["Rollback Trigger (if used)"]
        assert "Coach answers are empty" in trigger and "U0ALICE" in trigger and "ENG-42" in trigger

        announced = await slack.wait_for(
            lambda: [c for c in slack.state.calls_to("chat.postMessage")
                     if c.get("channel") == ENG], 10, "announcement")
        in_thread = await slack.wait_for(
            lambda: [t for t in slack.thread(ts) if "Rollback of release #2" in t.get("text", "")],
            10, "thread announcement")
        for message in (announced[-1]["text"], in_thread[-1]["text"]):
            assert "<@U0ALICE>" in message and "Coach answers are empty" in message
            assert "<https://linear.app/acme/issue/ENG-42|ENG-42>" in message
            assert "<https://github.com/acme/app/issues/7>" in message
            # Both deployment links resolve to the right deployments in the Vercel emulator.
            async with httpx.AsyncClient(base_url=env.vercel_url,
                                         headers={"Authorization": f"Bearer {VERCEL_TOKEN}"}) as api:
                for dep in (env.new, env.old):
                    link = f"<https://{dep.url}|{dep.id}>"
                    assert link in message
                    found = await api.get(f"/v13/deployments/{dep.url}")
                    assert found.status_code == 200 and found.json()["id"] == dep.id
        parent = await slack.wait_for(
            lambda: [u for u in slack.updates(ts) if "Rolled back by" in u.get("text", "")], 10,
            "parent update")
        assert ROLLBACK_ACTION not in json.dumps(blocks_of(parent[-1]))
        assert slack.runtime.store.rollback_actions(2)[0]["outcome"] == "ok"
        assert not slack.responses(key)  # no whisper: all went through


async def test_slash_command_form_checks_the_typed_ref_and_refuses_a_second_rollback(
        tmp_path: Path, env: Env) -> None:  # noqa: F811
    async with SlackHarness(tmp_path, **bot_settings(env, tmp_path)) as slack:
        await two_releases(slack, env)
        response, _ = await slack.command("rollback 2 coach is down")
        assert response.status_code == 200
        opened = await slack.wait_for(lambda: slack.state.calls_to("views.open"), 5, "views.open")
        form = view_of(opened[0])
        reason = next(b for b in form["blocks"] if b.get("block_id") == REASON)
        assert reason["element"]["initial_value"] == "coach is down"
        view = next(iter(slack.state.views.values()))

        wrong = await submit(slack, view, view_values("coach is down", "", ["backup"], "nope"))
        assert wrong.status_code == 200
        assert wrong.json() == {"response_action": "errors",
                                "errors": {CONFIRM: f"Type {REF} to confirm the restore."}}
        none = await submit(slack, view, view_values("coach is down", "", []))
        assert none.json()["errors"] == {CHOSEN: "Choose at least one action."}
        assert env.supabase.restores == []

        # Another process holds the rollback of #2: the form and the button say so.
        slack.runtime.store.claim_rollback(2, "U0BOB", utcnow(), 3600)
        busy = await submit(slack, view, view_values("coach is down", "", ["deployment"]))
        assert "already under way" in busy.json()["errors"][REASON]
        _, key = await slack.press(ROLLBACK_ACTION, "2")
        whisper = await slack.wait_response(key)
        assert "by <@U0BOB> is already under way" in whisper["text"]
        assert whisper["response_type"] == "ephemeral"
        assert env.serving() == env.new.id
        assert slack.runtime.rollbacks.busy(2) is not None


async def test_expired_trigger_and_non_operators_are_told(tmp_path: Path, env: Env) -> None:  # noqa: F811
    settings = bot_settings(env, tmp_path, RELEASE_OPERATORS="U0ALICE")
    async with SlackHarness(tmp_path, **settings) as slack:
        await two_releases(slack, env)
        _, key = await slack.press(ROLLBACK_ACTION, "2", user="U0MALLORY")
        refused = await slack.wait_response(key)
        assert "only release operators can roll back" in refused["text"]
        assert not slack.state.calls_to("views.open")

        key = uuid.uuid4().hex[:12]
        slack.state.expired_triggers.add(f"trigger-{key}")
        payload = {
            "type": "block_actions",
            "team": {"id": slack.state.team_id, "domain": "sandbox"},
            "user": {"id": "U0ALICE", "username": "alice", "team_id": slack.state.team_id},
            "api_app_id": "A0RELEASEBOT", "token": "legacy-verification-token",
            "container": {"type": "message", "message_ts": "1.0", "channel_id": CHANNEL},
            "trigger_id": f"trigger-{key}", "channel": {"id": CHANNEL, "name": "releases"},
            "message": {"ts": "1.0", "text": ""},
            "response_url": response_url_for(slack.slack_url, key),
            "actions": [{"action_id": ROLLBACK_ACTION, "block_id": "b", "value": "2",
                         "type": "button", "action_ts": f"{time.time():.6f}"}],
        }
        await slack.interact(payload)
        expired = await slack.wait_response(key)
        assert "expired_trigger_id" in expired["text"] and "release-bot rollback 2" in expired["text"]
        assert env.serving() == env.new.id
