"""Small helpers for sentences that read naturally: `plural(1, "step")` is "1 step".

A leaf: it imports nothing of the bot at run time, so any layer may use it (step states are
compared by their values, which `StepState` members equal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.runbook.model import StepRecord


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun` as they read together: 1 step, 2 steps, 0 steps (`many` for irregular
    plurals)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def duration(seconds: float | None) -> str:
    """`1h 02m`, `4m 12s` or `9s`, rounded to the second ("—" when unknown)."""
    return "—" if seconds is None else clock(round(seconds))


def elapsed(seconds: float) -> str:
    """How long something has been running, in whole seconds so far: 42.9 s is `42s`."""
    return clock(int(max(seconds, 0)))


def uptime(seconds: int) -> str:
    """How long a server has been up: `3d 04h` past a day, else as `clock`."""
    days, rest = divmod(max(seconds, 0), 86400)
    return f"{days}d {rest // 3600:02d}h" if days else clock(rest)


def clock(whole: int) -> str:
    """`1h 02m`, `4m 12s` or `9s` for a whole number of seconds."""
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def tally(records: list[StepRecord]) -> str:
    """`5 passed, 1 failed, 2 skipped`: skipped steps are never counted as passed."""
    def count(*states: str) -> int:
        return sum(1 for r in records if r.state in states)

    passed, warned = count("ok", "warn"), count("warn")
    parts = [f"{passed} passed" + (f" ({warned} with warnings)" if warned else "")]
    for label, states in (("failed", ("fail", "interrupted")), ("skipped", ("skipped",)),
                          ("cancelled", ("cancelled",))):
        if count(*states):
            parts.append(f"{count(*states)} {label}")
    return ", ".join(parts)
