"""Run a command as an argument list (never a shell), with a timeout and a redacted tail.

Children run with colour off (`NO_COLOR=1`) and what they print is stripped of ANSI escape
codes as a guard, so tool output reads cleanly in Slack and parses the same everywhere.
`elapsed_progress` reports how long a long-running child has been at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.redact import Redactor
from bot.wording import elapsed

log = logging.getLogger(__name__)
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# Colour off: NO_COLOR is honoured by picocolors (next lint), Node and newer chalk; FORCE_COLOR is
# dropped because picocolors treats any value, "0" included, as "colour on", and older chalk
# (jest) already leaves colour off on a pipe.
NO_COLOUR = {"NO_COLOR": "1"}
PROGRESS_EVERY_SECONDS = 15.0


def strip_ansi(text: str) -> str:
    """`text` without ANSI escape sequences (colours, cursor moves, hyperlinks)."""
    return ANSI.sub("", text)


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
        stdout=clean(strip_ansi(out.decode("utf-8", "replace"))),
        stderr=clean(strip_ansi(err.decode("utf-8", "replace"))),
        timed_out=timed_out,
    )


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def child_env(extra: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The bot's environment for a child process, less `drop` and every secret setting.

    The release's own code runs here (`npm ci` install scripts, tests, Playwright), so no secret
    setting of the bot is inherited; what a child really needs is passed in `extra`. Colour is
    off (`NO_COLOR=1`, `FORCE_COLOR` dropped) unless `extra` says otherwise.
    """
    from pydantic import SecretStr

    from bot.config import Settings

    secret_names = {name for name, field in Settings.model_fields.items()
                    if "SecretStr" in str(field.annotation) or field.annotation is SecretStr}
    dropped = {*secret_names, *drop, "FORCE_COLOR"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(NO_COLOUR)
    env.update(extra or {})
    return env


@contextlib.asynccontextmanager
async def elapsed_progress(
    report: Callable[[str], Awaitable[None]],
    label: str,
    every: float | None = None,
) -> AsyncIterator[None]:
    """Report `label` now, then `label — 1m 05s elapsed` every `every` seconds until the block ends.

    A report that fails (a chat hiccup) is logged and never interrupts the work it describes.
    """
    interval = PROGRESS_EVERY_SECONDS if every is None else every
    started = time.monotonic()

    async def say(text: str) -> None:
        try:
            await report(text)
        except Exception:  # progress is best effort: the child keeps running
            log.warning("progress report failed", exc_info=True)

    async def tick() -> None:
        while True:
            await asyncio.sleep(interval)
            await say(f"{label} — {elapsed(time.monotonic() - started)} elapsed")

    await say(label)
    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
