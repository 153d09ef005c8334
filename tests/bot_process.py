"""The real `release-bot serve` as a separate process (under Litestream when a replica is set).

`ProcessHarness` keeps `SlackHarness`'s Slack emulator and signed requests, but the bot is a
subprocess in its own process group, so a test can `kill -9` all of it (Litestream and the bot)
the way a crashed or recycled machine loses it, wipe its disk, and start it again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from bot.chat.blocks import GATE_ACTION_PREFIX, RETRY_ACTION
from bot.durability import litestream_binary
from bot.runbook.model import Release, ReleaseStatus, StepState
from bot.store import Store
from tests.slack_e2e import BOT_TOKEN, SIGNING_SECRET, SlackHarness, buttons

REPO = Path(__file__).resolve().parent.parent
INHERITED_PREFIXES = ("SLACK_", "VERCEL_", "GITHUB_", "SUPABASE_", "STAGING_", "LITESTREAM_",
                      "RELEASE_BOT_", "DATABASE_PATH", "RUNBOOK_PATH", "DYNO")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_env(values: dict[str, Any]) -> dict[str, str]:
    """This machine's environment without any bot setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES)}
    env.update({k: str(v) for k, v in values.items()})
    return env


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]


class ProcessHarness(SlackHarness):
    """A `release-bot serve` process on `tmp_path/data/release-log.db`, reached as Slack would."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        super().__init__(tmp_path, **settings)
        self.data_dir = tmp_path / "data"
        self.db_path = self.data_dir / "release-log.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = tmp_path / "bot-0.log"

    def env(self, **overrides: Any) -> dict[str, str]:
        values: dict[str, Any] = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{self.slack_url}/api/",
            "DATABASE_PATH": str(self.db_path),
            "HTTP_TIMEOUT_SECONDS": 5,
        }
        values.update(self.overrides)
        values.update(overrides)
        return bot_env(values)

    async def start_bot(self, **overrides: Any) -> None:
        """Start the process and wait until /healthz answers (recovery has run by then)."""
        self.starts += 1
        port = free_port()
        self.log_path = self.tmp_path / f"bot-{self.starts}.log"
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 (Popen returns at once)
                serve_command(port), env=self.env(**overrides),
                cwd=self.tmp_path, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.bot_url = f"http://127.0.0.1:{port}"
        self.http = httpx.AsyncClient(base_url=self.bot_url, timeout=10)
        deadline = asyncio.get_running_loop().time() + 90
        while not await self._healthy():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the bot never answered /healthz:\n{self.output()}")
            await asyncio.sleep(0.05)

    async def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the bot exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return (await self.http.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the whole process group (Litestream and the bot), as a dead machine would."""
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    async def stop_bot(self) -> None:
        self.kill9()
        await self.http.aclose()

    def wipe_disk(self) -> None:
        """The machine's disk is gone: the database, its WAL and Litestream's local state."""
        for path in self.data_dir.iterdir():
            if path.is_dir():
                for inner in sorted(path.rglob("*"), reverse=True):
                    inner.rmdir() if inner.is_dir() else inner.unlink()
                path.rmdir()
            else:
                path.unlink()

    # --- reading the log the way the console does (it shares the file) ----------------------
    @contextmanager
    def store(self, path: Path | None = None) -> Iterator[Store]:
        target = path or self.db_path
        assert target.exists(), f"{target} does not exist"
        store = Store(target)
        try:
            yield store
        finally:
            store.db.conn.close()

    def release(self, release_id: int, path: Path | None = None) -> Release | None:
        with self.store(path) as store:
            return store.get_release(release_id)

    async def wait_release(self, release_id: int, check: Callable[[Release], bool], what: str,
                           timeout: float = 120) -> Release:
        def ready() -> Release | None:
            release = self.release(release_id)
            return release if release is not None and check(release) else None

        try:
            found: Release = await self.wait_for(ready, timeout, f"release #{release_id}: {what}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnosis()}") from None
        return found

    def diagnosis(self) -> str:
        """What a failed wait shows: every release with its steps, what the bot answered, its log."""
        lines = []
        if self.db_path.exists():
            with self.store() as store:
                for release in store.list_releases(limit=20):
                    steps = ", ".join(
                        f"{s.name}={s.state.value}:{(s.result.summary if s.result else '')[:80]}"
                        for s in release.steps)
                    lines.append(f"release #{release.id} {release.status.value}: {steps}")
        for key, answers in self.state.responses.items():
            lines.extend(f"answer {key}: {json.dumps(a)[:300]}" for a in answers)
        return "\n".join(lines) + f"\n--- bot output ---\n{self.output()}"

    async def replica_shows(self, url: str, check: Callable[[Store], bool], what: str,
                            timeout: float = 60) -> None:
        """Wait until a restore of the replica satisfies `check` (Litestream has caught up)."""
        binary = litestream_binary()
        assert binary is not None
        deadline = asyncio.get_running_loop().time() + timeout
        probe = 0
        while True:
            probe += 1
            out = self.tmp_path / f"probe-{probe}.db"
            proc = await asyncio.create_subprocess_exec(
                binary, "restore", "-o", str(out), url,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await proc.wait()
            if out.exists():
                with self.store(out) as store:
                    if check(store):
                        return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the replica never showed {what}")
            await asyncio.sleep(0.2)


@asynccontextmanager
async def serve_cancelling(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on loopback; a handler whose client dies (kill -9) is cancelled with it."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()






def gate_posts(bot: ProcessHarness, release: Release) -> list[dict[str, Any]]:
    return [m for m in bot.thread(release.thread_ts or "")
            if any(b["action_id"].startswith(GATE_ACTION_PREFIX) for b in buttons(m))]


async def wait_gate(bot: ProcessHarness, release_id: int, count: int) -> dict[str, Any]:
    """The `count`-th gate question of the release, with the release waiting in the log."""
    release = await bot.wait_release(release_id, lambda r: r.status == ReleaseStatus.WAITING,
                                     "waiting at the gate")
    posts = await bot.wait_for(lambda: len(gate_posts(bot, release)) >= count and gate_posts(
        bot, release), 120, f"gate question {count} of #{release_id}")
    found: dict[str, Any] = posts[count - 1]
    return found


def finished(release: Release) -> bool:
    return not release.status.active


def outcomes(release: Release) -> dict[str, str]:
    return {s.name: s.state.value for s in release.steps}


async def approve(bot: ProcessHarness, release_id: int, user: str, count: int = 1) -> None:
    """Press *Apply* on the `count`-th gate question of the release."""
    gate = await wait_gate(bot, release_id, count)
    apply = next(b for b in buttons(gate) if b["action_id"] == f"{GATE_ACTION_PREFIX}apply")
    response, _ = await bot.press(apply["action_id"], apply["value"], user=user)
    assert response.status_code == 200


async def press_retry(bot: ProcessHarness, release: Release, user: str) -> None:
    """Press the **Retry step** button the release's parent message offers."""
    offered = await bot.wait_for(lambda: [
        b for u in bot.updates(release.thread_ts or "") for b in buttons(u)
        if b["action_id"] == RETRY_ACTION], 30, f"a Retry button on #{release.id}")
    response, _ = await bot.press(RETRY_ACTION, offered[-1]["value"], user=user,
                                  message_ts=release.thread_ts or "")
    assert response.status_code == 200


def consistent(release: Release) -> None:
    """No step is shown as both running and finished, and a finished step has its result."""
    for record in release.steps:
        if record.state in (StepState.RUNNING, StepState.WAITING):
            assert record.finished_at is None, record
        if record.state in (StepState.OK, StepState.WARN, StepState.FAIL):
            assert record.result is not None and record.finished_at is not None, record
