"""A thin async wrapper over the real Supabase CLI: list, push and revert migrations.

Every call runs the CLI as an argument list (never a shell) with stdin closed, `--yes`,
`--agent no` and `--output-format json`, and parses the one JSON document it prints on stdout
(progress goes to stderr). Behaviour of CLI 2.117.0 this module relies on:

- `migration list` prints `{"migrations": [{"local", "remote", "time"}, ...]}`, an empty string
  meaning "absent on that side"; `time` is `YYYY-MM-DD HH:MM:SS` (UTC, from the version).
- `db push` prints `{"upToDate", "dryRun", "migrations": ["<version>_<name>.sql", ...], ...}`.
  Each migration runs in its own transaction and is recorded in
  `supabase_migrations.schema_migrations` (created by the CLI), so a failing migration leaves the
  earlier ones applied and recorded; stderr then ends with `Applying migration <file>...`.
- A local migration older than the newest remote one makes push refuse (code
  `LegacyDbPushMissingRemoteError`) and suggest `--include-all`; a remote version missing locally
  gives `LegacyDbPushMissingLocalError` and suggests `migration repair` / `db pull`.
- `migration down --last N` RESETS the database: it drops every schema not owned by
  `supabase_admin` (bar `public` and `extensions`), with all data, re-applies the remaining local
  migrations and `supabase/seed.sql`, and prints `{"version": <new head>, "last": N}`.
- Errors print `{"_tag": "Error", "error": {"code", "message", "suggestion"}}` and exit 1.

Targets: `db_url` wins. Its password is taken out of the URL and handed to the CLI as
`PGPASSWORD`, so it never shows in the process list; against a local server the URL needs
`?sslmode=disable`. A `project_ref` is used by linking the workdir once
(`supabase link --project-ref REF`, which needs `SUPABASE_ACCESS_TOKEN` and `SUPABASE_DB_PASSWORD`;
pass them as `SupabaseCli(access_token=..., db_password=...)`) and then `--linked`. With neither,
the workdir's existing link is used. The CLI needs a writable HOME (it creates `~/.supabase`);
without one a private temporary HOME is used. Telemetry and the update check are turned off
(`DO_NOT_TRACK`, `SUPABASE_TELEMETRY_DISABLED`, `SUPABASE_NO_UPDATE_NOTIFIER`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr

from bot.providers.shell import CommandResult, run_command
from bot.providers.supabase_results import (
    APPLYING,
    DownResult,
    MigrationHistoryMismatchError,
    MigrationOrderError,
    MigrationPushError,
    MigrationRow,
    PushResult,
    SupabaseCliError,
    code_is,
    file_versions,
    last_json,
    parse_time,
    retype,
    stderr_tail,
)
from bot.providers.tools import resolve_tool
from bot.redact import Redactor, default_redactor

__all__ = [
    "DownResult",
    "MigrationHistoryMismatchError",
    "MigrationOrderError",
    "MigrationPushError",
    "MigrationRow",
    "PushResult",
    "SupabaseCli",
    "SupabaseCliError",
    "split_db_url",
]

PASSTHROUGH_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
)
QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "SUPABASE_TELEMETRY_DISABLED": "1",
    "SUPABASE_NO_UPDATE_NOTIFIER": "1",
}


def _reveal(value: str | SecretStr | None) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value() or None
    return value or None


def split_db_url(db_url: str) -> tuple[str, str | None]:
    """`db_url` without its password, and the (percent-decoded) password."""
    parts = urlsplit(db_url)
    if parts.password is None:
        return db_url, None
    userinfo = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)


@dataclass
class SupabaseCli:
    """How to run the CLI: which binary, which credentials for linked projects, how long."""

    binary: str | Path | None = None
    access_token: str | SecretStr | None = None
    db_password: str | SecretStr | None = None
    timeout: float = 600.0

    def resolve_binary(self) -> str:
        """The CLI executable; raises SupabaseCliError when it is not installed."""
        found = str(self.binary) if self.binary else resolve_tool("supabase")
        if found and os.sep in found and not os.access(found, os.X_OK):
            found = None
        if not found:
            raise SupabaseCliError("Supabase CLI not found: run scripts/install-tools.sh or set SUPABASE_CLI")
        return found

    # -- commands --

    async def list_migrations(
        self, workdir: str | Path, db_url: str | None = None, project_ref: str | None = None
    ) -> list[MigrationRow]:
        """Local and remote migrations, in version order."""
        data = await self._json(["migration", "list"], workdir, db_url, project_ref)
        if not isinstance(data.get("migrations"), list):
            raise SupabaseCliError(f"unexpected output from supabase migration list: {data!r:.300}")
        rows = []
        for item in data["migrations"]:
            rows.append(
                MigrationRow(
                    local=item.get("local") or None,
                    remote=item.get("remote") or None,
                    time=parse_time(item.get("time")),
                )
            )
        return sorted(rows, key=lambda row: row.version)

    async def push(
        self,
        workdir: str | Path,
        db_url: str | None = None,
        project_ref: str | None = None,
        *,
        dry_run: bool = False,
        include_all: bool = False,
    ) -> PushResult:
        """Apply pending migrations; raises MigrationPushError, MigrationOrderError, ..."""
        before: list[MigrationRow] = []
        if not dry_run:
            before = await self.list_migrations(workdir, db_url, project_ref)
        argv = ["db", "push"]
        if dry_run:
            argv.append("--dry-run")
        if include_all:
            argv.append("--include-all")
        try:
            result, data, error = await self._call(argv, workdir, db_url, project_ref)
        except SupabaseCliError as exc:
            if not exc.timed_out or dry_run:
                raise
            killed = CommandResult(argv, -1, exc.stdout, exc.stderr, timed_out=True)
            raise await self._push_failure(exc, killed, workdir, db_url, project_ref, before) from exc
        if error is None:
            files = [str(name) for name in data.get("migrations") or []]
            return PushResult(
                applied=[] if dry_run else file_versions(files),
                migrations=files,
                dry_run=bool(data.get("dryRun", dry_run)),
                up_to_date=bool(data.get("upToDate", False)),
                stdout=result.stdout,
                stderr=result.stderr,
                returncode=result.returncode,
            )
        if code_is(error, "DbPushMissingRemoteError") or "--include-all" in (error.suggestion or ""):
            raise retype(error, MigrationOrderError)
        if code_is(error, "DbPushMissingLocalError"):
            raise retype(error, MigrationHistoryMismatchError)
        if dry_run or not APPLYING.search(result.stderr):
            raise error
        raise await self._push_failure(error, result, workdir, db_url, project_ref, before)

    async def down(
        self,
        workdir: str | Path,
        last: int,
        db_url: str | None = None,
        project_ref: str | None = None,
    ) -> DownResult:
        """Revert the last `last` migrations. The CLI resets the whole database to do it."""
        if last < 1:
            raise ValueError("last must be at least 1")
        rows = await self.list_migrations(workdir, db_url, project_ref)
        before = sorted(row.version for row in rows if row.applied)
        argv = ["migration", "down", "--last", str(last)]
        result, data, error = await self._call(argv, workdir, db_url, project_ref)
        if error is not None:
            raise error
        head = str(data["version"]) if data.get("version") else None
        if head is not None:
            reverted = [version for version in before if version > head]
        else:
            after = await self.list_migrations(workdir, db_url, project_ref)
            still = {row.version for row in after if row.applied}
            reverted = [version for version in before if version not in still]
        return DownResult(
            reverted=reverted,
            version=head,
            stdout=result.stdout,
            stderr=result.stderr,
            returncode=result.returncode,
        )

    async def link(self, workdir: str | Path, project_ref: str) -> None:
        """`supabase link --project-ref REF` (needs access token and database password)."""
        argv = ["link", "--project-ref", project_ref, *self._common(workdir)]
        result = await self._run(argv, self._env(None), workdir)
        _, error = self._parse(result)
        if error is not None:
            raise error

    # -- plumbing --

    async def _push_failure(
        self,
        error: SupabaseCliError,
        result: CommandResult,
        workdir: str | Path,
        db_url: str | None,
        project_ref: str | None,
        before: list[MigrationRow],
    ) -> MigrationPushError:
        attempted = APPLYING.findall(result.stderr)
        # The last migration the CLI started is the one that failed (or was cut off by a timeout).
        failed_file = attempted[-1] if attempted else None
        was_applied = {row.version for row in before if row.applied}
        try:
            rows = await self.list_migrations(workdir, db_url, project_ref)
            now_applied = {row.version for row in rows if row.applied}
            applied = sorted(now_applied - was_applied)
        except SupabaseCliError:
            now_applied, applied = set(), file_versions(attempted[:-1])
        if failed_file is None and now_applied:
            # No progress lines (a timeout loses them): the CLI applies in version order, so the
            # first pending migration still missing from the history is the one that was running.
            pending = [row.version for row in before if row.pending and row.version not in now_applied]
            failed_file = _migration_file(workdir, pending[0]) if pending else None
        message = f"migration {failed_file} failed: {error.message}" if failed_file else error.message
        push_result = PushResult(
            applied=applied,
            migrations=attempted,
            stdout=result.stdout,
            stderr=result.stderr,
            returncode=result.returncode,
            timed_out=result.timed_out,
        )
        return MigrationPushError(
            message,
            failed=failed_file,
            result=push_result,
            code=error.code,
            suggestion=error.suggestion,
        )

    async def _json(
        self,
        argv: list[str],
        workdir: str | Path,
        db_url: str | None,
        project_ref: str | None,
    ) -> dict[str, Any]:
        _, data, error = await self._call(argv, workdir, db_url, project_ref)
        if error is not None:
            raise error
        return data

    async def _call(
        self,
        argv: list[str],
        workdir: str | Path,
        db_url: str | None,
        project_ref: str | None,
    ) -> tuple[CommandResult, dict[str, Any], SupabaseCliError | None]:
        target, password = await self._target(workdir, db_url, project_ref)
        args = [*argv, *target, *self._common(workdir)]
        result = await self._run(args, self._env(password), workdir)
        data, error = self._parse(result)
        return result, data, error

    async def _target(
        self, workdir: str | Path, db_url: str | None, project_ref: str | None
    ) -> tuple[list[str], str | None]:
        if db_url:
            url, password = split_db_url(db_url)
            return ["--db-url", url], password
        if project_ref and _linked_ref(workdir) != project_ref:
            await self.link(workdir, project_ref)
        return ["--linked"], None

    def _common(self, workdir: str | Path) -> list[str]:
        path = Path(workdir).resolve()
        if not path.is_dir():
            raise SupabaseCliError(f"workdir {path} does not exist")
        return ["--workdir", str(path), "--yes", "--agent", "no", "--output-format", "json"]

    def _env(self, pg_password: str | None) -> dict[str, str]:
        env = {name: os.environ[name] for name in PASSTHROUGH_ENV if name in os.environ}
        env["HOME"] = _writable_home(env.get("HOME"))
        env.update(QUIET_ENV)
        token, db_password = _reveal(self.access_token), _reveal(self.db_password)
        if token:
            env["SUPABASE_ACCESS_TOKEN"] = token
        if db_password:
            env["SUPABASE_DB_PASSWORD"] = db_password
        if pg_password:
            env["PGPASSWORD"] = pg_password
        return env

    def _redactor(self, env: dict[str, str]) -> Redactor:
        names = ("SUPABASE_ACCESS_TOKEN", "SUPABASE_DB_PASSWORD", "PGPASSWORD")
        return Redactor(env[name] for name in names if name in env)

    async def _run(self, args: list[str], env: dict[str, str], workdir: str | Path) -> CommandResult:
        binary = self.resolve_binary()
        result = await run_command(
            [binary, *args], cwd=workdir, env=env, timeout=self.timeout, redact=self._redactor(env)
        )
        if result.timed_out:
            raise SupabaseCliError(
                f"supabase {' '.join(args[:2])} timed out after {self.timeout:g}s",
                stdout=result.stdout,
                stderr=result.stderr,
                timed_out=True,
            )
        return result

    def _parse(self, result: CommandResult) -> tuple[dict[str, Any], SupabaseCliError | None]:
        data = last_json(result.stdout)
        clean = default_redactor()
        if data.get("_tag") == "Error" or result.returncode != 0:
            raw = data.get("error")
            detail: dict[str, Any] = raw if isinstance(raw, dict) else {}
            message = str(detail.get("message") or "") or stderr_tail(result.stderr)
            suggestion = detail.get("suggestion")
            return data, SupabaseCliError(
                clean(message or f"supabase exited with {result.returncode}"),
                code=str(detail["code"]) if detail.get("code") else None,
                suggestion=clean(str(suggestion)) if suggestion else None,
                returncode=result.returncode,
                stdout=clean(result.stdout),
                stderr=clean(result.stderr),
            )
        return data, None


def _writable_home(home: str | None) -> str:
    """`home`, or a private temporary one: the CLI dies unless it can create `~/.supabase`."""
    if home and os.path.isdir(home) and os.access(home, os.W_OK):
        return home
    fallback = Path(tempfile.gettempdir()) / f"release-bot-supabase-home-{os.getuid()}"
    fallback.mkdir(mode=0o700, exist_ok=True)
    return str(fallback)


def _migration_file(workdir: str | Path, version: str) -> str:
    found = sorted((Path(workdir) / "supabase" / "migrations").glob(f"{version}_*.sql"))
    return found[0].name if found else version


def _linked_ref(workdir: str | Path) -> str | None:
    marker = Path(workdir) / "supabase" / ".temp" / "project-ref"
    try:
        return marker.read_text().strip() or None
    except OSError:
        return None

