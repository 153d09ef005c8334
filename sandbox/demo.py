"""`release-bot demo`: a whole release of the default runbook against a sandbox on loopback.

It starts the sample staging app and emulators of Vercel, GitHub, PostHog and Supabase's
Management API (following the vendors' documented shapes), a sample app workspace (a git
checkout with an origin), and — when this machine has them — a real PostgreSQL server with the
real Supabase CLI for the migration steps, a real Redis server, and Chromium for Playwright.
Then it types `/release start release/1.2.0` into the console chat, answers the migration
question as a person would, prints the thread and the release-log entry, and rolls the release
back. A step whose tool is missing is reported as skipped with the reason, never faked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bot.app import build_runtime
from bot.chat.console import ConsoleChat
from bot.config import isolated_settings
from bot.console import ConsoleSession
from bot.providers.tools import REPO_ROOT
from bot.report import release_table
from bot.runbook.model import Release, ReleaseStatus, StepState
from sandbox.github import Commit, GitHubState, PullRequest, create_github_app
from sandbox.posthog import PostHogState, create_posthog_app
from sandbox.server import serve
from sandbox.services import PostgresServer, RedisServer, find_tool
from sandbox.staging_app import StagingState, create_staging_app
from sandbox.supabase_api import Backup, Migration, SupabaseState, create_supabase_app
from sandbox.vercel import BuildScript, VercelState, create_vercel_app
from sandbox.workspace import Workspace, create_workspace, run_git

REPO = "steven-d-pennington/pocket-philosopher"
PROJECT = "pocket-philosopher"
RELEASE_REF = "release/1.2.0"
DEMO_USER = "demo-user"
STAGING_DOMAIN = "staging.pocketphilosopher.app"
TELEMETRY_EVENTS = ("i_chat_completed", "i_request_failed", "i_provider_health_changed")
NEW_MIGRATION = """-- Daily reflections get a mood score.
alter table public.reflections add column if not exists mood smallint;
create index if not exists reflections_mood_idx on public.reflections (mood);
"""


def banner(out: TextIO, text: str) -> None:
    print(f"\n\033[1m▶ {text}\033[0m" if out.isatty() else f"\n▶ {text}", file=out)


class Sandbox:
    """Every local stand-in the demo runs against, and the settings that point at them."""

    def __init__(self, root: Path, out: TextIO) -> None:
        self.root = root
        self.out = out
        self.notes: list[str] = []
        self.skips: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.staging = StagingState(providers={"openai": True, "anthropic": True, "together": True,
                                               "ollama": True})
        self.github = GitHubState(token="ghp_" + "demo" * 9, repo=REPO)
        self.vercel = VercelState(token="vercel-demo-token-0123456789")  # noqa: S106 (sandbox)
        self.posthog = PostHogState(personal_api_key="phx_" + "demo" * 10, project_id=4242)
        self.supabase = SupabaseState(access_token="sbp_" + "demo" * 10, ref="ppstagingdemo00000000")
        self.workspace: Workspace | None = None
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None

    # --- real services (optional) --------------------------------------------------------------
    def start_services(self, stack: ExitStack) -> None:
        if find_tool("postgres") is None:
            self.skip_migrations("PostgreSQL is not installed here (run scripts/install-tools.sh)")
        elif find_tool("supabase") is None:
            self.skip_migrations("the Supabase CLI is not installed (run scripts/install-tools.sh)")
        else:
            try:
                self.postgres = stack.enter_context(PostgresServer())
            except Exception as exc:  # the demo goes on without the database steps
                self.skip_migrations(f"a local PostgreSQL could not be started ({exc})")
        if find_tool("redis-server") is not None:
            try:
                self.redis = stack.enter_context(RedisServer())
            except Exception as exc:
                self.notes.append(f"Redis could not be started ({exc}); the redis step will skip")
        else:
            self.notes.append("redis-server is not installed; the redis step will skip")
        self.skip_absent_browser_tools()

    def skip_absent_browser_tools(self) -> None:
        """Playwright needs the npm package (in .tools) and Chromium; without either it is
        skipped with the reason, as `make demo` promises, instead of failing."""
        modules = REPO_ROOT / ".tools" / "node_modules" / "@playwright" / "test"
        if find_tool("playwright") is None or not modules.exists():
            why = "Playwright is not installed (run scripts/install-tools.sh)"
        elif find_tool("chromium") is None:
            why = "Chromium is not installed (run scripts/install-tools.sh)"
        else:
            return
        self.skips["playwright"] = why
        self.notes.append(f"playwright step skipped: {why}")

    def skip_migrations(self, why: str) -> None:
        for name in ("migrations_review", "migrations_push", "schema_current"):
            self.skips[name] = why
        self.notes.append(f"migration steps skipped: {why}")

    # --- the sample app -------------------------------------------------------------------------
    def make_workspace(self) -> Workspace:
        modules = REPO_ROOT / ".tools" / "node_modules"
        ws = create_workspace(self.root / "workspace",
                              node_modules=modules if (modules / "@playwright").exists() else None)
        ws.add_release_branch("1.2.0")
        ws.add_migration(RELEASE_REF, "reflection_mood", NEW_MIGRATION, version="20250301000000")
        self.workspace = ws
        self.make_knowledge_base()
        return ws

    def make_knowledge_base(self) -> Path:
        """A bare git repository standing in for the team's knowledge base (KB_REPOSITORY)."""
        remote = self.root / "knowledge-base.git"
        run_git(self.root, "init", "-q", "--bare", "-b", "main", str(remote))
        self.values["KB_REPOSITORY"] = str(remote)
        self.values["KB_CHECKOUT"] = str(self.root / "kb-checkout")
        return remote

    async def seed_database(self, ws: Workspace) -> None:
        """Staging already has main's migrations; the release brings one more."""
        if self.postgres is None:
            return
        from bot.providers.supabase_cli import SupabaseCli

        url = self.postgres.create_database("staging")
        cli = SupabaseCli(timeout=300)
        pushed = await cli.push(ws.app, db_url=url)
        self.values["SUPABASE_DB_URL"] = url
        self.notes.append(f"staging database: local PostgreSQL with main's {len(pushed.applied)} "
                          "migrations applied")
        self.supabase.migrations = [Migration(version=v.split("_")[0], name="_".join(v.split("_")[1:]))
                                    for v in pushed.applied]

    def seed_github(self, ws: Workspace) -> None:
        """The GitHub emulator holds the same history as the sample workspace (real SHAs)."""
        number = 40
        for branch in ("main", RELEASE_REF):
            log = ws.git("log", "--reverse", "--format=%H%x09%s", branch, cwd=ws.origin)
            history: list[Commit] = []
            for line in log.splitlines():
                sha, _, subject = line.partition("\t")
                history.append(Commit(sha, subject, parents=[history[-1].sha] if history else []))
                main_shas = {c.sha for c in self.github.branches.get("main", [])}
                if branch != "main" and sha not in main_shas:
                    number += 1
                    self.github.pulls[sha] = [PullRequest(number, subject, head_ref=branch)]
            self.github.branches[branch] = history

    def seed_vercel(self) -> None:
        project = self.vercel.add_project(PROJECT, project_id="prj_pocketphilosopherdemo00",
                                          git_org=REPO.split("/")[0], git_repo=REPO.split("/")[1],
                                          # staging's domain follows the staging branch's deployments
                                          branch_domains={"main": [STAGING_DOMAIN],
                                                          RELEASE_REF: [STAGING_DOMAIN]})
        old = int((time.time() - 86400 * 3) * 1000)
        for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TOGETHER_API_KEY", "POSTHOG_API_KEY",
                    "RESEND_API_KEY", "REDIS_URL", "SUPABASE_SERVICE_ROLE_KEY",
                    "NEXT_PUBLIC_SUPABASE_URL", "NEXT_PUBLIC_SUPABASE_ANON_KEY"):
            self.vercel.add_env(project, key, f"sandbox-value-of-{key.lower()}", target=["preview"],
                                created_at=old, updated_at=old + 1000)
            self.vercel.add_env(project, key, f"sandbox-prod-value-of-{key.lower()}",
                                target=["production"], created_at=old, updated_at=old)
        self.vercel.build_script = BuildScript(queued_polls=1, building_polls=2)
        self.vercel.head_resolver = self.github.head
        # What staging served before this release: the previous good deployment.
        previous = self.vercel.create_deployment(project, sha=self.github.head("main") or "0" * 40,
                                                 ref="main", target=None)
        self.vercel.finish(previous)
        self.vercel.assign_alias(STAGING_DOMAIN, previous)

    def seed_posthog(self) -> None:
        now = datetime.now(UTC)
        for minutes, event in zip((3, 9, 14), TELEMETRY_EVENTS, strict=True):
            self.posthog.add_event(event, now - timedelta(minutes=minutes),
                                   distinct_id="prod-user-17", environment="production")

        def captured(info: dict[str, Any]) -> None:
            self.posthog.add_event("i_chat_completed", datetime.now(UTC),
                                   distinct_id=f"staging-{info['user_id']}", environment="staging",
                                   persona=info.get("persona", "marcus"))

        self.staging.on_chat_completed = captured

    def seed_supabase(self) -> None:
        now = datetime.now(UTC)
        self.supabase.backups = [
            Backup(id=i, inserted_at=(now - timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
            for i in (1, 2, 3)
        ]
        self.supabase.pitr_enabled = True
        self.supabase.restore_unhealthy_polls = 1

    async def prepare(self, services: ExitStack) -> Workspace:
        """Start the local services, build the app's workspace and seed every stand-in."""
        self.start_services(services)
        ws = self.make_workspace()
        await self.seed_database(ws)
        self.seed_github(ws)
        self.seed_vercel()
        self.seed_posthog()
        self.seed_supabase()
        return ws

    async def serve_emulators(self, stack: AsyncExitStack) -> dict[str, str]:
        """Serve staging and the vendors' emulators on loopback for as long as `stack` lives."""
        apps = {"staging": create_staging_app(self.staging), "vercel": create_vercel_app(self.vercel),
                "github": create_github_app(self.github), "posthog": create_posthog_app(self.posthog),
                "supabase": create_supabase_app(self.supabase)}
        return {name: await stack.enter_async_context(serve(app)) for name, app in apps.items()}

    # --- settings -------------------------------------------------------------------------------
    def settings_values(self, urls: dict[str, str], runbook: Path) -> dict[str, Any]:
        assert self.workspace is not None
        values: dict[str, Any] = {
            "DATABASE_PATH": str(self.root / "release-log.db"),
            "RUNBOOK_PATH": str(runbook),
            "APP_WORKSPACE": str(self.workspace.app),
            "STAGING_URL": urls["staging"],
            "STAGING_DOMAIN": STAGING_DOMAIN,
            "STAGING_TEST_USER_EMAIL": self.staging.test_user_email,
            "STAGING_TEST_USER_PASSWORD": self.staging.test_user_password,
            "POSTHOG_HOST": urls["posthog"],
            "POSTHOG_PROJECT_ID": str(self.posthog.project_id),
            "POSTHOG_PERSONAL_API_KEY": self.posthog.personal_api_key,
            "STAGING_TELEMETRY_WAIT_SECONDS": 20,
            "VERCEL_API_URL": urls["vercel"],
            "VERCEL_TOKEN": self.vercel.token,
            "VERCEL_PROJECT_ID": "prj_pocketphilosopherdemo00",
            "DEPLOY_POLL_SECONDS": 0.3,
            "GITHUB_API_URL": urls["github"],
            "GITHUB_TOKEN": self.github.token,
            "GITHUB_REPOSITORY": REPO,
            "SUPABASE_API_URL": urls["supabase"],
            "SUPABASE_ACCESS_TOKEN": self.supabase.access_token,
            "SUPABASE_PROJECT_REF": self.supabase.ref,
            "ENGINEERING_CHANNEL": "engineering",
            "RELEASE_CHANNEL": "releases",
            "ISSUE_TRACKER_URL": "https://linear.app/pocket-philosopher/issue/{id}",
            "COMMAND_TIMEOUT_SECONDS": 300,
            "HTTP_TIMEOUT_SECONDS": 10,
        }
        if self.redis is not None:
            values["STAGING_REDIS_URL"] = self.redis.url
        chromium = find_tool("chromium")
        if chromium is not None:
            values["PLAYWRIGHT_CHROMIUM_PATH"] = str(chromium)
        values.update(self.values)
        return values

    def runbook(self) -> Path:
        """The default runbook, with skip reasons for the steps this machine cannot run."""
        import yaml

        from bot.runbook.loader import DEFAULT_RUNBOOK

        data = yaml.safe_load(DEFAULT_RUNBOOK.read_text())
        for phase in data["phases"]:
            for spec in phase["steps"]:
                if spec["name"] in self.skips:
                    # Skipping on purpose, said so in the runbook: no longer required here.
                    spec.pop("required", None)
                    spec["skip"] = self.skips[spec["name"]]
        path = self.root / "runbook.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


@contextlib.contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="release-bot-demo-"))
    try:
        yield root
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


async def _answer_questions(session: ConsoleSession, release_id: int, out: TextIO) -> None:
    """Act as the approver: answer each question the release asks."""
    answered: set[str] = set()
    while True:
        release = session.runtime.store.get_release(release_id)
        if release is None or not release.status.active:
            return
        for record in release.steps:
            if record.state == StepState.WAITING and record.gate and record.gate.key not in answered:
                answered.add(record.gate.key)
                await asyncio.sleep(0.5)
                print(f"{session.user}> press apply", file=out)
                await session.press("apply", release_id)
        await asyncio.sleep(0.1)


async def run_demo(*, keep: bool = False, rollback: bool = True, out: TextIO | None = None) -> int:
    """Run the demo; 0 when the release succeeded (and the rollback, if any, was announced)."""
    out = out or sys.stdout
    started = time.monotonic()
    print("This demo runs against a SANDBOX on 127.0.0.1: a sample Pocket Philosopher staging app "
          "and local emulators of Vercel, GitHub, PostHog and Supabase's Management API. Nothing "
          "outside this machine is touched.", file=out)
    with _workdir(keep) as root, ExitStack() as services:
        sandbox = Sandbox(root, out)
        banner(out, "Starting the sandbox")
        ws = await sandbox.prepare(services)
        async with AsyncExitStack() as stack:
            urls = await sandbox.serve_emulators(stack)
            for name, url in urls.items():
                print(f"  {name:<9} {url}", file=out)
            print(f"  workspace {ws.app}", file=out)
            for note in sandbox.notes:
                print(f"  note: {note}", file=out)
            settings = isolated_settings(**sandbox.settings_values(urls, sandbox.runbook()))
            chat = ConsoleChat(out=out, show_updates=False)
            runtime = build_runtime(settings, chat, update_interval=0.5)
            session = ConsoleSession(runtime, chat, user=DEMO_USER, channel="releases")

            banner(out, f"Starting the release: /release start {RELEASE_REF}")
            line = f'/release start {RELEASE_REF} --notes "Reflections get a mood score"'
            print(f"{DEMO_USER}> {line}", file=out)
            await session.say(line)
            release = runtime.store.latest_release(settings.ENVIRONMENT)
            if release is None or release.id is None:
                print("demo: the release did not start", file=out)
                return 1
            await _answer_questions(session, release.id, out)
            release = await runtime.engine.wait(release.id)
            await runtime.reporter.flush()
            if release.thread_ts:
                parent = chat.last_parent(release.thread_ts)
                if parent is not None:
                    banner(out, "The parent message in #releases, as it ends")
                    await chat.post("releases", parent, thread_ts=None)

            banner(out, "The release log entry (release-bot log show "
                   f"{release.id})")
            print(runtime.redactor(release_table(release)), file=out)
            ok = release.status == ReleaseStatus.SUCCEEDED
            if rollback:
                ok = await _demo_rollback(runtime, release, sandbox, out) and ok
            await _show_knowledge_base(runtime, release, sandbox, out)
            await runtime.engine.shutdown()
        took = time.monotonic() - started
        verdict = "succeeded" if ok else "did NOT succeed"
        print(f"\nDemo {verdict} in {took:.0f}s (sandbox on 127.0.0.1"
              f"{'; files kept in ' + str(root) if keep else ''}).", file=out)
        return 0 if ok else 1


async def _demo_rollback(runtime: Any, release: Release, sandbox: Sandbox, out: TextIO) -> bool:
    """Roll the release back from the console, as an incident responder would: every action."""
    from bot.rollback.model import Choices
    from bot.runbook.model import Outcome

    assert release.id is not None
    banner(out, f"Rolling back release #{release.id}")
    choices = Choices(reason="Coach answers time out on staging", tickets=["PP-142", "PP-143"],
                      deployment=True, schema=sandbox.postgres is not None, backup=True,
                      cache=sandbox.redis is not None, confirm_ref=sandbox.supabase.ref)
    line = f"/release rollback {release.id} {choices.reason}"
    print(f"{DEMO_USER}> {line}   (form: {', '.join(choices.chosen())}; "
          f"tickets {', '.join(choices.tickets)})", file=out)
    report = await runtime.rollbacks.run(release.id, choices, DEMO_USER, "releases")
    await runtime.reporter.flush()
    alias = sandbox.vercel.aliases.get(STAGING_DOMAIN)
    print(f"\n  {STAGING_DOMAIN} now points at {alias}", file=out)
    banner(out, f"The release log entry after the rollback (release-bot log show {release.id})")
    stored = runtime.store.get_release(release.id)
    print(runtime.redactor(release_table(stored)), file=out)
    failed = [r.action for r in report.results if r.outcome == Outcome.FAIL]
    return report.rolled_back and not failed


async def _show_knowledge_base(runtime: Any, release: Release, sandbox: Sandbox, out: TextIO) -> None:
    """What the bot committed and pushed to the knowledge base, and the top of the file."""
    from bot import kb

    await kb.drain(runtime.store)
    remote = Path(sandbox.values["KB_REPOSITORY"])
    banner(out, f"The knowledge base ({remote.name}, standing in for the team's repository)")
    print(run_git(remote, "log", "--format=  %h %s", "main"), file=out)
    path = f"{runtime.settings.KB_PATH.rstrip('/')}/{kb.file_name(release)}"
    print(f"\n  {path}:", file=out)
    for line in run_git(remote, "show", f"main:{path}").splitlines()[:14]:
        print(f"  {line}", file=out)


def main() -> int:
    """Entry point for `python -m sandbox.demo`."""
    os.environ.pop("CI", None)
    return asyncio.run(run_demo())


if __name__ == "__main__":
    sys.exit(main())
