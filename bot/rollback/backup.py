"""The backup restore: Supabase's point-in-time recovery to just before the release started,
then a wait until the database answers healthy again."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from bot.config import Settings
from bot.providers import supabase_api
from bot.providers.http import ProviderError
from bot.rollback.model import BACKUP, ActionResult, Choices, Plan, stamp
from bot.runbook.model import Outcome

CREDENTIALS = ("SUPABASE_ACCESS_TOKEN", "SUPABASE_PROJECT_REF")


def pitr_target(found: supabase_api.Backups, started_at: datetime) -> int | None:
    """The unix time just before the release started, if inside the recovery window."""
    target = int(started_at.timestamp()) - 1
    if found.earliest_unix is not None and target < found.earliest_unix:
        return None
    if found.latest_unix is not None and target > found.latest_unix:
        return found.latest_unix
    return target


def _window(found: supabase_api.Backups) -> str:
    if found.earliest_unix is None or found.latest_unix is None:
        return ""
    return (f" (window {stamp(datetime.fromtimestamp(found.earliest_unix, UTC))} to "
            f"{stamp(datetime.fromtimestamp(found.latest_unix, UTC))})")


def _pitr_text(found: supabase_api.Backups, started_at: datetime) -> str:
    if not found.pitr_enabled:
        return "point-in-time recovery is off (daily backups restore from the dashboard)"
    target = pitr_target(found, started_at)
    if target is None:
        return f"point-in-time recovery, but the release's start is outside the window{_window(found)}"
    return (f"point in time {stamp(datetime.fromtimestamp(target, UTC))}, just "
            f"before the release started{_window(found)}")


def describe_backups(found: supabase_api.Backups, started_at: datetime) -> str:
    """One line on the backups and the recovery window."""
    if found.backups:
        listed = ", ".join(f"#{b.id} {b.inserted_at} {b.status}" for b in found.backups[:3])
        more = f" and {len(found.backups) - 3} more" if len(found.backups) > 3 else ""
        backups = f"backups: {listed}{more}"
    else:
        backups = "no daily backups listed"
    return f"{_pitr_text(found, started_at)}; {backups}"


async def restore_backup(plan: Plan, choices: Choices, settings: Settings,
                         poll_seconds: float) -> ActionResult:
    """Restore the database to just before the release, once the typed ref matches."""
    missing = settings.missing(CREDENTIALS)
    if missing:
        return ActionResult(BACKUP, Outcome.SKIPPED, f"Not restored: {', '.join(missing)} not set.")
    ref = str(settings.SUPABASE_PROJECT_REF)
    if choices.confirm_ref.strip() != ref:
        return ActionResult(BACKUP, Outcome.FAIL,
                            f"Not restored: the project ref typed to confirm did not match `{ref}`.")
    async with supabase_api.supabase_client(settings) as client:
        found = await supabase_api.list_backups(client, ref)
        refusal = _refusal(found, plan, ref)
        if refusal is not None:
            return refusal
        target = pitr_target(found, plan.release.started_at)
        assert target is not None
        await supabase_api.restore_pitr(client, ref, target)
        return await _wait_healthy(client, ref, target, settings.RESTORE_TIMEOUT_SECONDS,
                                   poll_seconds)


def _refusal(found: supabase_api.Backups, plan: Plan, ref: str) -> ActionResult | None:
    """Why no point-in-time restore can run, or None."""
    if not found.pitr_enabled:
        newest = found.backups[0].inserted_at if found.backups else "none"
        return ActionResult(BACKUP, Outcome.FAIL,
                            f"Not restored: point-in-time recovery is not enabled on `{ref}`; "
                            f"restore a daily backup (newest: {newest}) from the Supabase "
                            "dashboard.")
    if pitr_target(found, plan.release.started_at) is None:
        return ActionResult(BACKUP, Outcome.FAIL,
                            "Not restored: the moment before the release started is outside "
                            "the point-in-time recovery window "
                            f"({describe_backups(found, plan.release.started_at)}).")
    return None


async def _db_health(client: Any, ref: str) -> tuple[bool | None, str]:
    """(healthy, what it said); healthy is None when the answer could not be read."""
    try:
        health = await supabase_api.project_health(client, ref, ("db",))
    except ProviderError as exc:
        return None, str(exc)
    db = next((h for h in health if h.name == "db"), None)
    if db is None:
        return None, "MISSING"
    return db.healthy, db.status


async def _wait_healthy(client: Any, ref: str, target: int, limit: float,
                        poll_seconds: float) -> ActionResult:
    """Poll the database's health until it went down and came back, or `limit` passed."""
    when = datetime.fromtimestamp(target, UTC)
    data: dict[str, Any] = {"recovery_time_target_unix": target, "project_ref": ref}
    started, last = time.monotonic(), "not read yet"
    seen_down = False  # a healthy answer only counts once the restore has visibly begun
    while True:
        healthy, last = await _db_health(client, ref)
        if healthy and seen_down:
            break
        seen_down = seen_down or not healthy
        waited = time.monotonic() - started
        if waited >= limit:
            data["last_health"] = last
            return _timed_out(when, limit, last, seen_down, data)
        pause = min(poll_seconds, limit / 10)
        await asyncio.sleep(min(pause, max(limit - waited, 0.0)))
    data["waited_seconds"] = round(time.monotonic() - started, 1)
    return ActionResult(BACKUP, Outcome.OK,
                        f"Restored `{ref}` to {stamp(when)} (point in time); the database "
                        f"answered healthy after {data['waited_seconds']:g}s.", data=data)


def _timed_out(when: datetime, limit: float, last: str, seen_down: bool,
               data: dict[str, Any]) -> ActionResult:
    """The restore that never visibly began, or never came back healthy."""
    if not seen_down:
        return ActionResult(BACKUP, Outcome.WARN,
                            f"Restore to {stamp(when)} was accepted, but the database "
                            f"never showed it restoring within {limit:g}s; check the "
                            "Supabase dashboard.", data=data)
    return ActionResult(BACKUP, Outcome.FAIL,
                        f"Restore to {stamp(when)} started, but the database was "
                        f"not healthy after {limit:g}s (last: {last}).", data=data)
