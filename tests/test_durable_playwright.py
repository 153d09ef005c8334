"""Crash test: `kill -9` the real bot while Playwright drives the real Chromium, then Retry.

The runbook is `health` then `playwright` against the sandbox staging app. The workspace holds a
second spec whose page the staging app holds open until the test has killed the bot, so the
kill lands while Playwright and Chromium are really at work (the staging app has seen the
browser ask for the page, and both are among the bot's descendants). `kill -9` takes the process
group (Litestream and the bot); nothing the bot started may outlive it: Playwright's runner,
its worker and Chromium run in a process group of their own and must die with the bot. The disk
is wiped and the bot starts again from the `file://` replica: the log is intact and consistent,
the release is interrupted at `playwright` and offers Retry, and Retry runs Playwright again
(both specs pass) without asking staging's health a second time.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from bot.runbook.model import ReleaseStatus, StepState
from sandbox.server import CALLS_KEY, FAULTS_KEY
from sandbox.staging_app import StagingState, create_staging_app
from sandbox.workspace import Workspace, create_workspace
from tests.bot_process import ProcessHarness, consistent, finished, press_retry, serve_cancelling
from tests.test_step_playwright import NODE_MODULES, _require_playwright

pytestmark = pytest.mark.timeout(900)

RUNBOOK = """
name: playwright-crash
phases:
  - name: validate
    steps:
      - name: health
      - name: playwright
"""
BRANCH = "release/1.2.0"
APPROVER = "U0BOSS"
HELD_SPEC = "e2e/specs/held.spec.ts"
PWA_SPEC = "e2e/specs/pwa-offline.spec.ts"
HELD_PAGE = "/api/version"
# No timeout of its own: the page stays pending for as long as the staging app holds it.
HELD = f"""import {{ expect, test }} from "@playwright/test";

// The crash test holds this page on staging until it has killed the bot.
test("staging answers the held page", async ({{ page }}) => {{
  test.setTimeout(0);
  const response = await page.goto("{HELD_PAGE}?held=crash", {{ timeout: 0 }});
  expect(response?.ok()).toBe(true);
}});
"""


@pytest.fixture
def chromium() -> str:
    return _require_playwright()


@pytest.fixture
def workspace(tmp_path: Path, chromium: str) -> Workspace:
    """The sample app with the held spec committed, and a release branch."""
    ws = create_workspace(tmp_path / "ws", node_modules=NODE_MODULES)
    ws.commit_on_branch("main", {HELD_SPEC: HELD}, "A spec the crash test holds open")
    ws.git("pull", "-q", "--ff-only", cwd=ws.app)
    ws.add_release_branch("1.2.0")
    return ws


# --- the bot's processes, read from /proc ------------------------------------------------------

Proc = tuple[int, str]  # (pid, start time): a pid the kernel reuses is another process


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name: [state, ppid, …], or None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def _cmdline(pid: int) -> str:
    with suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def descendants(root: int) -> dict[Proc, str]:
    """Every live process below `root` (whatever its session or group), with its command line."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
            starts[int(entry.name)] = fields[19]
    found: dict[Proc, str] = {}
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        found[(pid, starts[pid])] = _cmdline(pid)
        todo.extend(parents.get(pid, []))
    return found


def alive(procs: dict[Proc, str]) -> dict[Proc, str]:
    """Those of `procs` still running (a zombie nobody reaps has died)."""
    live = {}
    for (pid, start), cmdline in procs.items():
        fields = _stat(pid)
        if fields is not None and fields[19] == start and fields[0] != "Z":
            live[(pid, start)] = cmdline
    return live


def kill_survivors(procs: dict[Proc, str]) -> None:
    for pid, _ in alive(procs):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def bot_processes() -> Iterator[dict[Proc, str]]:
    """The processes the test saw under the bot; any still alive at the end are killed."""
    seen: dict[Proc, str] = {}
    yield seen
    kill_survivors(seen)


def held_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c["path"] == HELD_PAGE and c["query"].get("held") == "crash"]


async def test_kill_9_while_playwright_drives_chromium_then_retry(
        tmp_path: Path, workspace: Workspace, chromium: str,
        bot_processes: dict[Proc, str]) -> None:
    runbook = tmp_path / "runbook.yml"
    runbook.write_text(RUNBOOK)
    replica = f"file://{tmp_path / 'replica'}"
    # Staging serves the release's build, so the held page (/api/version) answers 200 once freed.
    staging_app = create_staging_app(StagingState(commit=workspace.sha(BRANCH)))
    calls = staging_app[CALLS_KEY]
    staging_app[FAULTS_KEY].add(rf"^GET {HELD_PAGE}$", status=0, delay=3600)  # until the kill
    async with serve_cancelling(staging_app) as staging_url:
        settings = {"RUNBOOK_PATH": runbook, "APP_WORKSPACE": workspace.app,
                    "STAGING_URL": staging_url, "PLAYWRIGHT_CHROMIUM_PATH": chromium,
                    "PLAYWRIGHT_SPECS": f"{HELD_SPEC},{PWA_SPEC}",
                    "COMMAND_TIMEOUT_SECONDS": 600, "RELEASE_APPROVERS": APPROVER,
                    "LITESTREAM_REPLICA_URL": replica}
        async with ProcessHarness(tmp_path, **settings) as bot:
            await bot.command(f"start {BRANCH}", user=APPROVER)

            # --- Playwright is at work: Chromium has asked staging for the held page ----------
            await bot.wait_for(lambda: held_calls(calls), 300, "Chromium asking for the held page")
            running = await bot.wait_release(
                1, lambda r: r.step("playwright").state == StepState.RUNNING, "playwright running")
            assert running.step("health").state in (StepState.OK, StepState.WARN)
            assert bot.proc is not None
            bot_processes.update(descendants(bot.proc.pid))
            commands = list(bot_processes.values())
            assert any("playwright test" in c for c in commands), commands
            assert any("chromium" in c for c in commands), commands
            health_calls = sum(c["path"] == "/api/health" for c in calls)
            assert health_calls >= 1

            await bot.replica_shows(replica, lambda s: (r := s.get_release(1)) is not None
                                    and r.step("playwright").state == StepState.RUNNING,
                                    "#1 in playwright")
            bot.kill9()
            # Nothing the bot started outlives it: not Playwright's runner, not Chromium.
            try:
                await bot.wait_for(lambda: not alive(bot_processes), 60, "the children dying")
            except AssertionError:
                left = sorted(c[:100] for c in alive(bot_processes).values())
                raise AssertionError(f"outlived the killed bot: {left}") from None

            # --- restored: the log is intact, the release interrupted at playwright -----------
            bot.wipe_disk()
            await bot.stop_bot()
            await bot.start_bot()
            assert "restored the release log" in bot.output()
            release = await bot.wait_release(1, finished, "interrupted after the restart")
            assert release.status == ReleaseStatus.INTERRUPTED, release.status
            assert release.step("playwright").state == StepState.INTERRUPTED
            consistent(release)
            health = release.step("health")
            assert health.state == running.step("health").state
            assert health.result is not None and health.result == running.step("health").result
            assert len(held_calls(calls)) == 1

            # --- Retry: Playwright again from its step, health not asked again ----------------
            await press_retry(bot, release, APPROVER)
            done = await bot.wait_release(1, finished, "finished after Retry", timeout=300)
            assert done.status == ReleaseStatus.SUCCEEDED, done.step("playwright").result
            consistent(done)
            played = done.step("playwright").result
            assert played is not None
            assert played.summary == "Playwright: 2 passed, 0 failed", played.summary
            assert len(held_calls(calls)) == 2  # the retried run asked for the page again
            assert done.step("health").result == health.result
            assert sum(c["path"] == "/api/health" for c in calls) == health_calls
