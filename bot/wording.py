"""Small helpers for sentences that read naturally: `plural(1, "step")` is "1 step"."""

from __future__ import annotations

from bot.runbook.model import StepRecord, StepState


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun` as they read together: 1 step, 2 steps, 0 steps (`many` for irregular
    plurals)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def duration(seconds: float | None) -> str:
    """`1h 02m`, `4m 12s` or `9s`."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def tally(records: list[StepRecord]) -> str:
    """`5 passed, 1 failed, 2 skipped`: skipped steps are never counted as passed."""
    def count(*states: StepState) -> int:
        return sum(1 for r in records if r.state in states)

    passed, warned = count(StepState.OK, StepState.WARN), count(StepState.WARN)
    parts = [f"{passed} passed" + (f" ({warned} with warnings)" if warned else "")]
    for label, states in (("failed", (StepState.FAIL, StepState.INTERRUPTED)),
                          ("skipped", (StepState.SKIPPED,)), ("cancelled", (StepState.CANCELLED,))):
        if count(*states):
            parts.append(f"{count(*states)} {label}")
    return ", ".join(parts)
