"""`release-bot doctor` and `/release doctor`: try every configured credential with a read.

Each check makes the least-privileged read that proves its credential works — Slack `auth.test`
(with the scopes Slack reports in `x-oauth-scopes`) and `conversations.info` for the release and
engineering channels; GitHub's repository (whose `permissions` say whether the token may merge);
the Vercel project and team; a one-row HogQL query; the Supabase project; the database's
migration history through the Supabase CLI; a Redis `PING`; the app checkout and its origin; the
tools. Nothing is written anywhere. Each row is `ok`, `failed` with the reason in one line, or
`not configured` naming what is missing; the exit code is 0 only when every configured check
passed. The checks run at the same time, each under its own time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from slack_sdk.errors import SlackApiError

from bot.chat import blocks
from bot.chat.blocks import Message
from bot.chat.slack import make_web_client
from bot.config import Settings
from bot.providers import posthog, redis_info
from bot.providers.github import github_client
from bot.providers.http import ProviderError, json_body, make_client, send
from bot.providers.shell import child_env, run_command
from bot.providers.supabase_api import supabase_client
from bot.providers.supabase_cli import SupabaseCli, SupabaseCliError
from bot.providers.tools import REPO_ROOT, resolve_tool
from bot.providers.vercel import vercel_client
from bot.redact import Redactor, default_redactor, escape

OK, FAILED, NOT_CONFIGURED = "ok", "failed", "not configured"
# What the bot asks Slack for (manifest.yml); used when the manifest is not beside the package.
FALLBACK_SCOPES = ("commands", "chat:write", "channels:read", "groups:read")
HOGQL_PROBE = "SELECT count() FROM events WHERE timestamp > now() - INTERVAL 1 HOUR"
TOOL_TIMEOUT = 60.0
MAX_DETAIL = 240


class Failed(Exception):
    """A check's one-line reason for failing."""


@dataclass(frozen=True)
class Row:
    """One line of the doctor's table."""

    name: str
    status: str
    detail: str


Probe = Callable[[Settings], Awaitable[str]]


@dataclass(frozen=True)
class Check:
    """A named probe and what it needs: `missing(settings)` says what is unset, or ''."""

    name: str
    probe: Probe
    missing: Callable[[Settings], str]
    slow: bool = False  # runs a command (CLI, git): gets the command time limit


def needs(*names: str) -> Callable[[Settings], str]:
    """A `missing` function: the unset ones among `names`."""

    def missing(settings: Settings) -> str:
        unset = settings.missing(list(names))
        return ", ".join(unset) + " not set" if unset else ""

    return missing


def _always(settings: Settings) -> str:
    return ""


# --- Slack ---------------------------------------------------------------------------------------
def needed_scopes() -> tuple[str, ...]:
    """The bot scopes manifest.yml declares (what the app was installed with)."""
    manifest = REPO_ROOT / "manifest.yml"
    try:
        data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
        scopes = data["oauth_config"]["scopes"]["bot"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return FALLBACK_SCOPES
    return tuple(str(s) for s in scopes) if isinstance(scopes, list) else FALLBACK_SCOPES


def _header(headers: Any, name: str) -> str:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return ""


def _slack_error(exc: SlackApiError, method: str) -> str:
    body = exc.response.data if isinstance(exc.response.data, dict) else {}
    error = str(body.get("error") or "error")
    if error == "missing_scope" and body.get("needed"):
        error += f" (needs {body['needed']})"
    return f"{method}: {error}"


async def _channel_problem(client: Any, role: str, channel: str) -> str | None:
    try:
        found = await client.conversations_info(channel=channel)
    except SlackApiError as exc:
        if (exc.response.data or {}).get("error") == "channel_not_found":
            return f"{role} channel {channel} not found (or private and the bot is not in it)"
        return f"{role} channel {channel}: {_slack_error(exc, 'conversations.info')}"
    info = found.get("channel") or {}
    if not info.get("is_member"):
        return f"not a member of the {role} channel #{info.get('name', channel)} (/invite the bot)"
    return None


async def check_slack(settings: Settings) -> str:
    """auth.test, the scopes in its `x-oauth-scopes`, and membership of the two channels."""
    client = make_web_client(settings)
    try:
        auth = await client.auth_test()
    except SlackApiError as exc:
        raise Failed(_slack_error(exc, "auth.test")) from None
    granted = {s.strip() for s in _header(auth.headers, "x-oauth-scopes").split(",") if s.strip()}
    problems = []
    lacking = [s for s in needed_scopes() if s not in granted]
    if lacking:
        problems.append("missing scopes " + ", ".join(lacking) + " (reinstall the app from manifest.yml)")
    channels = {"release": settings.RELEASE_CHANNEL, "engineering": settings.ENGINEERING_CHANNEL}
    checked = []
    for role, channel in channels.items():
        if channel:
            problem = await _channel_problem(client, role, channel)
            if problem:
                problems.append(problem)
            else:
                checked.append(channel)
    if problems:
        raise Failed("; ".join(problems))
    where = f"member of {', '.join(checked)}" if checked else "no channel set to check membership"
    return f"team {auth.get('team')} as @{auth.get('user')}; {where}; scopes ok"


# --- GitHub, Vercel, PostHog, Supabase Management API --------------------------------------------
async def check_github(settings: Settings) -> str:
    """The repository is readable, and its `permissions.push` allows the merge."""
    repo = settings.GITHUB_REPOSITORY or ""
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise Failed(f"GITHUB_REPOSITORY {repo!r} is not owner/name")
    async with github_client(settings) as client:
        response = await send(client, "GET", f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}",
                              provider="GitHub", ok_statuses=(404,),
                              auth_hint="the token was rejected")
    if response.status_code == 404:
        raise Failed(f"{repo} not found, or the token cannot see it")
    body = json_body(response, "GitHub")
    permissions = body.get("permissions") if isinstance(body, dict) else None
    if not isinstance(permissions, dict):
        return f"{repo} readable (GitHub reports no permissions for this token type)"
    if not permissions.get("push"):
        raise Failed(f"{repo} is readable but the token may not merge into it "
                     "(permissions.push is false; it needs contents:write)")
    return f"{repo} readable; the token may merge (push)"


async def check_vercel(settings: Settings) -> str:
    """The project is readable; the team the token works in."""
    project_id = settings.VERCEL_PROJECT_ID or ""
    async with vercel_client(settings) as client:
        response = await send(client, "GET", f"/v9/projects/{quote(project_id, safe='')}",
                              provider="Vercel", ok_statuses=(404,))
        if response.status_code == 404:
            raise Failed(f"project {project_id} not found for this token"
                         + (f" in team {settings.VERCEL_TEAM_ID}" if settings.VERCEL_TEAM_ID else ""))
        body = json_body(response, "Vercel")
        name = body.get("name", project_id) if isinstance(body, dict) else project_id
        if not settings.VERCEL_TEAM_ID:
            return f"project {name} readable; personal account (no VERCEL_TEAM_ID)"
        team = await send(client, "GET", f"/v2/teams/{quote(settings.VERCEL_TEAM_ID, safe='')}",
                          provider="Vercel")
    info = json_body(team, "Vercel")
    slug = info.get("slug", settings.VERCEL_TEAM_ID) if isinstance(info, dict) else settings.VERCEL_TEAM_ID
    return f"project {name} readable; team {slug}"


async def check_posthog(settings: Settings) -> str:
    """A one-row HogQL query."""
    client = make_client(settings.POSTHOG_HOST, token=settings.secret("POSTHOG_PERSONAL_API_KEY"),
                         timeout=settings.HTTP_TIMEOUT_SECONDS)
    async with client:
        _columns, rows = await posthog.hogql(client, settings.POSTHOG_PROJECT_ID or "", HOGQL_PROBE,
                                             refresh="blocking")
    count = rows[0][0] if rows and rows[0] else 0
    return f"HogQL answered: {count} events in the last hour"


async def check_supabase_api(settings: Settings) -> str:
    """The project is readable through the Management API."""
    ref = settings.SUPABASE_PROJECT_REF or ""
    async with supabase_client(settings) as client:
        response = await send(client, "GET", f"/v1/projects/{quote(ref, safe='')}",
                              provider="Supabase", ok_statuses=(404,))
    if response.status_code == 404:
        raise Failed(f"project {ref} not found for this token")
    body = json_body(response, "Supabase")
    if not isinstance(body, dict):
        raise Failed("answered the project with something other than a JSON object")
    return f"project {body.get('name', ref)} readable ({body.get('status', 'status unknown')})"


# --- the database, Redis, the workspace, the tools -----------------------------------------------
def _database_missing(settings: Settings) -> str:
    if settings.secret("SUPABASE_DB_URL"):
        return ""
    if settings.SUPABASE_PROJECT_REF and settings.secret("SUPABASE_DB_PASSWORD"):
        return ""
    return "SUPABASE_DB_URL (or SUPABASE_PROJECT_REF with SUPABASE_DB_PASSWORD) not set"


async def check_database(settings: Settings) -> str:
    """Connect with the Supabase CLI and read the migration history."""
    cli = SupabaseCli(binary=resolve_tool("supabase", settings),
                      access_token=settings.SUPABASE_ACCESS_TOKEN,
                      db_password=settings.SUPABASE_DB_PASSWORD,
                      timeout=min(settings.COMMAND_TIMEOUT_SECONDS, 120))
    db_url = settings.secret("SUPABASE_DB_URL") or None
    ref = None if db_url else settings.SUPABASE_PROJECT_REF
    workspace = Path(settings.APP_WORKSPACE) if settings.APP_WORKSPACE else None
    try:
        if workspace is not None and await asyncio.to_thread((workspace / "supabase").is_dir):
            rows = await cli.list_migrations(workspace, db_url, ref)
        else:
            with tempfile.TemporaryDirectory(prefix="release-bot-doctor-") as scratch:
                (Path(scratch) / "supabase" / "migrations").mkdir(parents=True)
                rows = await cli.list_migrations(scratch, db_url, ref)
    except SupabaseCliError as exc:
        raise Failed(str(exc.message).strip().splitlines()[0] if str(exc.message).strip()
                     else "the Supabase CLI failed") from None
    applied = [row.version for row in rows if row.remote]
    if not applied:
        return "connected; no migrations recorded yet"
    return f"connected; {len(applied)} migrations in the history, latest {applied[-1]}"


async def check_redis(settings: Settings) -> str:
    """PING the staging Redis."""
    url = settings.secret("STAGING_REDIS_URL")
    await redis_info.ping(url, settings.HTTP_TIMEOUT_SECONDS)
    return f"PONG from {redis_info.where(url)}"


async def _git(workspace: str, *args: str) -> tuple[bool, str]:
    result = await run_command(["git", *args], cwd=workspace, timeout=TOOL_TIMEOUT,
                               env=child_env({"GIT_TERMINAL_PROMPT": "0"}))
    lines = [line for line in result.tail(5).splitlines() if line.strip()]
    return result.ok, (result.stdout.strip() if result.ok else (lines[-1] if lines else "failed"))


async def check_workspace(settings: Settings) -> str:
    """A git checkout, without local changes, whose origin answers."""
    workspace = settings.APP_WORKSPACE or ""
    if not await asyncio.to_thread(Path(workspace).is_dir):
        raise Failed(f"{workspace} is not a directory")
    inside, _ = await _git(workspace, "rev-parse", "--is-inside-work-tree")
    if not inside:
        raise Failed(f"{workspace} is not a git checkout")
    _, changes = await _git(workspace, "status", "--porcelain")
    if changes:
        raise Failed(f"{len(changes.splitlines())} local changes (releases refuse a dirty checkout)")
    has_origin, _ = await _git(workspace, "remote", "get-url", "origin")
    if not has_origin:
        raise Failed("no `origin` remote")
    answers, why = await _git(workspace, "ls-remote", "--heads", "origin", settings.STAGING_BRANCH)
    if not answers:
        raise Failed(f"origin does not answer: {why}")
    _, head = await _git(workspace, "rev-parse", "--short", "HEAD")
    return f"clean checkout at {head}; origin answers ({settings.STAGING_BRANCH} " + \
        ("found)" if why else "not found there)")


def tool_check(tool: str, setting: str) -> Probe:
    """A probe that finds `tool` and asks it for its version."""

    async def probe(settings: Settings) -> str:
        found = resolve_tool(tool, settings)
        if not found:
            raise Failed(f"not found (run scripts/install-tools.sh, or set {setting})")
        result = await run_command([found, "--version"], timeout=TOOL_TIMEOUT, env=child_env())
        if not result.ok:
            raise Failed(f"{found} --version failed: {result.tail(1) or result.returncode}")
        version = (result.stdout.strip() or result.stderr.strip()).splitlines()
        return f"{version[0] if version else 'version unknown'} ({found})"

    return probe


CHECKS: tuple[Check, ...] = (
    Check("Slack", check_slack, needs("SLACK_BOT_TOKEN")),
    Check("GitHub", check_github, needs("GITHUB_TOKEN", "GITHUB_REPOSITORY")),
    Check("Vercel", check_vercel, needs("VERCEL_TOKEN", "VERCEL_PROJECT_ID")),
    Check("PostHog", check_posthog, needs("POSTHOG_PERSONAL_API_KEY", "POSTHOG_PROJECT_ID")),
    Check("Supabase API", check_supabase_api, needs("SUPABASE_ACCESS_TOKEN", "SUPABASE_PROJECT_REF")),
    Check("Database", check_database, _database_missing, slow=True),
    Check("Staging Redis", check_redis, needs("STAGING_REDIS_URL")),
    Check("App workspace", check_workspace, needs("APP_WORKSPACE"), slow=True),
    Check("npm", tool_check("npm", "PATH"), _always, slow=True),
    Check("Supabase CLI", tool_check("supabase", "SUPABASE_CLI"), _always, slow=True),
    Check("Chromium", tool_check("chromium", "PLAYWRIGHT_CHROMIUM_PATH"), _always, slow=True),
)


# --- running and showing -------------------------------------------------------------------------
def one_line(text: str) -> str:
    """`text` on one line of at most MAX_DETAIL characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_DETAIL else flat[: MAX_DETAIL - 1] + "…"


def _limit(check: Check, settings: Settings) -> float:
    base = settings.HTTP_TIMEOUT_SECONDS * 4 + 5  # a few retries of one request
    return max(base, min(settings.COMMAND_TIMEOUT_SECONDS, 180.0)) if check.slow else base


async def run_check(check: Check, settings: Settings, redact: Redactor) -> Row:
    """One row: not configured, ok with what was read, or failed with the reason."""
    missing = check.missing(settings)
    if missing:
        return Row(check.name, NOT_CONFIGURED, missing)
    limit = _limit(check, settings)
    try:
        async with asyncio.timeout(limit):
            detail = await check.probe(settings)
    except TimeoutError:
        return Row(check.name, FAILED, f"no answer within {limit:g}s")
    except (Failed, ProviderError) as exc:
        return Row(check.name, FAILED, one_line(redact(str(exc))))
    except Exception as exc:  # a check that crashes fails its row, never the doctor
        return Row(check.name, FAILED, one_line(redact(f"{type(exc).__name__}: {exc}")))
    return Row(check.name, OK, one_line(redact(detail)))


async def run_doctor(settings: Settings, checks: tuple[Check, ...] = CHECKS,
                     redactor: Redactor | None = None) -> list[Row]:
    """Every check, at the same time; rows in the order of `checks`."""
    if redactor is None:
        redactor = default_redactor()
        redactor.add(settings.secret_values())
    return list(await asyncio.gather(*(run_check(c, settings, redactor) for c in checks)))


def exit_code(rows: list[Row]) -> int:
    """0 only when no configured check failed."""
    return 1 if any(row.status == FAILED for row in rows) else 0


def summary(rows: list[Row]) -> str:
    counts = {status: sum(1 for r in rows if r.status == status) for status in (OK, FAILED, NOT_CONFIGURED)}
    return f"{counts[OK]} ok, {counts[FAILED]} failed, {counts[NOT_CONFIGURED]} not configured"


def render_table(rows: list[Row]) -> str:
    """The rows as an aligned text table, then the counts."""
    name_width = max([len("Check"), *(len(r.name) for r in rows)])
    status_width = max([len("Result"), *(len(r.status) for r in rows)])
    lines = [f"{'Check':<{name_width}}  {'Result':<{status_width}}  Detail"]
    lines += [f"{r.name:<{name_width}}  {r.status:<{status_width}}  {r.detail}" for r in rows]
    return "\n".join([*lines, "", summary(rows)])


def doctor_message(rows: list[Row]) -> Message:
    """The table for Slack, in a code block (text escaped)."""
    icon = ":white_check_mark:" if exit_code(rows) == 0 else ":x:"
    table = escape(render_table(rows)).replace("```", "'''")
    return blocks.note_message(f"{icon} *release-bot doctor*: {summary(rows)}\n```\n{table}\n```")


# --- the command line --------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """`release-bot doctor`: print the table; exit 1 when a configured check failed."""
    rows = asyncio.run(run_doctor(settings))
    sys.stdout.write(render_table(rows) + "\n")
    return exit_code(rows)
