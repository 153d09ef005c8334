"""What the runbook needs from the world, declared here and implemented elsewhere.

A step names the tools it runs; the lookup that finds them is handed in (the steps hand in
bot.providers.tools.resolve_tool, which knows SUPABASE_CLI and the repository's .tools/).
"""

from __future__ import annotations

import shutil
from typing import Protocol

from bot.config import Settings


class ToolLookup(Protocol):
    """Finds an executable a step runs: its full path, or None when it is not installed."""

    def __call__(self, name: str, settings: Settings, /) -> str | None: ...


def on_path(name: str, settings: Settings, /) -> str | None:
    """The plain lookup: `name` on PATH (steps that run tools hand in the bot's own lookup)."""
    return shutil.which(name)
