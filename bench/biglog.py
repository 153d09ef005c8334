"""A release log of 100k realistic releases, and what reading it costs.

One template release goes in through `Store` (the real one the sandbox release produced, or a
synthetic one with every step of the default runbook); then `copy_releases` clones it with bulk
SQL: every column of `releases` (new id, ref, SHA, times and a realistic mix of outcomes) and the
template's rows of every other table that has a `release_id` column. Column lists are read from
the database, so the copy follows the store's schema as its migrations change it.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.procs import BOT_TOKEN, SIGNING_SECRET, base_env, bot_command
from bot.runbook.model import Link, Release, ReleaseStatus, StepRecord, StepResult, StepState, utcnow
from bot.store import Store

ENVIRONMENT = "staging"
# Unused by `release-bot log`: importing any of them is start-up time spent for nothing.
HEAVY_FOR_LOG = ("bot.rollback", "redis", "httpx", "slack_sdk", "slack_bolt", "aiohttp",
                 "apscheduler", "posthog")


def synthetic_release() -> Release:
    """A finished release with every step of the default runbook and realistic results."""
    from bot.runbook.loader import load_runbook
    from bot.steps.registry import STEPS

    runbook = load_runbook(None, STEPS)
    started = utcnow() - timedelta(minutes=20)
    steps = []
    for position, (phase, spec) in enumerate((p, s) for p in runbook.phases for s in p.steps):
        result = StepResult.ok(
            f"{spec.name}: checked against staging, all as expected",
            details="\n".join(f"• line {i} of what {spec.name} found: ok" for i in range(12)),
            links=[Link(label="details", url=f"https://example.invalid/{spec.name}")],
            data={"checked": [f"item-{i}" for i in range(10)], "sha": "a" * 40})
        steps.append(StepRecord(name=spec.name, title=spec.name.replace("_", " ").title(),
                                phase=phase.name, position=position, state=StepState.OK,
                                result=result, started_at=started, finished_at=started))
    return Release(environment=ENVIRONMENT, ref="release/1.2.0", git_sha="b" * 40, started_by="U0ALICE",
                   channel="C0RELEASES", thread_ts="1700000000.000100", status=ReleaseStatus.SUCCEEDED,
                   started_at=started, finished_at=utcnow(), notes="Reflections get a mood score",
                   fields={"Release Date": started.date().isoformat(), "Git SHA": "b" * 40,
                           "Migrations Applied": "20250301000000_reflection_mood",
                           "Feature Highlights": "#41 Reflections get a mood score",
                           "Manual Tests": "", "Post-Deploy Monitoring Links": "https://example.invalid",
                           "Rollback Trigger (if used)": ""},
                   data={"steps": {s.name: s.result.data for s in steps if s.result}},
                   steps=steps)


def store_template(path: Path, template: Release) -> int:
    """Write `template` into a new release log at `path` through the store; its id."""
    copy = template.model_copy(deep=True)
    copy.id = None
    store = Store(path)
    store.create_release(copy)
    store.db.conn.close()
    assert copy.id is not None
    return copy.id


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'pragma table_info("{table}")')]


RELEASE_OVERRIDES = {
    "id": "n.i",
    "ref": "'release/1.' || (n.i / 100) || '.' || (n.i % 100)",
    "git_sha": "lower(hex(randomblob(20)))",
    "thread_ts": "(1700000000 + n.i * 1800) || '.000100'",
    "status": ("case when n.i % 41 = 0 then 'rolled_back' when n.i % 17 = 0 then 'failed' "
               "when n.i % 97 = 0 then 'cancelled' else 'succeeded' end"),
    "started_at": "strftime('%Y-%m-%dT%H:%M:%S+00:00', '2021-01-01', '+' || (n.i * 30) || ' minutes')",
    "release_date": "strftime('%Y-%m-%d', '2021-01-01', '+' || (n.i * 30) || ' minutes')",
    "finished_at": "strftime('%Y-%m-%dT%H:%M:%S+00:00', '2021-01-01', '+' || (n.i * 30 + 14) || ' minutes')",
}


def copy_releases(path: Path, template_id: int, count: int) -> None:
    """Clone release `template_id` until the log holds `count` releases (one transaction)."""
    conn = sqlite3.connect(path)
    try:
        first = conn.execute("select coalesce(max(id), 0) + 1 from releases").fetchone()[0]
        last = first + count - conn.execute("select count(*) from releases").fetchone()[0] - 1
        columns = _columns(conn, "releases")
        chosen = ", ".join(RELEASE_OVERRIDES.get(c, f't."{c}"') for c in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        with conn:
            conn.execute(
                f"with recursive n(i) as (select ? union all select i + 1 from n where i < ?) "  # noqa: S608
                f"insert into releases ({names}) select {chosen} from n, releases t where t.id = ?",
                [first, last, template_id])
            for table in tables:
                cols = _columns(conn, table)
                if table == "releases" or "release_id" not in cols:
                    continue
                picked = ", ".join("r.id" if c == "release_id" else f's."{c}"' for c in cols)
                conn.execute(
                    f'insert into "{table}" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)}) '  # noqa: S608
                    f"select {picked} from releases r, \"{table}\" s "
                    f"where s.release_id = ? and r.id between ? and ?",
                    [template_id, first, last])
        conn.execute("pragma wal_checkpoint(truncate)")
    finally:
        conn.close()


def db_size_mb(path: Path) -> float:
    """The release log's size on disk (database, WAL and shared-memory files), in MB (10^6)."""
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def median_ms(fn: Callable[[], Any], runs: int = 9) -> float:
    """Median wall time of `fn()` in ms, after one uncounted call."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def status_query(store: Store) -> Release | None:
    """What `/release status` reads: the running release, else the newest one."""
    return store.active_release(ENVIRONMENT) or store.latest_release(ENVIRONMENT)


def query_times(path: Path, show_id: int) -> dict[str, float]:
    """Median ms of the log's queries on the release log at `path`."""
    store = Store(path)
    try:
        return {
            "log": median_ms(lambda: store.release_summaries(20, ENVIRONMENT)),
            "show": median_ms(lambda: store.get_release(show_id)),
            "status": median_ms(lambda: status_query(store)),
            "recover": median_ms(lambda: store.releases_with_status(ReleaseStatus.RUNNING,
                                                                    ReleaseStatus.WAITING)),
        }
    finally:
        store.db.conn.close()


def log_env(path: Path) -> dict[str, str]:
    return base_env(DATABASE_PATH=str(path), ENVIRONMENT=ENVIRONMENT, SLACK_BOT_TOKEN=BOT_TOKEN,
                    SLACK_SIGNING_SECRET=SIGNING_SECRET)


def process_seconds(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - t0


def whole_process(commands: dict[str, tuple[list[str], dict[str, str]]], cwd: Path,
                  runs: int) -> dict[str, float]:
    """Median seconds of each whole command, run in turn (A B C A B C ...) after one warm-up each."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(runs + 1):
        for name, (argv, env) in commands.items():
            took = process_seconds(argv, env, cwd)
            if i:
                times[name].append(took)
    return {name: statistics.median(t) for name, t in times.items()}


def log_imports(path: Path, cwd: Path) -> list[str]:
    """Top-level packages of HEAVY_FOR_LOG that `release-bot log` imports."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bot.cli", "log"], env=log_env(path),
                          cwd=cwd, capture_output=True, text=True, check=True)
    imported = {m.group(1).strip() for m in re.finditer(r"^import time:.*\|\s*([\w.]+)\s*$",
                                                         done.stderr, re.MULTILINE)}
    return [name for name in HEAVY_FOR_LOG if name in imported]


def python_pass() -> list[str]:
    return [sys.executable, "-c", "pass"]


def log_command(*args: str) -> list[str]:
    return bot_command("log", *args)


def pick_show_id(path: Path) -> int:
    """A release in the middle of the log (what an operator looks up after an incident)."""
    conn = sqlite3.connect(path)
    try:
        low, high = conn.execute("select min(id), max(id) from releases").fetchone()
    finally:
        conn.close()
    return int((low + high) // 2)
