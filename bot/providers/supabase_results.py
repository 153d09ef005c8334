"""What the Supabase CLI answers, as this bot reads it: its errors and its records.

Pure: the parsing of `--output-format json` documents and of the CLI's error codes, apart from
running the CLI (`bot.providers.supabase_cli`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

APPLYING = re.compile(r"Applying migration (\S+?)\.\.\.")
_VERSION = re.compile(r"^(\d+)")


class SupabaseCliError(Exception):
    """The CLI failed; `message` and `suggestion` are the CLI's own words, secrets masked."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        suggestion: str | None = None,
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
        timed_out: bool = False,
    ) -> None:
        self.message = message.strip()
        self.timed_out = timed_out
        self.code = code
        self.suggestion = suggestion.strip() if suggestion else None
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(self.message + (f"\n{self.suggestion}" if self.suggestion else ""))


class MigrationOrderError(SupabaseCliError):
    """Push refused: local migrations older than the newest remote one (`--include-all`)."""

    @property
    def versions(self) -> list[str]:
        """Versions of the out-of-order files named in the CLI's advice."""
        found = re.findall(r"migrations/(\d+)_", self.suggestion or "")
        return list(dict.fromkeys(found))


class MigrationHistoryMismatchError(SupabaseCliError):
    """Push refused: the remote history has versions the local migrations folder lacks."""


class MigrationPushError(SupabaseCliError):
    """A migration failed mid-push; `failed` names its file, `applied` what went in before it."""

    def __init__(
        self,
        message: str,
        *,
        failed: str | None,
        result: PushResult,
        code: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.failed = failed
        self.result = result
        super().__init__(
            message,
            code=code,
            suggestion=suggestion,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
            timed_out=result.timed_out,
        )

    @property
    def applied(self) -> list[str]:
        """Versions this push applied and recorded before the failure."""
        return self.result.applied

    @property
    def failed_version(self) -> str | None:
        """Version of the failing migration."""
        versions = file_versions([self.failed]) if self.failed else []
        return versions[0] if versions else None


@dataclass(frozen=True)
class MigrationRow:
    """One line of `supabase migration list`: a version present locally, remotely or both."""

    local: str | None
    remote: str | None
    time: datetime | None

    @property
    def version(self) -> str:
        """The migration version (timestamp prefix of its file name)."""
        return self.local or self.remote or ""

    @property
    def applied(self) -> bool:
        """Recorded in the database's migration history."""
        return self.remote is not None

    @property
    def pending(self) -> bool:
        """Present locally but not applied."""
        return self.local is not None and self.remote is None


@dataclass
class PushResult:
    """Outcome of `db push`: `applied` versions, and the files the CLI named."""

    applied: list[str]
    migrations: list[str] = field(default_factory=list)
    dry_run: bool = False
    up_to_date: bool = False
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0
    timed_out: bool = False


@dataclass
class DownResult:
    """Outcome of `migration down`: `reverted` versions and the `version` now at the head."""

    reverted: list[str]
    version: str | None = None
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0



def code_is(error: SupabaseCliError, suffix: str) -> bool:
    """Whether the CLI's error code ends with `suffix` (codes carry a varying prefix)."""
    return bool(error.code and error.code.endswith(suffix))


def retype(error: SupabaseCliError, kind: type[SupabaseCliError]) -> SupabaseCliError:
    """The same failure as a more precise error class."""
    return kind(
        error.message,
        code=error.code,
        suggestion=error.suggestion,
        returncode=error.returncode,
        stdout=error.stdout,
        stderr=error.stderr,
    )



def file_versions(files: list[str]) -> list[str]:
    """The versions (leading digits) of migration file names."""
    found = (_VERSION.match(Path(name).name) for name in files)
    return [match.group(1) for match in found if match]



def parse_time(value: Any) -> datetime | None:
    """A `migration list` time (`YYYY-MM-DD HH:MM:SS`, UTC), or None."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON document the CLI printed on stdout (the whole of it, else its last object line)."""
    text = stdout.strip()
    candidates = [text, *reversed([line for line in text.splitlines() if line.startswith("{")])]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def stderr_tail(stderr: str, lines: int = 8) -> str:
    """The last lines of stderr (where the CLI says what went wrong)."""
    return "\n".join(stderr.strip().splitlines()[-lines:])

