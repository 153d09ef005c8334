"""End to end through the real Bolt app over HTTP, with signed requests and the Slack emulator."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bench.release_calls import TimedCalls
from bot.chat.blocks import RETRY_ACTION, ROLLBACK_ACTION
from bot.runbook.model import ReleaseStatus
from sandbox.staging_app import StagingState
from tests.slack_e2e import CHANNEL, POST_INTERVAL, SlackHarness

RUNBOOK = """
name: e2e
phases:
  - name: validate
    concurrent: true
    steps:
      - name: smoke
      - name: health
      - name: coach_stream
"""


def staging_settings(url: str, state: StagingState, tmp_path: Path) -> dict[str, Any]:
    runbook = tmp_path / "runbook.yml"
    runbook.write_text(RUNBOOK)
    return {
        "STAGING_URL": url,
        "STAGING_TEST_USER_EMAIL": state.test_user_email,
        "STAGING_TEST_USER_PASSWORD": state.test_user_password,
        "RUNBOOK_PATH": str(runbook),
    }


def texts(calls: list[dict[str, Any]]) -> list[str]:
    return [str(c.get("text", "")) for c in calls]


async def test_release_start_posts_parent_updates_and_one_summary_of_the_checks(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, state = staging
    async with SlackHarness(tmp_path, **staging_settings(url, state, tmp_path)) as slack:
        calls = TimedCalls()
        slack.state.calls = calls
        response, key = await slack.command("start release/1.2.0")
        assert response.status_code == 200  # (ack latency is measured by `make bench`)
        ack = await slack.wait_response(key)
        assert "Release #1" in ack["text"] and ack["response_type"] == "ephemeral"
        release = await slack.finished(1)
        assert release.status == ReleaseStatus.SUCCEEDED, [s.result for s in release.steps]

        parents = slack.parent_posts()
        assert len(parents) == 1
        parent = parents[0]
        assert "release/1.2.0" in parent["text"] and "U0ALICE" in parent["text"]
        assert json.loads(parent["blocks"]) if isinstance(parent["blocks"], str) else parent["blocks"]
        ts = release.thread_ts
        assert ts is not None
        updates = slack.updates(ts)
        assert updates, "the parent message was never updated"
        assert "Succeeded in" in updates[-1]["text"]
        replies = texts(slack.thread(ts))
        watch = replies.pop()  # the post-deploy watch's first check follows the last word
        assert "Post-deploy watch, check 1" in watch
        # The three concurrent checks are rows of one summary, not replies of their own.
        assert len(replies) == 2, replies
        summary, verdict = replies
        assert "*Validate summary*: 3 passed" in summary and "skipped" not in summary
        for title in ("Smoke test", "Health endpoint", "AI coach"):
            assert title in summary
        for step in release.steps:
            assert step.result is not None and step.result.summary[:90] in summary
        assert "Succeeded in" in verdict
        assert slack.runtime.store.get_release(1).status == ReleaseStatus.SUCCEEDED

        # Posts in the channel are paced: each one at least the pacer's interval after the last.
        posts = [at for (method, _), at in zip(calls, calls.times, strict=True)
                 if method == "chat.postMessage"]
        assert len(posts) == 4  # parent, summary, verdict, the watch's check
        assert all(b - a >= POST_INTERVAL for a, b in itertools.pairwise(posts))


async def test_bad_or_stale_signature_gets_401_and_starts_nothing(tmp_path: Path) -> None:
    async with SlackHarness(tmp_path) as slack:
        bad, _ = await slack.command("start main", secret="not-the-signing-secret")
        stale, _ = await slack.command("start main", timestamp=int(time.time()) - 60 * 10)
        assert bad.status_code == 401
        assert stale.status_code == 401
        assert slack.state.calls_to("chat.postMessage") == []
        assert slack.runtime.store.list_releases() == []


@pytest.mark.parametrize("text, expected", [
    ("deploy main", "Unknown subcommand `deploy`"),
    ("start main --force", "Unknown option `--force`"),
    ("start 'unbalanced", "could not read"),
    ("start ../etc", "not a valid branch"),
])
async def test_bad_command_text_gets_usage_ephemerally(tmp_path: Path, text: str, expected: str) -> None:
    async with SlackHarness(tmp_path) as slack:
        response, _ = await slack.command(text)
        assert response.status_code == 200
        body = response.json()
        assert body["response_type"] == "ephemeral"
        assert expected in body["text"] and "/release start" in body["text"]
        assert slack.runtime.store.list_releases() == []


async def test_help_and_bare_command_show_usage(tmp_path: Path) -> None:
    async with SlackHarness(tmp_path) as slack:
        for text in ("", "help"):
            response, _ = await slack.command(text)
            assert "/release start" in response.json()["text"]


async def test_dry_run_answers_with_the_plan_and_writes_nothing(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, state = staging
    async with SlackHarness(tmp_path, **staging_settings(url, state, tmp_path)) as slack:
        reply, key = await slack.command("start v1.2.0 --dry-run")
        plan = reply.json()  # answered in the acknowledgement itself, not later
        assert slack.responses(key) == []
        assert plan["response_type"] == "ephemeral"
        assert "Dry run" in plan["text"] and "Smoke test" in plan["text"]
        assert slack.runtime.store.list_releases() == []
        assert slack.state.calls_to("chat.postMessage") == []


async def test_unauthorized_user_is_refused_and_nothing_starts(tmp_path: Path) -> None:
    async with SlackHarness(tmp_path, RELEASE_OPERATORS="U0BOSS") as slack:
        response, _ = await slack.command("start main", user="U0MALLORY")
        body = response.json()
        assert "not a release operator" in body["text"] and body["response_type"] == "ephemeral"
        assert slack.runtime.store.list_releases() == []


async def test_failure_offers_retry_which_reopens_the_same_release(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, state = staging
    state.dashboard_status = 500
    async with SlackHarness(tmp_path, **staging_settings(url, state, tmp_path)) as slack:
        await slack.command("start main")
        failed = await slack.finished(1)
        assert failed.status == ReleaseStatus.FAILED
        assert failed.step("smoke").result.summary.endswith("answered 500")
        final = slack.updates(failed.thread_ts)[-1]
        blocks = final["blocks"] if isinstance(final["blocks"], list) else json.loads(final["blocks"])
        buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
        assert [b["action_id"] for b in buttons] == [RETRY_ACTION, ROLLBACK_ACTION]
        assert "Failed at Smoke test" in final["text"]

        # The bot keeps serving after a provider failure: the next command is answered.
        reply, key = await slack.command("status")
        assert "Failed at Smoke test" in (await slack.answer(reply, key))["text"]

        state.dashboard_status = 200
        response, _ = await slack.press(RETRY_ACTION, "1", message_ts=failed.thread_ts)
        assert response.status_code == 200
        retried = await slack.wait_for(
            lambda: (r := slack.runtime.store.get_release(1)) and r.status == ReleaseStatus.SUCCEEDED
            and r, what="the retried release to succeed")
        await slack.finished(1)
        assert retried.status == ReleaseStatus.SUCCEEDED
        # Passes now; with no deployment recorded it cannot prove which build serves, so it warns.
        smoke = retried.step("smoke")
        assert smoke.state.value == "warn" and "rendered" in smoke.result.summary
        assert "could not verify which build is serving" in smoke.result.summary
        assert len(slack.runtime.store.list_releases()) == 1


async def test_status_shows_the_last_release(tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, state = staging
    async with SlackHarness(tmp_path, **staging_settings(url, state, tmp_path)) as slack:
        reply, key = await slack.command("status")
        assert "No release" in (await slack.answer(reply, key))["text"]
        await slack.command("start main")
        await slack.finished(1)
        reply, key = await slack.command("status")
        status = reply.json()  # in the acknowledgement: one indexed read of the log
        assert "Release #1 of main" in status["text"] and "Succeeded" in status["text"]


async def test_channel_of_the_command_is_used_unless_release_channel_is_set(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, state = staging
    settings = staging_settings(url, state, tmp_path) | {"RELEASE_CHANNEL": "C0DEPLOYS"}
    async with SlackHarness(tmp_path, **settings) as slack:
        await slack.command("start main", channel=CHANNEL)
        release = await slack.finished(1)
        assert release.channel == "C0DEPLOYS"
        assert slack.parent_posts("C0DEPLOYS") and not slack.parent_posts(CHANNEL)
