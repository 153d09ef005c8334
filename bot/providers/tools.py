"""Where the executables the steps run are found.

Settings name a command (`SUPABASE_CLI`, `PLAYWRIGHT_CHROMIUM_PATH`); otherwise the repository's
own `.tools/node_modules/.bin` (filled by `scripts/install-tools.sh`) and then `PATH` are tried.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bot.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_BIN = REPO_ROOT / ".tools" / "node_modules" / ".bin"


def resolve_tool(name: str, settings: Settings | None = None) -> str | None:
    """The full path of tool `name`, or None when it is not installed."""
    candidates: list[str] = []
    if name == "supabase" and settings is not None:
        candidates.append(settings.SUPABASE_CLI)
    if name == "chromium":
        if settings is not None and settings.PLAYWRIGHT_CHROMIUM_PATH:
            candidates.append(settings.PLAYWRIGHT_CHROMIUM_PATH)
        candidates += ["chromium", "chromium-browser", "google-chrome"]
    candidates.append(name)
    for candidate in candidates:
        if os.sep in candidate:
            if Path(candidate).is_file() and os.access(candidate, os.X_OK):
                return candidate
            continue
        local = LOCAL_BIN / candidate
        if local.is_file():
            return str(local)
        found = shutil.which(candidate)
        if found:
            return found
    return None
