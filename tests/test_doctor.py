"""`release-bot doctor` against the Slack, GitHub, Vercel, PostHog and Supabase emulators, a real
PostgreSQL (through the real Supabase CLI), a real Redis and a real git checkout: all ok, then one
credential wrong at a time; `/release doctor` answers the operator alone."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.app import build_runtime
from bot.chat.blocks import Message
from bot.chat.console import ConsoleChat
from bot.cli import main
from bot.commands import Command, parse_command
from bot.config import Settings
from bot.doctor import CHECKS, FAILED, NOT_CONFIGURED, OK, Row, exit_code, needed_scopes, run_doctor
from bot.store import Store
from sandbox.github import GitHubState, create_github_app
from sandbox.posthog import PostHogState, create_posthog_app
from sandbox.server import serve
from sandbox.services import RedisServer
from sandbox.supabase_api import SupabaseState, create_supabase_app
from sandbox.vercel import VercelState, create_vercel_app
from sandbox.workspace import Workspace
from tests.helpers import make_settings
from tests.mock_slack_api import SlackState, create_slack_app

ROWS = ["Slack", "GitHub", "Vercel", "PostHog", "Supabase API", "Database", "Staging Redis",
        "App workspace", "npm", "Supabase CLI", "Chromium"]
REF = "abcdefghijklmnopqrst"


@dataclass
class World:
    """Every emulator's state and the settings that make every check pass."""

    slack: SlackState
    github: GitHubState
    vercel: VercelState
    posthog: PostHogState
    supabase: SupabaseState
    workspace: Workspace
    values: dict[str, Any] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> Settings:
        return make_settings(**{**self.values, **overrides})


@pytest.fixture
async def world(workspace: Workspace, postgres_db: str, redis_server: RedisServer,
                supabase_cli: Path) -> AsyncIterator[World]:
    slack = SlackState(scopes=(*needed_scopes(), "users:read"),
                       channels={"C0RELEASES": {"name": "releases", "is_member": True},
                                 "C0ENG": {"name": "engineering", "is_member": True}})
    github = GitHubState(repo="acme/app")
    vercel = VercelState(team_id="team_acme", team_slug="acme")
    vercel.add_project("pocket", project_id="prj_pocket")
    posthog = PostHogState(project_id=7)
    supabase = SupabaseState(ref=REF)
    async with serve(create_slack_app(slack)) as slack_url, serve(create_github_app(github)) as gh_url, \
            serve(create_vercel_app(vercel)) as vercel_url, \
            serve(create_posthog_app(posthog)) as posthog_url, \
            serve(create_supabase_app(supabase)) as supabase_url:
        values = {
            "SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": f"{slack_url}/api/",
            "RELEASE_CHANNEL": "C0RELEASES", "ENGINEERING_CHANNEL": "C0ENG",
            "GITHUB_API_URL": gh_url, "GITHUB_TOKEN": github.token, "GITHUB_REPOSITORY": "acme/app",
            "VERCEL_API_URL": vercel_url, "VERCEL_TOKEN": vercel.token,
            "VERCEL_PROJECT_ID": "prj_pocket", "VERCEL_TEAM_ID": "team_acme",
            "POSTHOG_HOST": posthog_url, "POSTHOG_PERSONAL_API_KEY": posthog.personal_api_key,
            "POSTHOG_PROJECT_ID": "7",
            "SUPABASE_API_URL": supabase_url, "SUPABASE_ACCESS_TOKEN": supabase.access_token,
            "SUPABASE_PROJECT_REF": REF, "SUPABASE_DB_URL": postgres_db,
            "SUPABASE_CLI": str(supabase_cli),
            "STAGING_REDIS_URL": redis_server.url, "APP_WORKSPACE": str(workspace.app),
            "HTTP_TIMEOUT_SECONDS": 5,
        }
        yield World(slack, github, vercel, posthog, supabase, workspace, values)


def by_name(rows: list[Row]) -> dict[str, Row]:
    return {row.name: row for row in rows}


def only_failure(rows: list[Row], name: str) -> Row:
    """The one failed row, `name`; every other row ok."""
    found = by_name(rows)
    assert [r.name for r in rows if r.status != OK] == [name], rows
    assert found[name].status == FAILED
    assert exit_code(rows) == 1
    return found[name]


async def test_everything_configured_and_working_is_all_ok(world: World) -> None:
    rows = await run_doctor(world.settings())
    assert [r.name for r in rows] == ROWS
    assert all(r.status == OK for r in rows), rows
    assert exit_code(rows) == 0
    found = by_name(rows)
    assert found["Slack"].detail == "team Sandbox as @release-bot; member of C0RELEASES, C0ENG; scopes ok"
    assert found["GitHub"].detail == "acme/app readable; the token may merge (push)"
    assert found["Vercel"].detail == "project pocket readable; team acme"
    assert found["PostHog"].detail == "HogQL answered: 0 events in the last hour"
    assert found["Supabase API"].detail == "project pocket-philosopher-staging readable (ACTIVE_HEALTHY)"
    assert found["Database"].detail.startswith("connected; ")
    assert found["Staging Redis"].detail.startswith("PONG from 127.0.0.1:")
    assert found["App workspace"].detail.startswith("clean checkout at ")
    assert found["Supabase CLI"].detail.startswith("2.")  # `supabase --version` prints its version
    # each credential was tried with a read
    assert [name for name, _ in world.slack.calls] == ["auth.test", "conversations.info",
                                                       "conversations.info"]
    assert world.posthog.queries and world.posthog.queries[0].startswith("SELECT count() FROM events")


def _wrong_db_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:wrong-db-pass-77@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Breaker = Callable[[World], dict[str, Any]]
CASES: list[tuple[str, str, Breaker, str]] = [
    ("slack-token", "Slack", lambda w: {"SLACK_BOT_TOKEN": "xoxb-wrong-token-1234"},
     "auth.test: invalid_auth"),
    ("slack-not-member", "Slack",
     lambda w: w.slack.channels["C0ENG"].update(is_member=False) or {},
     "not a member of the engineering channel #engineering"),
    ("slack-scope", "Slack",
     lambda w: setattr(w.slack, "scopes", ("commands", "channels:read", "groups:read")) or {},
     "missing scopes chat:write"),
    ("slack-unknown-channel", "Slack", lambda w: {"RELEASE_CHANNEL": "C0NOPE"},
     "release channel C0NOPE not found"),
    ("github-token", "GitHub", lambda w: {"GITHUB_TOKEN": "ghp_wrongwrongwrong"}, "GitHub: 401"),
    ("github-no-merge", "GitHub",
     lambda w: w.github.permissions.update(push=False) or {}, "may not merge"),
    ("github-repo", "GitHub", lambda w: {"GITHUB_REPOSITORY": "acme/other"}, "acme/other not found"),
    ("vercel-token", "Vercel", lambda w: {"VERCEL_TOKEN": "vercel-wrong"}, "Vercel: 401"),
    ("vercel-team", "Vercel", lambda w: {"VERCEL_TEAM_ID": "team_other"}, "Vercel: 403"),
    ("vercel-project", "Vercel", lambda w: {"VERCEL_PROJECT_ID": "prj_missing"},
     "project prj_missing not found"),
    ("posthog-key", "PostHog", lambda w: {"POSTHOG_PERSONAL_API_KEY": "phx_wrong_key"}, "PostHog: 401"),
    ("posthog-project", "PostHog", lambda w: {"POSTHOG_PROJECT_ID": "8"}, "PostHog: 403"),
    ("supabase-token", "Supabase API", lambda w: {"SUPABASE_ACCESS_TOKEN": "sbp_wrong"},
     "Supabase: 401"),
    ("database-password", "Database",
     lambda w: {"SUPABASE_DB_URL": _wrong_db_password(w.values["SUPABASE_DB_URL"])}, "password"),
    ("redis", "Staging Redis",
     lambda w: {"STAGING_REDIS_URL": f"redis://:redis-pass-55@127.0.0.1:{_closed_port()}/0"},
     "refused"),
    ("workspace-dirty", "App workspace",
     lambda w: (w.workspace.app / "package.json").write_text("{}\n") and {}, "1 local changes"),
    ("workspace-origin-gone", "App workspace",
     lambda w: w.workspace.origin.rename(w.workspace.root / "gone.git") and {}, "origin does not answer"),
    ("chromium", "Chromium", lambda w: {"PLAYWRIGHT_CHROMIUM_PATH": "/bin/false"}, "--version failed"),
]


@pytest.mark.parametrize(("name", "row", "breaker", "reason"), CASES, ids=[c[0] for c in CASES])
async def test_one_wrong_credential_fails_its_row_alone_and_the_exit_code(
        world: World, name: str, row: str, breaker: Breaker, reason: str) -> None:
    overrides = breaker(world)
    # The checks that run commands (the Supabase CLI takes seconds) run here only when they are
    # the one broken; the all-ok test above runs every check together.
    checks = tuple(c for c in CHECKS if not c.slow or c.name == row)
    rows = await run_doctor(world.settings(**overrides), checks)
    failed = only_failure(rows, row)
    assert reason in failed.detail, failed.detail
    assert "\n" not in failed.detail
    for value in overrides.values():  # secrets and wrong credentials never printed
        if isinstance(value, str) and ("wrong" in value or "pass" in value):
            assert value not in failed.detail
    assert "wrong-db-pass-77" not in str(rows) and "redis-pass-55" not in str(rows)


async def test_unset_credentials_are_not_configured_and_do_not_fail(supabase_cli: Path) -> None:
    rows = await run_doctor(make_settings(PLAYWRIGHT_CHROMIUM_PATH="/bin/true",
                                          SUPABASE_CLI=str(supabase_cli)))
    found = by_name(rows)
    assert found["GitHub"] == Row("GitHub", NOT_CONFIGURED, "GITHUB_TOKEN, GITHUB_REPOSITORY not set")
    assert found["Database"].status == NOT_CONFIGURED
    assert {r.name for r in rows if r.status == NOT_CONFIGURED} == set(ROWS[:8])
    assert [r.status for r in rows[8:]] == [OK, OK, OK]  # the tools are always checked
    assert exit_code(rows) == 0


async def test_release_doctor_in_chat_is_for_operators_and_answers_the_requester(world: World) -> None:
    assert parse_command("doctor") == Command("doctor")
    assert "takes no arguments" in getattr(parse_command("doctor now"), "message", "")
    settings = world.settings(RELEASE_OPERATORS="U0OPS", GITHUB_TOKEN="ghp_wrongwrongwrong")
    runtime = build_runtime(settings, ConsoleChat(out=io.StringIO()), store=Store(":memory:"))
    assert runtime.service.authorize(Command("doctor"), "U0ALICE") is not None
    assert runtime.service.authorize(Command("doctor"), "U0OPS") is None
    replies: list[Message] = []

    async def reply(message: Message) -> None:
        replies.append(message)

    await runtime.service.run(Command("doctor"), user="U0OPS", channel="C0RELEASES", reply=reply)
    assert len(replies) == 1
    text = replies[0].text
    assert text.startswith(":x: *release-bot doctor*: 10 ok, 1 failed, 0 not configured")
    assert "GitHub         failed  GitHub: 401" in text
    assert "ghp_wrongwrongwrong" not in text
    assert world.slack.calls_to("chat.postMessage") == []  # nothing posted in any channel


def test_cli_doctor_prints_the_table_and_exits_by_the_result(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        supabase_cli: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLAYWRIGHT_CHROMIUM_PATH", "/bin/true")
    monkeypatch.setenv("SUPABASE_CLI", str(supabase_cli))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Check ")
    assert "Slack          not configured  SLACK_BOT_TOKEN not set" in out
    assert out.endswith("\n3 ok, 0 failed, 8 not configured\n")
    monkeypatch.setenv("STAGING_REDIS_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    assert main(["doctor"]) == 1
    assert "Staging Redis  failed" in capsys.readouterr().out
