"""Pytest plugin: real PostgreSQL, Redis and Supabase CLI for the tests that need them.

Load it with `pytest_plugins = ["tests.conftest_services"]`. Fixtures:
`postgres_server` and `redis_server` (one real server each per session), `postgres_db` (a fresh
database on that server per test, dropped afterwards; its URL) and `supabase_cli` (the CLI path).
A missing tool skips the test with the reason, except when `CI` is `"true"`: then it fails,
since `make test` must have installed it (`scripts/install-tools.sh`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.services import PostgresServer, RedisServer, find_tool


def require_tool(name: str, package: str) -> Path:
    """The tool's path; skip (or fail under CI=true) with a clear reason when it is missing."""
    found = find_tool(name)
    if found is not None:
        return found
    reason = f"{name} not found ({package}); run scripts/install-tools.sh to install it"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (see `PostgresServer`)."""
    bin_dir = require_tool("postgres", "Debian package postgresql")
    with PostgresServer(bin_dir=bin_dir) as server:
        yield server


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a new, empty database on the session server, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole session (see `RedisServer`)."""
    binary = require_tool("redis-server", "Debian package redis-server")
    with RedisServer(binary=binary) as server:
        yield server


@pytest.fixture(scope="session")
def supabase_cli() -> Path:
    """Path of the pinned Supabase CLI (`.tools/node_modules/.bin/supabase`)."""
    return require_tool("supabase", "npm package supabase@2.117.0 in .tools")
