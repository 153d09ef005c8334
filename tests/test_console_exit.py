"""`release-bot console` leaves at once on Ctrl-C, and reads piped lines to the end."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _console(tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VERCEL_", "GITHUB_"))}
    env.update({"DATABASE_PATH": str(tmp_path / "log.db"), "PYTHONPATH": str(REPO)})
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "console", "--user", "ada"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path, env=env)


def _wait_for(process: subprocess.Popen[bytes], text: bytes, bound: float = 60) -> bytes:
    """Output up to `text` (the bound is a hang guard, not a speed assumption)."""
    assert process.stdout is not None
    seen = b""
    deadline = time.monotonic() + bound
    while text not in seen:
        ready, _, _ = select.select([process.stdout], [], [], max(deadline - time.monotonic(), 0))
        assert ready, f"no {text!r} within {bound}s: {seen!r}"
        chunk = os.read(process.stdout.fileno(), 4096)
        assert chunk, f"console ended before {text!r}: {seen!r}"
        seen += chunk
    return seen


def test_ctrl_c_leaves_at_once_without_another_enter(tmp_path: Path) -> None:
    process = _console(tmp_path)
    try:
        _wait_for(process, b"ada> ")
        process.send_signal(signal.SIGINT)  # stdin stays open: nothing more is typed
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
        process.wait()
    assert process.stderr is not None and b"Traceback" not in process.stderr.read()


def test_piped_lines_are_handled_to_the_end(tmp_path: Path) -> None:
    process = _console(tmp_path)
    out, err = process.communicate(b"help\n/release status\nquit\n", timeout=120)
    assert process.returncode == 0, err
    assert out.count(b"ada> ") == 3 and b"/release start [ref]" in out
    assert b"No release" in out
