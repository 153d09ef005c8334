"""Supabase's Management API: service health, applied migrations, backups and PITR restore.

`supabase_client()` makes a client for SUPABASE_API_URL with SUPABASE_ACCESS_TOKEN as bearer.
Every function takes the project ref and raises `ProviderError` with a plain sentence on failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from bot.config import Settings
from bot.providers.http import ProviderError, json_body, make_client, send

PROVIDER = "Supabase Management API"
AUTH_HINT = "the access token was rejected or cannot access this project (check SUPABASE_ACCESS_TOKEN)"
HEALTHY = "ACTIVE_HEALTHY"


@dataclass(frozen=True)
class ServiceHealth:
    """One service's health: `healthy` is true only for ACTIVE_HEALTHY."""

    name: str
    healthy: bool
    status: str
    error: str | None = None


@dataclass(frozen=True)
class Backup:
    """One backup of the project's database."""

    id: int
    status: str
    inserted_at: str
    is_physical_backup: bool


@dataclass(frozen=True)
class Backups:
    """The project's backups and point-in-time recovery window (unix seconds, when known)."""

    region: str
    pitr_enabled: bool
    walg_enabled: bool
    backups: list[Backup] = field(default_factory=list)
    earliest_unix: int | None = None
    latest_unix: int | None = None


def supabase_client(settings: Settings) -> httpx.AsyncClient:
    """A client for SUPABASE_API_URL with the Management API access token."""
    return make_client(
        settings.SUPABASE_API_URL,
        token=settings.secret("SUPABASE_ACCESS_TOKEN") or None,
        timeout=settings.HTTP_TIMEOUT_SECONDS,
    )


def _project(ref: str) -> str:
    return f"/v1/projects/{quote(ref, safe='')}"


async def project_health(
    client: httpx.AsyncClient, ref: str, services: Iterable[str] = ("auth", "rest", "db")
) -> list[ServiceHealth]:
    """`GET /v1/projects/{ref}/health?services=...`: one entry per service asked for."""
    wanted = list(services)
    response = await send(
        client,
        "GET",
        f"{_project(ref)}/health",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
        params=[("services", name) for name in wanted],
    )
    body = json_body(response, PROVIDER)
    if not isinstance(body, list):
        raise ProviderError(PROVIDER, "answered the health check with something other than a list")
    out: list[ServiceHealth] = []
    for item in body:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        status = str(item.get("status") or "UNKNOWN")
        error = item.get("error")
        out.append(
            ServiceHealth(item["name"], status == HEALTHY, status, str(error) if error else None)
        )
    seen = {s.name for s in out}
    for name in wanted:
        if name not in seen:
            out.append(ServiceHealth(name, False, "MISSING", "not in the health answer"))
    return out


async def list_applied_migrations(client: httpx.AsyncClient, ref: str) -> list[str]:
    """Versions of the migrations applied to the project (`GET .../database/migrations`)."""
    response = await send(
        client, "GET", f"{_project(ref)}/database/migrations", provider=PROVIDER, auth_hint=AUTH_HINT
    )
    body = json_body(response, PROVIDER)
    if not isinstance(body, list):
        raise ProviderError(PROVIDER, "answered the migration list with something other than a list")
    return [str(item["version"]) for item in body if isinstance(item, dict) and item.get("version")]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def list_backups(client: httpx.AsyncClient, ref: str) -> Backups:
    """The project's backups and PITR window (`GET .../database/backups`)."""
    response = await send(
        client, "GET", f"{_project(ref)}/database/backups", provider=PROVIDER, auth_hint=AUTH_HINT
    )
    body = json_body(response, PROVIDER)
    if not isinstance(body, dict) or not isinstance(body.get("backups"), list):
        raise ProviderError(PROVIDER, "answered the backup list without a `backups` list")
    backups = [
        Backup(
            int(item["id"]),
            str(item.get("status") or ""),
            str(item.get("inserted_at") or ""),
            bool(item.get("is_physical_backup")),
        )
        for item in body["backups"]
        if isinstance(item, dict) and _int_or_none(item.get("id")) is not None
    ]
    window = body.get("physical_backup_data")
    window = window if isinstance(window, dict) else {}
    return Backups(
        region=str(body.get("region") or ""),
        pitr_enabled=bool(body.get("pitr_enabled")),
        walg_enabled=bool(body.get("walg_enabled")),
        backups=backups,
        earliest_unix=_int_or_none(window.get("earliest_physical_backup_date_unix")),
        latest_unix=_int_or_none(window.get("latest_physical_backup_date_unix")),
    )


async def restore_pitr(client: httpx.AsyncClient, ref: str, unix_time: int) -> None:
    """Start a point-in-time restore to `unix_time` (`POST .../backups/restore-pitr`, 201)."""
    await send(
        client,
        "POST",
        f"{_project(ref)}/database/backups/restore-pitr",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
        json={"recovery_time_target_unix": int(unix_time)},
        idempotent=False,
    )
