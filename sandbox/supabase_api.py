"""Local emulator of the Supabase Management API endpoints the release bot uses.

Shapes follow `supabase-management-api.openapi.json`: the project (`GET /v1/projects/{ref}`),
service health
(`GET /v1/projects/{ref}/health?services=...`), applied migrations
(`GET /v1/projects/{ref}/database/migrations`), backups
(`GET /v1/projects/{ref}/database/backups`), point-in-time restore
(`POST .../database/backups/restore-pitr`, body `{"recovery_time_target_unix": n}`) and physical
restore (`POST .../database/backups/restore`, body `{"id": n}`). Both restores answer 201 and
leave the database `COMING_UP` for `restore_unhealthy_polls` health reads; `refuse_restore`
makes them fail. Errors use the Management API's `{"message": ...}` shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.server import new_app

SERVICES = ("auth", "db", "db_postgres_user", "pooler", "realtime", "rest", "storage", "pg_bouncer")
HEALTHY = "ACTIVE_HEALTHY"


@dataclass
class Migration:
    """An applied migration as `supabase_migrations.schema_migrations` records it."""

    version: str
    name: str = ""


@dataclass
class Backup:
    """One entry of the backups list."""

    id: int
    inserted_at: str
    status: str = "COMPLETED"
    is_physical_backup: bool = True


@dataclass
class SupabaseState:
    """In-memory Supabase project: health, migrations, backups and restore behaviour."""

    access_token: str = "sbp_sandbox_access_token"  # noqa: S105 - sandbox credential
    ref: str = "abcdefghijklmnopqrst"
    region: str = "us-east-1"
    project_name: str = "pocket-philosopher-staging"
    health: dict[str, str] = field(default_factory=lambda: dict.fromkeys(SERVICES, HEALTHY))
    migrations: list[Migration] = field(default_factory=list)
    backups: list[Backup] = field(default_factory=list)
    pitr_enabled: bool = True
    walg_enabled: bool = True
    earliest_backup_unix: int | None = None
    latest_backup_unix: int | None = None
    refuse_restore: str | None = None
    restore_unhealthy_polls: int = 2
    restores: list[dict[str, Any]] = field(default_factory=list)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._recovering = 0

    def recovery_window(self) -> tuple[int, int]:
        """The earliest and latest restorable unix times (defaults: last 7 days)."""
        now = int(self.clock())
        earliest = self.earliest_backup_unix if self.earliest_backup_unix is not None else now - 7 * 86400
        latest = self.latest_backup_unix if self.latest_backup_unix is not None else now
        return earliest, latest

    def start_restore(self, kind: str, detail: dict[str, Any]) -> None:
        """Record a restore and make the database come up again over the next health reads."""
        self.restores.append({"kind": kind, **detail, "at": int(self.clock())})
        self._recovering = self.restore_unhealthy_polls

    def status_of(self, service: str) -> str:
        """The status a health read reports for `service` right now."""
        if self._recovering > 0 and service in ("db", "rest", "db_postgres_user"):
            return "COMING_UP"
        return self.health.get(service, HEALTHY)

    def tick(self) -> None:
        """One health read has passed."""
        if self._recovering > 0:
            self._recovering -= 1

    @property
    def recovering(self) -> bool:
        """Whether a restore is still bringing the database back."""
        return self._recovering > 0


STATE_KEY: web.AppKey[SupabaseState] = web.AppKey("supabase_state", SupabaseState)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


@web.middleware
async def _auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if request.headers.get("Authorization") != f"Bearer {state.access_token}":
        return _error(401, "Unauthorized")
    ref = request.match_info.get("ref")
    if ref is not None and ref != state.ref:
        return _error(403, "Your account does not have the necessary privileges to access this endpoint")
    response: web.StreamResponse = await handler(request)
    return response


def _info(service: str) -> dict[str, Any] | None:
    if service == "auth":
        return {"name": "GoTrue", "version": "v2.170.0", "description": "GoTrue is a user registration API"}
    if service == "rest":
        return {"db_schema": "public,storage,graphql_public"}
    if service in ("realtime", "pooler"):
        return {"healthy": True, "db_connected": True, "replication_connected": True, "connected_cluster": 1}
    return None


async def health(request: web.Request) -> web.Response:
    """`GET /v1/projects/{ref}/health?services=auth,rest,db` (comma list or repeated)."""
    state = request.app[STATE_KEY]
    wanted = [s for raw in request.query.getall("services", []) for s in raw.split(",") if s]
    if not wanted:
        return _error(400, "services should not be empty")
    unknown = [s for s in wanted if s not in SERVICES]
    if unknown:
        return _error(400, f"each value in services must be one of: {', '.join(SERVICES)}")
    items = []
    for service in wanted:
        status = state.status_of(service)
        item: dict[str, Any] = {"name": service, "healthy": status == HEALTHY, "status": status}
        info = _info(service)
        if info is not None and status == HEALTHY:
            item["info"] = info
        if status != HEALTHY:
            item["error"] = f"{service} is {status.lower().replace('_', ' ')}"
        items.append(item)
    state.tick()
    return web.json_response(items)


async def migrations(request: web.Request) -> web.Response:
    """`GET /v1/projects/{ref}/database/migrations`."""
    state = request.app[STATE_KEY]
    return web.json_response([{"version": m.version, "name": m.name} for m in state.migrations])


async def backups(request: web.Request) -> web.Response:
    """`GET /v1/projects/{ref}/database/backups`."""
    state = request.app[STATE_KEY]
    earliest, latest = state.recovery_window()
    return web.json_response(
        {
            "region": state.region,
            "walg_enabled": state.walg_enabled,
            "pitr_enabled": state.pitr_enabled,
            "backups": [
                {
                    "id": b.id,
                    "is_physical_backup": b.is_physical_backup,
                    "status": b.status,
                    "inserted_at": b.inserted_at,
                }
                for b in state.backups
            ],
            "physical_backup_data": (
                {"earliest_physical_backup_date_unix": earliest, "latest_physical_backup_date_unix": latest}
                if state.walg_enabled
                else {}
            ),
        }
    )


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def restore_pitr(request: web.Request) -> web.Response:
    """`POST /v1/projects/{ref}/database/backups/restore-pitr` → 201."""
    state = request.app[STATE_KEY]
    body = await _json_body(request)
    target = body.get("recovery_time_target_unix") if body else None
    if not isinstance(target, int) or isinstance(target, bool):
        return _error(400, "recovery_time_target_unix must be an integer")
    if not state.pitr_enabled:
        return _error(400, "Point-in-time recovery is not enabled for this project")
    if state.refuse_restore:
        return _error(400, state.refuse_restore)
    earliest, latest = state.recovery_window()
    if not earliest <= target <= latest:
        return _error(400, f"recovery_time_target_unix must be between {earliest} and {latest}")
    state.start_restore("pitr", {"recovery_time_target_unix": target})
    return web.Response(status=201)


async def restore_physical(request: web.Request) -> web.Response:
    """`POST /v1/projects/{ref}/database/backups/restore` with a backup id → 201."""
    state = request.app[STATE_KEY]
    body = await _json_body(request)
    backup_id = body.get("id") if body else None
    if not isinstance(backup_id, int) or isinstance(backup_id, bool):
        return _error(400, "id must be an integer")
    if not any(b.id == backup_id and b.status == "COMPLETED" for b in state.backups):
        return _error(400, f"Backup {backup_id} not found")
    if state.refuse_restore:
        return _error(400, state.refuse_restore)
    state.start_restore("physical", {"id": backup_id})
    return web.Response(status=201)


def iso_now(clock: Callable[[], float] = time.time) -> str:
    """An `inserted_at`-style timestamp for building backups in tests."""
    return datetime.fromtimestamp(clock(), tz=UTC).isoformat().replace("+00:00", "Z")


async def project(request: web.Request) -> web.Response:
    """`GET /v1/projects/{ref}` (V1ProjectWithDatabaseResponse)."""
    state = request.app[STATE_KEY]
    status = HEALTHY if all(v == HEALTHY for v in state.health.values()) else "ACTIVE_UNHEALTHY"
    return web.json_response({
        "id": state.ref, "ref": state.ref, "organization_id": "sandboxorg",
        "organization_slug": "sandboxorg", "name": state.project_name, "region": state.region,
        "created_at": "2024-01-01T00:00:00.000Z", "status": status,
        "database": {"host": f"db.{state.ref}.supabase.co", "version": "15.8.1.085",
                     "postgres_engine": "15", "release_channel": "ga"},
    })


def create_supabase_app(state: SupabaseState) -> web.Application:
    """An aiohttp app emulating the Supabase Management API over `state`."""
    app = new_app()
    app.middlewares.append(_auth_middleware)
    app[STATE_KEY] = state
    prefix = "/v1/projects/{ref}"
    app.router.add_get(prefix, project)
    app.router.add_get(f"{prefix}/health", health)
    app.router.add_get(f"{prefix}/database/migrations", migrations)
    app.router.add_get(f"{prefix}/database/backups", backups)
    app.router.add_post(f"{prefix}/database/backups/restore-pitr", restore_pitr)
    app.router.add_post(f"{prefix}/database/backups/restore", restore_physical)
    return app
