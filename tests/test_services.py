"""Real PostgreSQL and Redis launchers: ports, users, URLs, Supabase roles, clean shutdown."""

from __future__ import annotations

import os
import pwd
import re
import socket
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as redis_async

from sandbox.services import (
    PostgresServer,
    RedisServer,
    ServiceError,
    find_tool,
    free_port,
    redis_ping,
)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_find_tool_prefers_env_and_repo_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_CLI", "/bin/true")
    assert find_tool("supabase") == Path("/bin/true")
    monkeypatch.setenv("SUPABASE_CLI", "/nonexistent/supabase")
    found = find_tool("supabase")
    assert found is None or found.name == "supabase"
    monkeypatch.setenv("PLAYWRIGHT_CHROMIUM_PATH", "/bin/true")
    assert find_tool("chromium") == Path("/bin/true")
    with pytest.raises(ValueError):
        find_tool("nope")


def test_postgres_url_and_password_auth(postgres_server: PostgresServer) -> None:
    pattern = r"postgresql://postgres:(\w+)@127\.0\.0\.1:(\d+)/postgres\?sslmode=disable"
    match = re.fullmatch(pattern, postgres_server.url)
    assert match is not None
    assert match.group(1) == postgres_server.password
    assert int(match.group(2)) == postgres_server.port
    assert postgres_server.query("select current_user, current_setting('fsync')") == [["postgres", "off"]]
    assert postgres_server.query("show listen_addresses") == [["127.0.0.1"]]
    assert postgres_server.bin_dir is not None
    psql = str(postgres_server.bin_dir / "psql")
    wrong = subprocess.run(
        [psql, "-X", "-h", "127.0.0.1", "-p", match.group(2), "-U", "postgres", "-c", "select 1"],
        env={"PATH": os.environ["PATH"], "PGPASSWORD": "wrong-password"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode != 0
    assert "password authentication failed" in wrong.stderr


def test_postgres_runs_as_postgres_user_when_root(postgres_server: PostgresServer) -> None:
    owner = postgres_server.data_dir.stat().st_uid
    expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert owner == expected
    socket_dir = postgres_server.query("show unix_socket_directories")[0][0]
    assert socket_dir == str(postgres_server.socket_dir)


def test_create_database_has_supabase_roles_and_auth(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("services_roles")
    try:
        assert url.endswith(f":{postgres_server.port}/services_roles?sslmode=disable")
        roles = postgres_server.query(
            "select rolname from pg_roles where rolname in "
            "('supabase_admin', 'anon', 'authenticated', 'service_role') order by 1"
        )
        assert [r[0] for r in roles] == ["anon", "authenticated", "service_role", "supabase_admin"]
        owners = postgres_server.query(
            "select nspname, pg_get_userbyid(nspowner) from pg_namespace "
            "where nspname in ('auth', 'extensions') order by 1",
            database="services_roles",
        )
        assert owners == [["auth", "supabase_admin"], ["extensions", "supabase_admin"]]
        uid = postgres_server.query(
            "select set_config('request.jwt.claim.sub', "
            "'00000000-0000-0000-0000-000000000001', false), auth.uid()",
            database="services_roles",
        )
        assert uid[0][1] == "00000000-0000-0000-0000-000000000001"
    finally:
        postgres_server.drop_database("services_roles")
    with pytest.raises(ValueError):
        postgres_server.create_database('x"; drop')


async def test_postgres_async_context_cleans_up(postgres_server: PostgresServer) -> None:
    async with PostgresServer(bin_dir=postgres_server.bin_dir, supabase_roles=False) as server:
        base_dir, port = server.base_dir, server.port
        assert base_dir is not None and base_dir.exists()
        assert await server.aquery("select 40 + 2") == [["42"]]
        assert _port_open(port)
        roles = await server.aquery("select count(*) from pg_roles where rolname = 'anon'")
        assert roles == [["0"]]
    assert not base_dir.exists()
    assert not _port_open(port)
    with pytest.raises(ServiceError):
        _ = server.url


async def test_redis_session_server_answers(redis_server: RedisServer) -> None:
    assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", redis_server.url)
    client = redis_async.Redis.from_url(redis_server.url)
    try:
        assert await client.ping()
        await client.set("release-bot:test", "1")
        assert await client.get("release-bot:test") == b"1"
        info = await client.info("clients")
        assert info["connected_clients"] >= 1
        assert await client.config_get("save") == {"save": ""}
        assert await client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        await client.aclose()


async def test_redis_async_context_stops_and_deletes(redis_server: RedisServer) -> None:
    async with RedisServer(binary=redis_server.binary) as server:
        base_dir, port = server.base_dir, server.port
        assert port != redis_server.port
        assert redis_ping("127.0.0.1", port)
    assert base_dir is not None and not base_dir.exists()
    assert not redis_ping("127.0.0.1", port)
