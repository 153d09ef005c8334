"""scripts/apt-wait.sh: install-tools waits for another apt-get's lock, within a limit.

A stand-in `apt-get` on PATH prints apt's real lock messages (`E: Could not get lock …`) for
its first calls, the way apt-get does while another apt-get or dpkg runs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCKED = ("E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)\n"
          "E: Unable to lock directory /var/lib/apt/lists/")


def _fake_apt(tmp_path: Path, locked_calls: int, failure: str = LOCKED) -> Path:
    """An apt-get that fails with `failure` for its first `locked_calls` calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "apt-get"
    script.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {tmp_path}/calls
n=$(wc -l < {tmp_path}/calls)
if (( n <= {locked_calls} )); then
    printf '%s\\n' {failure!r} >&2
    exit 100
fi
echo "Reading package lists..."
""")
    script.chmod(0o755)
    return bin_dir


def _apt_get(tmp_path: Path, bin_dir: Path, timeout: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "APT_LOCK_POLL": "0",
           "APT_LOCK_TIMEOUT": str(timeout)}
    command = f'source "{REPO}/scripts/apt-wait.sh" && apt_get "$@"'
    return subprocess.run(["bash", "-c", command, "apt_get", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_waits_for_the_lock_then_runs(tmp_path: Path) -> None:
    bin_dir = _fake_apt(tmp_path, locked_calls=2)
    done = _apt_get(tmp_path, bin_dir, 600, "install", "-y", "chromium")
    assert done.returncode == 0, done.stderr
    assert _calls(tmp_path) == ["-o DPkg::Lock::Timeout=600 install -y chromium"] * 3
    assert done.stderr.count("waiting up to 600s") == 1
    assert "Reading package lists" in done.stdout


def test_gives_up_after_the_limit_with_one_clear_line(tmp_path: Path) -> None:
    bin_dir = _fake_apt(tmp_path, locked_calls=99)
    done = _apt_get(tmp_path, bin_dir, 0, "update")
    assert done.returncode == 100
    assert len(_calls(tmp_path)) == 1
    assert "apt is still locked by another apt-get or dpkg after 0s" in done.stderr


def test_other_failures_are_not_retried(tmp_path: Path) -> None:
    bin_dir = _fake_apt(tmp_path, locked_calls=99, failure="E: Unable to locate package chromum")
    done = _apt_get(tmp_path, bin_dir, 600, "install", "chromum")
    assert done.returncode == 100 and len(_calls(tmp_path)) == 1
    assert "Unable to locate package" in done.stderr and "waiting" not in done.stderr


def test_install_tools_uses_the_waiting_apt_get() -> None:
    script = (REPO / "scripts" / "install-tools.sh").read_text()
    assert 'source "${REPO_ROOT}/scripts/apt-wait.sh"' in script
    assert "apt_get update" in script and "apt_get install" in script
    assert "\n    apt-get " not in script
