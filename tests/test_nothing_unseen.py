"""Nothing runs unseen: a release the channel would not show is refused, tokens are checked at
start, the gate names its approvers, a failure names who started it, the verdict is broadcast."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bot.chat.blocks import gate_message
from bot.chat.slack_auth import quiet_logger, token_problem
from bot.runbook.model import Gate, GateAction, ReleaseStatus, StepResult
from bot.runbook.step import StepContext
from sandbox.server import serve
from sandbox.staging_app import StagingState
from tests.helpers import make_settings
from tests.mock_slack_api import SlackState, create_slack_app
from tests.slack_e2e import BOT_TOKEN, CHANNEL, SlackHarness
from tests.test_engine import make_engine

REPORT_ONLY = "phases: [{name: report, steps: [{name: monitoring_links}]}]\n"


def runbook(tmp_path: Path, text: str = REPORT_ONLY) -> str:
    path = tmp_path / "runbook.yml"
    path.write_text(text)
    return str(path)


async def refused(slack: SlackHarness, text: str = "start main") -> str:
    _, key = await slack.command(text)
    answer = await slack.wait_response(key)
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


async def test_bot_not_in_the_channel_is_told_to_invite_and_nothing_runs(tmp_path: Path) -> None:
    async with SlackHarness(tmp_path, RUNBOOK_PATH=runbook(tmp_path)) as slack:
        slack.state.channels[CHANNEL]["is_member"] = False
        text = await refused(slack)
        assert "not a member of <#C0RELEASES>" in text
        assert "invite @release-bot to <#C0RELEASES>" in text
        assert slack.runtime.store.list_releases() == []  # the log holds no release that never ran
        assert slack.state.channel_messages(CHANNEL) == []
        assert not slack.runtime.engine.running(1)
        # Once invited, the same command starts (and the release number is not wasted).
        slack.state.channels[CHANNEL]["is_member"] = True
        _, key = await slack.command("start main")
        assert "Release #1" in (await slack.wait_response(key))["text"]
        assert (await slack.finished(1)).status == ReleaseStatus.SUCCEEDED


async def test_unknown_release_channel_is_named(tmp_path: Path) -> None:
    async with SlackHarness(tmp_path, RUNBOOK_PATH=runbook(tmp_path),
                            RELEASE_CHANNEL="C0NOWHERE") as slack:
        slack.state.accept_any_channel = False
        text = await refused(slack)
        assert "cannot find the channel <#C0NOWHERE>" in text and "RELEASE_CHANNEL" in text
        assert slack.runtime.store.list_releases() == []


async def test_revoked_token_is_said_and_nothing_runs(tmp_path: Path) -> None:
    async with SlackHarness(tmp_path, RUNBOOK_PATH=runbook(tmp_path)) as slack:
        reply, key = await slack.command("status")  # the bot has been working with this token
        await slack.answer(reply, key)
        slack.state.revoked_tokens.add(BOT_TOKEN)
        text = await refused(slack)
        assert "Slack rejected my token (`token_revoked`)" in text and "SLACK_BOT_TOKEN" in text
        assert slack.runtime.store.list_releases() == []


SMOKE_ONLY = "phases: [{name: validate, steps: [{name: smoke, required: true}]}]\n"


async def test_failure_names_the_starter_and_the_verdict_is_broadcast(
        tmp_path: Path, staging: tuple[str, StagingState]) -> None:
    url, state = staging
    state.dashboard_status = 500
    async with SlackHarness(tmp_path, RUNBOOK_PATH=runbook(tmp_path, SMOKE_ONLY),
                            STAGING_URL=url) as slack:
        await slack.command("start main")
        failed = await slack.finished(1)
        assert failed.status == ReleaseStatus.FAILED
        replies = slack.thread(failed.thread_ts)
        final = replies[-1]
        assert final["reply_broadcast"] is True
        assert "<@U0ALICE>" in final["text"] and "Failed at" in final["text"]
        assert "Release #1 of main to staging" in final["text"]  # readable in the channel
        assert not any(r.get("reply_broadcast") for r in replies[:-1])


async def test_gate_mentions_its_approvers_users_and_groups() -> None:
    async def asks(ctx: StepContext) -> StepResult:
        decision = await ctx.ask(Gate(key="apply", prompt="Apply 1 migration?",
                                      actions=[GateAction(id="apply", label="Apply")]))
        return StepResult.ok(decision.action)

    engine, reporter, _ = make_engine({"a": asks}, "phases: [{name: p, steps: [{name: a}]}]",
                                      RELEASE_APPROVERS="U0BOSS,S0DBAS")
    started = await engine.start(ref="main", user="U1", channel=None)
    release, record = await asyncio.wait_for(reporter.gates.get(), 30)
    assert record.gate is not None and record.gate.approvers == ["U0BOSS", "S0DBAS"]
    text = gate_message(release, record, record.gate).text
    assert "waiting for a decision from <@U0BOSS>, <!subteam^S0DBAS>" in text
    await engine.decide(started.id or 0, "a", "apply", "apply", "U0BOSS")
    assert (await engine.wait(started.id or 0)).status == ReleaseStatus.SUCCEEDED


async def test_token_problem_names_the_rejected_token() -> None:
    state = SlackState()
    async with serve(create_slack_app(state)) as url:
        def settings(**values: Any) -> Any:
            return make_settings(**{"SLACK_API_URL": f"{url}/api/", "SLACK_BOT_TOKEN": state.token,
                                    "SLACK_APP_TOKEN": state.app_token, **values})

        assert await asyncio.to_thread(token_problem, settings(), socket_mode=True) is None
        bad_bot = await asyncio.to_thread(token_problem, settings(SLACK_BOT_TOKEN="xoxb-old"))
        assert bad_bot is not None and "SLACK_BOT_TOKEN (auth.test answered `invalid_auth`)" in bad_bot
        state.revoked_tokens.add(state.app_token)
        bad_app = await asyncio.to_thread(token_problem, settings(), socket_mode=True)
        assert bad_app is not None and "SLACK_APP_TOKEN" in bad_app and "token_revoked" in bad_app


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VERCEL_", "GITHUB_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, env={**base, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, (out + err).decode()


async def test_serve_and_socket_stop_with_one_line_on_a_rejected_token(tmp_path: Path) -> None:
    state = SlackState()
    async with serve(create_slack_app(state)) as url:
        env = {"SLACK_API_URL": f"{url}/api/", "SLACK_BOT_TOKEN": "xoxb-revoked-long-ago",
               "SLACK_SIGNING_SECRET": "s" * 32, "SLACK_APP_TOKEN": state.app_token,
               "DATABASE_PATH": str(tmp_path / "log.db"), "PORT": "0"}
        for command in ("serve", "socket"):
            code, output = await run_cli(command, env=env)
            assert code == 2, output
            assert output.strip().splitlines() == [
                "release-bot: Slack rejected SLACK_BOT_TOKEN (auth.test answered `invalid_auth`): "
                "reinstall the app or copy a current token into SLACK_BOT_TOKEN."], output
        assert "xoxb-revoked-long-ago" not in output


def test_socket_mode_reconnect_errors_are_one_line() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = quiet_logger("tests.socket_mode")
    logger.addHandler(handler)
    try:
        for _ in range(2):
            try:
                raise ConnectionResetError("Cannot connect to host wss-primary.slack.com:443")
            except ConnectionResetError as exc:
                logger.exception(f"Failed to connect (error: {exc}); Retrying...")
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert "Traceback" not in out.getvalue()
    assert lines == ["Failed to connect (error: Cannot connect to host wss-primary.slack.com:443); "
                     "Retrying... [ConnectionResetError]"] * 2


async def test_members_of_an_approver_group_may_answer_others_may_not() -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.chat.slack_groups import members_of

    async def asks(ctx: StepContext) -> StepResult:
        decision = await ctx.ask(Gate(key="apply", prompt="Apply?",
                                      actions=[GateAction(id="apply", label="Apply")]))
        return StepResult.ok(decision.action)

    state = SlackState(usergroups={"S0DBAS": ["U0DBA1", "U0DBA2"]})
    async with serve(create_slack_app(state)) as url:
        engine, reporter, _ = make_engine({"a": asks}, "phases: [{name: p, steps: [{name: a}]}]",
                                          RELEASE_APPROVERS="U0BOSS,S0DBAS")
        started = await engine.start(ref="main", user="U1", channel=None)
        await asyncio.wait_for(reporter.gates.get(), 30)
        release_id = started.id or 0
        # Without a group lookup, only listed users may answer.
        assert not (await engine.decide(release_id, "a", "apply", "apply", "U0DBA2")).accepted
        engine.group_members = members_of(AsyncWebClient(token=state.token, base_url=f"{url}/api/"))
        outsider = await engine.decide(release_id, "a", "apply", "apply", "U0MALLORY")
        assert not outsider.accepted and "<!subteam^S0DBAS>" in outsider.message
        assert (await engine.decide(release_id, "a", "apply", "apply", "U0DBA2")).accepted
        assert (await engine.wait(release_id)).status == ReleaseStatus.SUCCEEDED
