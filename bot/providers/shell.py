"""Run a command as an argument list (never a shell), with a timeout and a redacted tail."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from bot.redact import Redactor


@dataclass
class CommandResult:
    """Exit code and captured output of a finished command."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 20) -> str:
        """The last lines of stdout and stderr together."""
        text = "\n".join(part.strip("\n") for part in (self.stdout, self.stderr) if part.strip())
        return "\n".join(text.splitlines()[-lines:])


async def run_command(
    args: list[str],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900.0,
    redact: Redactor | None = None,
) -> CommandResult:
    """Run `args`; on timeout kill the whole process group and report `timed_out`."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=str(cwd) if cwd else None,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    # Read both pipes in tasks so that what was printed before a timeout is kept.
    readers = [asyncio.create_task(proc.stdout.read()), asyncio.create_task(proc.stderr.read())]
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        timed_out = True
        _kill_group(proc)
        await proc.wait()
    except asyncio.CancelledError:
        _kill_group(proc)
        for reader in readers:
            reader.cancel()
        raise
    out, err = await asyncio.gather(*readers)
    clean = redact or Redactor()
    return CommandResult(
        args=[clean(a) for a in args],
        returncode=proc.returncode if proc.returncode is not None else -1,
        stdout=clean(out.decode("utf-8", "replace")),
        stderr=clean(err.decode("utf-8", "replace")),
        timed_out=timed_out,
    )


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def child_env(extra: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The bot's environment for a child process, less `drop` and every secret setting.

    The release's own code runs here (`npm ci` install scripts, tests, Playwright), so no secret
    setting of the bot is inherited; what a child really needs is passed in `extra`.
    """
    from pydantic import SecretStr

    from bot.config import Settings

    secret_names = {name for name, field in Settings.model_fields.items()
                    if "SecretStr" in str(field.annotation) or field.annotation is SecretStr}
    env = {k: v for k, v in os.environ.items() if k not in secret_names and k not in drop}
    env.update(extra or {})
    return env
