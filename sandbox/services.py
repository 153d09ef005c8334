"""Launch real local PostgreSQL and Redis servers, and find the real CLI tools.

Used by the tests (through `tests/conftest_services.py`), by `release-bot demo` and by the
benchmarks. Nothing here is emulated: `PostgresServer` runs Debian's PostgreSQL (`initdb` and
`pg_ctl`), `RedisServer` runs `redis-server`, each on a free loopback port in a temporary
directory that is deleted on exit. Both are context managers, sync (`with`) and async
(`async with`, which runs the blocking start and stop in a thread).

`scripts/install-tools.sh` installs everything `find_tool` looks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_BIN = Path(".tools") / "node_modules" / ".bin"

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ServiceError(RuntimeError):
    """A local server could not be started, queried or stopped."""


# --- tools -----------------------------------------------------------------------------------


def _executable(path: Path | str | None) -> Path | None:
    if not path:
        return None
    candidate = Path(path)
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def _tools_bin(name: str) -> Path | None:
    for root in (REPO_ROOT, Path.cwd()):
        found = _executable(root / TOOLS_BIN / name)
        if found:
            return found
    return None


def postgres_bin_dir() -> Path | None:
    """The newest `/usr/lib/postgresql/<major>/bin` holding initdb, pg_ctl and psql."""
    candidates: list[tuple[int, Path]] = []
    for bin_dir in Path("/usr/lib/postgresql").glob("*/bin"):
        major = bin_dir.parent.name
        if major.isdigit() and all(_executable(bin_dir / tool) for tool in ("initdb", "pg_ctl", "psql")):
            candidates.append((int(major), bin_dir))
    return max(candidates)[1] if candidates else None


def find_tool(name: str) -> Path | None:
    """Locate a tool, or None when it is not installed.

    `supabase`: `$SUPABASE_CLI`, then `<repo>/.tools/node_modules/.bin/supabase`, then PATH.
    `playwright`: `<repo>/.tools/node_modules/.bin/playwright`, then PATH.
    `chromium`: `$PLAYWRIGHT_CHROMIUM_PATH`, then `/usr/bin/chromium`, then PATH.
    `redis-server`: PATH. `postgres` (or `postgresql`): the newest PostgreSQL bin directory.
    """
    if name == "supabase":
        return _executable(os.environ.get("SUPABASE_CLI")) or _tools_bin("supabase") or _which("supabase")
    if name == "playwright":
        return _tools_bin("playwright") or _which("playwright")
    if name == "chromium":
        return (
            _executable(os.environ.get("PLAYWRIGHT_CHROMIUM_PATH"))
            or _executable("/usr/bin/chromium")
            or _which("chromium")
        )
    if name == "redis-server":
        return _which("redis-server")
    if name in ("postgres", "postgresql"):
        return postgres_bin_dir()
    raise ValueError(f"unknown tool {name!r}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


# --- PostgreSQL ------------------------------------------------------------------------------

# Supabase-shaped roles and schemas, so that typical Supabase migrations (grants to `anon`,
# policies using `auth.uid()`, foreign keys to `auth.users`) apply to a plain server. The schemas
# belong to `supabase_admin`: `supabase migration down` drops every schema that role does not own
# (bar public and extensions), exactly as it leaves a hosted project's auth schema alone.
_SUPABASE_ROLES_SQL = """
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'supabase_admin') THEN
    CREATE ROLE supabase_admin SUPERUSER NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
  END IF;
END
$roles$;
"""

_SUPABASE_SCHEMAS_SQL = """
CREATE SCHEMA IF NOT EXISTS extensions AUTHORIZATION supabase_admin;
CREATE SCHEMA IF NOT EXISTS auth AUTHORIZATION supabase_admin;
SET ROLE supabase_admin;
CREATE TABLE IF NOT EXISTS auth.users (
  id uuid PRIMARY KEY,
  email text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
  $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT nullif(current_setting('request.jwt.claim.role', true), '')::text $$;
CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS
  $$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;
RESET ROLE;
GRANT USAGE ON SCHEMA auth, extensions TO anon, authenticated, service_role;
"""


class _Service:
    """`with` and `async with` for a server with `start()` (returning itself) and `stop()`."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


class PostgresServer(_Service):
    """A throwaway PostgreSQL server on 127.0.0.1, password auth, deleted on exit.

    As root the server runs as the `postgres` user (PostgreSQL refuses to run as root) through
    `runuser -u postgres --`, in a temporary directory that user owns; otherwise it runs as the
    current user. It has its own socket directory, listens on a free loopback port only, and runs
    with fsync off. The superuser is `postgres` with a random password; `url` is
    `postgresql://postgres:PASS@127.0.0.1:PORT/postgres?sslmode=disable`, the `sslmode=disable`
    being what the Supabase CLI needs against a server without TLS.

    The Supabase CLI (2.117.0) needs no extra role for `db push`, `migration list` and
    `migration down --db-url`: it creates `supabase_migrations.schema_migrations` itself. With
    `supabase_roles=True` (the default) the server also gets what Supabase migrations commonly
    rely on: roles `supabase_admin` (superuser, owns the managed schemas), `anon`,
    `authenticated` and `service_role` (BYPASSRLS), and schemas `auth` (with `auth.users`,
    `auth.uid()`, `auth.role()`, `auth.jwt()` stubs reading `request.jwt.claim*` settings) and
    `extensions`, in `postgres`, in `template1` and so in every database `create_database` makes.
    `migration down` drops every schema not owned by `supabase_admin` except `public` and
    `extensions`, so these survive it just as on a hosted project.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        supabase_roles: bool = True,
        start_timeout: float = 60.0,
    ) -> None:
        self.bin_dir = bin_dir or postgres_bin_dir()
        self.supabase_roles = supabase_roles
        self.start_timeout = start_timeout
        self.password = secrets.token_hex(16)
        self.user = "postgres"
        self.host = "127.0.0.1"
        self.port = 0
        self.base_dir: Path | None = None
        self._run_as: str | None = None

    # -- lifecycle --

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (only valid while running)."""
        if self.base_dir is None:
            raise ServiceError("PostgreSQL server is not running")
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        """The Unix socket directory of this server (`-k`)."""
        return self.data_dir.parent / "sock"

    @property
    def log_file(self) -> Path:
        """The server log written by `pg_ctl -l`."""
        return self.data_dir.parent / "server.log"

    @property
    def running(self) -> bool:
        """Whether `start()` succeeded and `stop()` has not run yet."""
        return self.base_dir is not None and self.port != 0

    @property
    def url(self) -> str:
        """URL of the `postgres` database as the `postgres` superuser."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """URL of database `name` as the `postgres` superuser, with `sslmode=disable`."""
        if not self.running:
            raise ServiceError("PostgreSQL server is not running")
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{name}?sslmode=disable"

    def start(self) -> Self:
        """initdb, configure and start the server; raises ServiceError when it cannot."""
        if self.running:
            return self
        if self.bin_dir is None:
            raise ServiceError("PostgreSQL is not installed (run scripts/install-tools.sh)")
        self._run_as = self._pick_user()
        self.base_dir = Path(tempfile.mkdtemp(prefix="release-bot-pg-"))
        try:
            self._prepare_dirs()
            self._initdb()
            self._start_on_free_port()
            if self.supabase_roles:
                self.execute(_SUPABASE_ROLES_SQL)
                for database in ("template1", "postgres"):
                    self.execute(_SUPABASE_SCHEMAS_SQL, database=database)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast, `-m immediate`) and delete its directory."""
        base_dir, self.base_dir = self.base_dir, None
        if base_dir is None:
            return
        if (base_dir / "data" / "postmaster.pid").exists() and self.bin_dir is not None:
            with contextlib.suppress(ServiceError):
                self._run(
                    [
                        str(self.bin_dir / "pg_ctl"),
                        "-D",
                        str(base_dir / "data"),
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "30",
                        "stop",
                    ],
                    as_server_user=True,
                    timeout=60,
                )
        self.port = 0
        shutil.rmtree(base_dir, ignore_errors=True)

    # -- SQL through the bundled psql --

    def execute(self, sql: str, *, database: str = "postgres", timeout: float = 60.0) -> str:
        """Run SQL with `psql` (stops at the first error) and return its unaligned output."""
        if self.bin_dir is None or not self.running:
            raise ServiceError("PostgreSQL server is not running")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PGPASSWORD": self.password,
            "PGCONNECT_TIMEOUT": "10",
        }
        argv = [
            str(self.bin_dir / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            "\x1f",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            database,
            "-f",
            "-",
        ]
        try:
            done = subprocess.run(
                argv,
                input=sql,
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"psql timed out after {timeout:g}s") from exc
        if done.returncode != 0:
            raise ServiceError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def query(self, sql: str, *, database: str = "postgres") -> list[list[str]]:
        """Rows of a query as lists of text fields (NULL comes back as '')."""
        output = self.execute(sql, database=database)
        return [line.split("\x1f") for line in output.splitlines() if line]

    def create_database(self, name: str) -> str:
        """Create database `name` (from template1) and return its URL."""
        if not _DB_NAME.match(name):
            raise ValueError(f"invalid database name {name!r}")
        self.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name`, disconnecting its sessions."""
        if not _DB_NAME.match(name):
            raise ValueError(f"invalid database name {name!r}")
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def acreate_database(self, name: str) -> str:
        """`create_database` in a thread, for async callers."""
        return await asyncio.to_thread(self.create_database, name)

    async def aquery(self, sql: str, *, database: str = "postgres") -> list[list[str]]:
        """`query` in a thread, for async callers."""
        return await asyncio.to_thread(self.query, sql, database=database)

    # -- internals --

    def _pick_user(self) -> str | None:
        if not _is_root():
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServiceError(
                "running as root but there is no 'postgres' user to run PostgreSQL as"
            ) from exc
        if not shutil.which("runuser") and not shutil.which("setpriv"):
            raise ServiceError("running as root needs runuser or setpriv (util-linux)")
        return "postgres"

    def _prepare_dirs(self) -> None:
        assert self.base_dir is not None
        (self.base_dir / "sock").mkdir()
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            for path in (self.base_dir, self.base_dir / "sock", pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.base_dir.chmod(0o700)

    def _initdb(self) -> None:
        assert self.base_dir is not None and self.bin_dir is not None
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                f"--pwfile={self.base_dir / 'pwfile'}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            as_server_user=True,
            timeout=120,
        )
        (self.base_dir / "pwfile").unlink()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# release-bot sandbox\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _start_on_free_port(self, attempts: int = 3) -> None:
        assert self.bin_dir is not None
        last_error: ServiceError | None = None
        for _ in range(attempts):
            port = free_port(self.host)
            try:
                self._run(
                    [
                        str(self.bin_dir / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_file),
                        "-w",
                        "-t",
                        str(int(self.start_timeout)),
                        "-o",
                        f"-p {port}",
                        "start",
                    ],
                    as_server_user=True,
                    timeout=self.start_timeout + 10,
                )
            except ServiceError as exc:
                last_error = exc
                continue
            self.port = port
            return
        log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
        raise ServiceError(f"PostgreSQL did not start: {last_error}\n{log}")

    def _run(self, argv: Sequence[str], *, as_server_user: bool, timeout: float) -> None:
        command = list(argv)
        if as_server_user and self._run_as is not None:
            if shutil.which("runuser"):
                command = ["runuser", "-u", self._run_as, "--", *command]
            else:
                entry = pwd.getpwnam(self._run_as)
                command = [
                    "setpriv",
                    f"--reuid={entry.pw_uid}",
                    f"--regid={entry.pw_gid}",
                    "--init-groups",
                    "--",
                    *command,
                ]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
                cwd=self.base_dir or "/",
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"{Path(argv[0]).name} timed out after {timeout:g}s") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            raise ServiceError(f"{Path(argv[0]).name} failed ({done.returncode}): {output}")


# --- Redis -----------------------------------------------------------------------------------


def redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis server answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(_Service):
    """A throwaway `redis-server` on 127.0.0.1 with no persistence, stopped on exit.

    Runs `redis-server --port <free> --bind 127.0.0.1 --save '' --appendonly no --dir <tmp>`,
    waits until PING answers, and exposes `url` as `redis://127.0.0.1:PORT/0`.
    """

    def __init__(self, *, binary: Path | None = None, start_timeout: float = 20.0) -> None:
        self.binary = binary or find_tool("redis-server")
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self.base_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:PORT/0`."""
        if self._process is None:
            raise ServiceError("Redis server is not running")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_file(self) -> Path:
        """The server's stdout and stderr."""
        if self.base_dir is None:
            raise ServiceError("Redis server is not running")
        return self.base_dir / "redis.log"

    def start(self, attempts: int = 3) -> Self:
        """Start the server on a free port and wait for PING; raises ServiceError."""
        if self._process is not None:
            return self
        if self.binary is None:
            raise ServiceError("redis-server is not installed (run scripts/install-tools.sh)")
        self.base_dir = Path(tempfile.mkdtemp(prefix="release-bot-redis-"))
        try:
            for _ in range(attempts):
                if self._try_start(free_port(self.host)):
                    return self
            log = self.log_file.read_text(errors="replace")[-2000:]
            raise ServiceError(f"redis-server did not start:\n{log}")
        except BaseException:
            self.stop()
            raise

    def _try_start(self, port: int) -> bool:
        assert self.binary is not None and self.base_dir is not None
        argv = [
            str(self.binary),
            "--port",
            str(port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.base_dir),
            "--daemonize",
            "no",
        ]
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if redis_ping(self.host, port, timeout=0.5):
                self._process, self.port = process, port
                return True
            time.sleep(0.05)
        _terminate(process)
        return False

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)
        self.port = 0
        base_dir, self.base_dir = self.base_dir, None
        if base_dir is not None:
            shutil.rmtree(base_dir, ignore_errors=True)


def _terminate(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)
