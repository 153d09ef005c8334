"""Processes the benchmarks drive: `release-bot serve`, the bare Bolt app, the Slack emulator.

Each runs in a temporary working directory (no `.env` is read) with only the settings given here,
its output in a log file there; `Proc.rss_mib()` reads its resident memory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-sandbox-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**values: str) -> dict[str, str]:
    """A clean environment: PATH, HOME, locale, and the given settings only."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(values)
    return env


def bot_command(*args: str) -> list[str]:
    """`release-bot ARGS` with this interpreter's installation."""
    script = Path(sys.executable).parent / "release-bot"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "bot.cli", *args]


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` in MiB (psutil when installed, else /proc/<pid>/status)."""
    try:
        import psutil

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        pass
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Proc:
    """A started process serving HTTP on `url`."""

    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def rss_mib(self) -> float:
        return rss_mib(self.popen.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def spawn(name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    log = (cwd / f"{name}.log").open("ab")
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


async def wait_healthy(url: str, popen: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    """Poll `GET url/healthz` until 200; seconds waited. Fails if the process exits first."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"{popen.args!r} exited with {popen.returncode} before answering")
            try:
                async with http.get(f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except (TimeoutError, aiohttp.ClientError):
                pass
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{popen.args!r} did not answer /healthz within {timeout:.0f} s")
            await asyncio.sleep(0.02)


async def start_slack_emulator(cwd: Path) -> Proc:
    """tests/mock_slack_api.py in its own process (bench/slack_emulator.py)."""
    port = free_port()
    popen = spawn("slack", [sys.executable, str(HERE / "slack_emulator.py"), str(port)],
                  base_env(), cwd)
    url = f"http://127.0.0.1:{port}"
    await wait_healthy(url, popen)
    return Proc("slack", popen, url, cwd / "slack.log")


def bot_env(slack_url: str, database: Path) -> dict[str, str]:
    return base_env(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                    SLACK_API_URL=f"{slack_url}/api/", DATABASE_PATH=str(database),
                    ENVIRONMENT="staging")


async def start_bot(name: str, cwd: Path, slack_url: str, database: Path) -> tuple[Proc, float]:
    """`release-bot serve` on a free port; returns it and the seconds until /healthz answered."""
    port = free_port()
    popen = spawn(name, bot_command("serve", "--host", "127.0.0.1", "--port", str(port)),
                  bot_env(slack_url, database), cwd)
    url = f"http://127.0.0.1:{port}"
    took = await wait_healthy(url, popen)
    return Proc(name, popen, url, cwd / f"{name}.log"), took


async def start_bare(cwd: Path, slack_url: str) -> Proc:
    """The bare Bolt app (bench/bare_bolt.py) on a free port."""
    port = free_port()
    env = base_env(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                   SLACK_API_URL=f"{slack_url}/api/", PORT=str(port))
    popen = spawn("bare", [sys.executable, str(HERE / "bare_bolt.py")], env, cwd)
    url = f"http://127.0.0.1:{port}"
    await wait_healthy(url, popen)
    return Proc("bare", popen, url, cwd / "bare.log")
