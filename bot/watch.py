"""The post-deploy watch: after a successful release, staging is compared with its baseline.

- Baseline: when the release's deploy phase starts (before anything is merged or deployed),
  `/api/health` (status and AI provider statuses) and Supabase's service health are read and
  kept in the `watches` table. The `i_request_failed` baseline is the PostHog count of the hour
  before the release started, as a rate per 5 minutes.
- Checks: every WATCH_INTERVAL_SECONDS for WATCH_MINUTES (a persistent APScheduler job
  `watch-<id>`, so a restarted bot continues it), the same readings again, plus the count of
  `i_request_failed` in the last 5 minutes.
- Regression: health not ok on two checks in a row (the health check fails, or a provider or
  Supabase service healthy at baseline is not), or the failure count at or above
  WATCH_MIN_FAILURES and above WATCH_FAILURE_RATIO times the baseline rate. It is posted in the
  release's thread, broadcast to the channel, mentions whoever started the release, and offers
  Roll back; the watch ends there.
- A quiet watch ends with one line ("30 min watched: no regression"); a rollback or a newer
  release ends it early. The watch keeps one status message in the thread, updated per check.

The readings and the comparison with the baseline are `bot.watch_readings`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from bot.chat import blocks
from bot.chat.blocks import ROLLBACK_ACTION, Message
from bot.chat.port import Chat
from bot.config import Settings
from bot.listener import Listener, guarded
from bot.providers import supabase_api
from bot.providers.http import ProviderError
from bot.redact import Redactor
from bot.runbook.model import Release, ReleaseStatus, StepRecord, utcnow
from bot.runbook.step import StepDef
from bot.scheduler import PERSISTENT, job_key, register_target, target
from bot.store import Store
from bot.watch_readings import (
    BASELINE_WINDOW,
    FAILURE_EVENT,
    WINDOW,
    Reading,
    Verdict,
    count_failures,
    evaluate,
    posthog_ready,
    read_health,
)

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

log = logging.getLogger(__name__)

TARGET = "watch"
WATCHING, ENDED = "watching", "ended"

migrations = Migrations("release_bot_watch")


@migrations()
def m001_watches(db: sqlite_utils.Database) -> None:
    """One row per watched release: baseline, progress, and how it ended."""
    db.table("watches").create(
        {"release_id": int, "environment": str, "state": str, "baseline": str, "started_at": str,
         "ends_at": str, "checks": int, "unhealthy_streak": int, "last": str, "message_ts": str,
         "outcome": str, "ended_at": str},
        pk="release_id",
    )


@migrations()
def m002_open_watches_index(db: sqlite_utils.Database) -> None:
    """Open watches are found through (state, release_id), not by reading a row per release."""
    db.table("watches").create_index(["state", "release_id"], if_not_exists=True)


# --- the watch -------------------------------------------------------------------------------
def _minutes(settings: Settings) -> str:
    return f"{settings.WATCH_MINUTES:g} min"


class Watcher(Listener):
    """Starts, runs and ends post-deploy watches; a listener of the engine."""

    def __init__(self, settings: Settings, store: Store, chat: Chat, redactor: Redactor,
                 steps: dict[str, StepDef]) -> None:
        self.settings = settings
        self.steps = steps
        self.store = store
        self.chat = chat
        self.redact = redactor
        self.scheduler: BaseScheduler | None = None
        self.key = job_key(settings)
        self._baselines: set[asyncio.Task[None]] = set()
        self.clock = utcnow  # tests move time on by replacing it
        migrations.apply(store.db)
        register_target(self.key, TARGET, self)

    # --- wiring -----------------------------------------------------------------------------
    def attach(self, scheduler: BaseScheduler) -> None:
        """Schedule checks on `scheduler` from now on; watches stored before a restart carry on."""
        self.scheduler = scheduler
        register_target(self.key, TARGET, self)

    @property
    def enabled(self) -> bool:
        return self.settings.WATCH_MINUTES > 0

    def measurable(self) -> bool:
        """Whether anything can be watched: /api/health, Supabase's health, or PostHog."""
        settings = self.settings
        return bool(settings.STAGING_URL or posthog_ready(settings)
                    or (settings.SUPABASE_PROJECT_REF and settings.SUPABASE_ACCESS_TOKEN))

    # --- engine events ----------------------------------------------------------------------
    async def release_started(self, release: Release) -> None:
        await guarded(self._supersede(release), "ending older watches")

    async def step_started(self, release: Release, record: StepRecord) -> None:
        if self.enabled and record.phase == "deploy" and release.id is not None:
            await guarded(self._begin_baseline(release), "the watch baseline")

    async def _begin_baseline(self, release: Release) -> None:
        assert release.id is not None
        if self._row(release.id) is not None or not self.measurable():
            return
        self._insert(release, "baseline")
        task = asyncio.create_task(guarded(self._baseline(release), "the watch baseline"))
        self._baselines.add(task)
        task.add_done_callback(self._baselines.discard)

    async def release_finished(self, release: Release) -> None:
        if release.status == ReleaseStatus.SUCCEEDED and self.enabled:
            await guarded(self.start(release), "starting the watch")

    # --- the rows ---------------------------------------------------------------------------
    def _row(self, release_id: int) -> dict[str, Any] | None:
        rows = list(self.store.db.query("select * from watches where release_id = ?", [release_id]))
        return rows[0] if rows else None

    def _insert(self, release: Release, state: str) -> None:
        with self.store._tx():
            self.store.db.table("watches").insert(
                {"release_id": release.id, "environment": release.environment, "state": state,
                 "baseline": "", "checks": 0, "unhealthy_streak": 0}, replace=False, ignore=True)

    def _update(self, release_id: int, **values: Any) -> None:
        with self.store._tx():
            self.store.db.table("watches").update(release_id, values)

    def open_watches(self) -> list[dict[str, Any]]:
        """Watches under way (for App Home), oldest first."""
        return list(self.store.db.query(
            "select * from watches where state = ? order by release_id", [WATCHING]))

    # --- baseline and start -----------------------------------------------------------------
    async def _baseline(self, release: Release) -> None:
        assert release.id is not None
        reading = await read_health(self.settings, self.redact, release, self.steps)
        self._update(release.id, baseline=json.dumps(asdict(reading)))

    async def start(self, release: Release) -> None:
        """Begin watching a release that just succeeded: first check now, then on the schedule."""
        assert release.id is not None
        for task in list(self._baselines):
            await task
        if self._row(release.id) is None:
            self._insert(release, WATCHING)
        if not self.measurable():
            row = self._row(release.id) or {"release_id": release.id}
            await self._end(release, row, "off", ":stopwatch: No post-deploy watch: nothing to "
                            "watch (set STAGING_URL, POSTHOG_PROJECT_ID with POSTHOG_PERSONAL_API_KEY, "
                            "or SUPABASE_PROJECT_REF with SUPABASE_ACCESS_TOKEN).")
            return
        now = self.clock()
        ends = now + timedelta(minutes=self.settings.WATCH_MINUTES)
        self._update(release.id, state=WATCHING, started_at=now.isoformat(), ends_at=ends.isoformat())
        await self._baseline_rate(release)
        if await self.check(release.id) == WATCHING:
            self._schedule(release.id)

    async def _baseline_rate(self, release: Release) -> None:
        assert release.id is not None
        row = self._row(release.id) or {}
        baseline = json.loads(row.get("baseline") or "{}")
        if not baseline:
            baseline = {"notes": ["no reading from before the deploy: compared with healthy"]}
        if posthog_ready(self.settings):
            try:
                start = release.started_at - BASELINE_WINDOW
                count = await count_failures(self.settings, start, release.started_at)
                baseline["failure_rate"] = count * WINDOW / BASELINE_WINDOW
            except (ProviderError, ValueError) as exc:
                baseline.setdefault("notes", []).append(self.redact(str(exc)))
        self._update(release.id, baseline=json.dumps(baseline))

    def _schedule(self, release_id: int) -> None:
        if self.scheduler is None:
            return
        self.scheduler.add_job(
            "bot.watch:watch_check", "interval", seconds=self.settings.WATCH_INTERVAL_SECONDS,
            id=f"watch-{release_id}", name=f"post-deploy watch of release #{release_id}",
            args=[self.key, release_id], jobstore=PERSISTENT, replace_existing=True,
            coalesce=True, max_instances=1, misfire_grace_time=None)

    def _unschedule(self, release_id: int) -> None:
        if self.scheduler is None:
            return
        try:
            self.scheduler.remove_job(f"watch-{release_id}", jobstore=PERSISTENT)
        except Exception:  # JobLookupError: not scheduled here (already ended)
            return

    # --- one check --------------------------------------------------------------------------
    async def check(self, release_id: int) -> str:
        """One check of a watch; returns its state afterwards (`watching` or `ended`)."""
        row = self._row(release_id)
        release = self.store.get_release(release_id)
        if row is None or release is None or row["state"] != WATCHING:
            self._unschedule(release_id)
            return ENDED
        ended = self._ended_by(release)
        if ended:
            await self._end(release, row, "stopped", f":stopwatch: Post-deploy watch of release "
                                                     f"#{release_id} ended: {ended}.")
            return ENDED
        baseline_data = json.loads(row["baseline"] or "{}")
        baseline = Reading(**{k: v for k, v in baseline_data.items() if k in Reading.__dataclass_fields__})
        reading = await read_health(self.settings, self.redact, release, self.steps)
        now = self.clock()
        if posthog_ready(self.settings):
            try:
                reading.failures = await count_failures(self.settings, now - WINDOW)
            except (ProviderError, ValueError) as exc:
                reading.notes.append(self.redact(str(exc)))
        verdict = evaluate(baseline, reading, baseline_data.get("failure_rate"), self.settings)
        streak = row["unhealthy_streak"] + 1 if verdict.unhealthy else 0
        checks = row["checks"] + 1
        self._update(release_id, checks=checks, unhealthy_streak=streak,
                     last=json.dumps({"at": now.isoformat(), **asdict(reading)}))
        row = {**row, "checks": checks, "unhealthy_streak": streak}
        if streak >= 2 or verdict.rate_regression:
            await self._alert(release, row, verdict)
            return ENDED
        if now >= datetime.fromisoformat(row["ends_at"]):
            await self._end(release, row, "quiet",
                            f":white_check_mark: {_minutes(self.settings)} watched: no regression")
            return ENDED
        await self._status(release, row, reading, verdict, baseline_data)
        return WATCHING

    def _ended_by(self, release: Release) -> str | None:
        if release.status == ReleaseStatus.ROLLED_BACK:
            return "the release was rolled back"
        if release.status != ReleaseStatus.SUCCEEDED:
            return f"the release is {release.status.value}"
        newer = self.store.latest_release(release.environment)
        if newer is not None and newer.id is not None and release.id is not None \
                and newer.id > release.id:
            return f"release #{newer.id} started"
        return None

    async def _supersede(self, release: Release) -> None:
        for row in self.open_watches():
            if row["environment"] == release.environment and row["release_id"] != release.id:
                older = self.store.get_release(row["release_id"])
                if older is not None:
                    await self._end(older, row, "stopped",
                                    f":stopwatch: Post-deploy watch of release #{older.id} ended: "
                                    f"release #{release.id} started.")

    # --- messages ---------------------------------------------------------------------------
    def status_text(self, row: dict[str, Any], reading: Reading, verdict: Verdict,
                    baseline: dict[str, Any]) -> str:
        """The watch's status line after a check."""
        parts = [f"health {'ok' if reading.health_ok else 'not ok'}" if reading.health_ok is not None
                 else "health not read"]
        if reading.providers:
            parts.append("providers: " + ", ".join(f"{k} {v}" for k, v in reading.providers.items()))
        if reading.services:
            bad = [k for k, v in reading.services.items() if v != supabase_api.HEALTHY]
            parts.append("Supabase " + (f"unhealthy: {', '.join(bad)}" if bad else "healthy"))
        if reading.failures is not None:
            rate = baseline.get("failure_rate")
            before = f" (hour before: {rate:.1f} per 5 min)" if isinstance(rate, (int, float)) else ""
            parts.append(f"{reading.failures} `{FAILURE_EVENT}` in 5 min{before}")
        head = (f":eyes: Post-deploy watch, check {row['checks']} "
                f"(until {row['ends_at'][11:16]} UTC, every {self.settings.WATCH_INTERVAL_SECONDS:g}s): ")
        text = head + "; ".join(parts)
        if verdict.unhealthy:
            text += "\n:warning: Not ok once (" + "; ".join(verdict.reasons) + "); alerting if it "\
                    "happens again on the next check."
        notes = [*reading.notes, *baseline.get("notes", [])]
        if notes:
            text += "\n_" + "; ".join(notes) + "_"
        return text

    async def _status(self, release: Release, row: dict[str, Any], reading: Reading,
                      verdict: Verdict, baseline: dict[str, Any]) -> None:
        message = blocks.note_message(self.status_text(row, reading, verdict, baseline))
        ts = row.get("message_ts")
        if ts and release.channel:
            await self._safely(self.chat.update(release.channel, ts, self._clean(message)))
        else:
            posted = await self._post(release, message)
            if posted:
                self._update(row["release_id"], message_ts=posted)

    def alert_message(self, release: Release, verdict: Verdict) -> Message:
        """The regression alert: what was found, who to tell, and a Roll back button."""
        reasons = list(verdict.reasons)
        if verdict.rate_regression:
            reasons.append(verdict.rate_regression)
        text = (f":rotating_light: {blocks.user_text(release.started_by)} staging regressed after release "
                f"#{release.id} (`{release.ref}`): " + "; ".join(reasons) + ".")
        button = {"type": "actions", "block_id": f"watch-{release.id}", "elements": [
            {"type": "button", "action_id": ROLLBACK_ACTION, "value": str(release.id),
             "style": "danger", "text": {"type": "plain_text", "text": "Roll back"}}]}
        message = blocks.note_message(text)
        message.blocks.append(button)
        return message

    async def _alert(self, release: Release, row: dict[str, Any], verdict: Verdict) -> None:
        await self._finish_row(release, row, "regression")
        message = self._clean(self.alert_message(release, verdict))
        if not release.channel or not release.thread_ts:
            log.warning("release #%s regressed but has no thread to post in", release.id)
            return
        client = getattr(self.chat, "client", None)
        if client is not None and hasattr(client, "chat_postMessage"):
            await self._safely(client.chat_postMessage(
                channel=release.channel, thread_ts=release.thread_ts, reply_broadcast=True,
                text=message.text, blocks=message.blocks, unfurl_links=False))
        else:
            await self._safely(self.chat.post(release.channel, message, release.thread_ts))

    async def _end(self, release: Release, row: dict[str, Any], outcome: str, line: str) -> None:
        await self._finish_row(release, row, outcome)
        message = blocks.note_message(line)
        ts = row.get("message_ts")
        if ts and release.channel:
            await self._safely(self.chat.update(release.channel, ts, self._clean(message)))
        else:
            await self._post(release, message)

    async def _finish_row(self, release: Release, row: dict[str, Any], outcome: str) -> None:
        self._update(row["release_id"], state=ENDED, outcome=outcome, ended_at=utcnow().isoformat())
        self._unschedule(row["release_id"])

    def _clean(self, message: Message) -> Message:
        return Message(text=self.redact(message.text), blocks=self.redact.data(message.blocks),
                       summary=self.redact(message.summary))

    async def _post(self, release: Release, message: Message) -> str | None:
        if not release.channel or not release.thread_ts:
            return None
        try:
            return await self.chat.post(release.channel, self._clean(message), release.thread_ts)
        except Exception as exc:
            log.error("posting the watch to %s failed: %s", release.channel, self.redact(str(exc)))
            return None

    async def _safely(self, call: Any) -> None:
        try:
            await call
        except Exception as exc:
            log.error("the watch could not post: %s", self.redact(str(exc))[:300])


async def watch_check(key: str, release_id: int) -> None:
    """The persistent job: one check of release `release_id`'s watch in this process."""
    watcher = target(key, TARGET)
    if not isinstance(watcher, Watcher):
        log.warning("watch of release #%s: no watcher for %s in this process", release_id, key)
        return
    await watcher.check(release_id)
