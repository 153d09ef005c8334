"""Small helpers for sentences that read naturally: `plural(1, "step")` is "1 step"."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun` as they read together: 1 step, 2 steps, 0 steps (`many` for irregular
    plurals)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"
