"""A release log of 100k realistic releases, and what reading it costs.

One template release goes in through `Store` (the real one the sandbox release produced, or a
synthetic one with every step of the default runbook); then `copy_releases` clones it with bulk
SQL: every column of `releases` (new id, ref, SHA, times and a realistic mix of outcomes) and the
template's rows of every other table that has a `release_id` column. Column lists are read from
the database, so the copy follows the store's schema as its migrations change it.

Each copy's body is not the template's: successive releases of one app differ in their SHAs,
deployment ids and URLs, migration versions, every timestamp, timings and counts (`vary`), in
the commits they merge and, when they fail, in what the failing step printed (`with_news`); the
store packs each one (`Store.pack_body`, with its dictionary policy) as if it were written.
Identical copies would compress against the dictionary to almost nothing and prove nothing.
Each of these is drawn more randomly than real releases differ, so the size is on the high side.
"""

from __future__ import annotations

import random
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
from bot.store import Store, body
from bot.store.releases import DICTIONARY_EVERY

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
    """Write `template` into a new release log at `path` through the store, as the engine does
    (created running, then saved with its final status, which makes the first dictionary when it
    succeeded); its id."""
    copy = template.model_copy(deep=True)
    copy.id, copy.status = None, ReleaseStatus.RUNNING
    store = Store(path)
    store.create_release(copy)
    copy.status = template.status
    store.save(copy, *copy.steps)
    store.db.conn.close()
    assert copy.id is not None
    return copy.id


SHA = re.compile(r"\b[0-9a-f]{40}\b")
DEPLOYMENT = re.compile(r"dpl_([A-Za-z0-9]{12,})")
VERCEL_HOST = re.compile(r"-([a-z0-9]{9})-[a-z0-9-]*\.vercel\.app")
MIGRATION = re.compile(r"\b(20\d{12})\b")
TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?")
MEASURED = re.compile(r'("[a-z_]*(?:ms|seconds|tokens|chunks|reads|lines|clients|count|bytes|passed|total)":)'
                      r"(\d+)")
DURATION = re.compile(r"\b(\d+)( ?ms\b|s\b)")
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def vary(text: str, number: int) -> str:
    """The JSON text of a release body as the `number`-th release of the same app would write it:
    new commit SHAs (each everywhere it appears, with its short forms), deployment ids and
    hosts, migration versions, every timestamp, and every timing and count."""
    rng = random.Random(number)

    def fresh(old: str, alphabet: str) -> str:
        return "".join(rng.choice(alphabet) for _ in old)

    for sha in dict.fromkeys(SHA.findall(text)):
        new = fresh(sha, "0123456789abcdef")
        text = text.replace(sha, new).replace(sha[:8], new[:8]).replace(sha[:7], new[:7])
    for old in dict.fromkeys(DEPLOYMENT.findall(text) + VERCEL_HOST.findall(text)):
        text = text.replace(old, fresh(old, ALNUM))
    for version in dict.fromkeys(MIGRATION.findall(text)):
        text = text.replace(version, version[:4] + fresh(version[4:], "0123456789"))

    def moment(found: re.Match[str]) -> str:
        hour, minute, second = rng.randrange(24), rng.randrange(60), rng.randrange(60)
        fraction = f".{rng.randrange(10**6):06d}" if found.group(3) else ""
        return f"{found.group(1)}T{hour:02d}:{minute:02d}:{second:02d}{fraction}"

    text = TIMESTAMP.sub(moment, text)
    text = MEASURED.sub(lambda m: f"{m.group(1)}{rng.randrange(1, 5000)}", text)
    return DURATION.sub(lambda m: f"{rng.randrange(1, 900)}{m.group(2)}", text)


# Copies take their body from this many variants in turn: more than a dictionary's lifetime in
# releases, so no copy is packed against a dictionary made of its own twin.
VARIANTS = DICTIONARY_EVERY + 51
_WORDS = random.Random(0)
# made-up words (random letters compress worse than a real language: the pessimistic side)
VOCABULARY = ["".join(_WORDS.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_WORDS.randint(3, 10)))
              for _ in range(2000)]


def with_news(stored: dict[str, Any], number: int, failed: bool) -> dict[str, Any]:
    """`stored` (a body) with what is new in every release besides ids and times: the subjects of
    the 2-6 commits it merged (in the merge step's data and its copy in the release's data), and
    for a release that did not succeed, its failing step's output (12-24 lines of a stack trace)
    in place of the last step's result. Shallow copies: the variant it came from is unchanged."""
    rng = random.Random(number)

    def words(low: int, high: int) -> str:
        return " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(low, high)))

    commits = [f"{words(3, 8)} (#{rng.randrange(1, 10_000)})" for _ in range(rng.randint(2, 6))]
    data = dict(stored["data"]) | {"steps": dict(stored["data"].get("steps") or {})}
    steps = list(stored["steps"])
    for index, step in enumerate(steps):
        result = step.get("result")
        if step["name"] == "merge" and result:
            steps[index] = step | {"result": result | {"data": dict(result["data"]) | {"commits": commits}}}
            data["steps"]["merge"] = steps[index]["result"]["data"]
    if failed and steps and steps[-1].get("result"):
        trace = [f"Error: {words(4, 9)}"] + [
            f"    at {rng.choice(VOCABULARY)} (/var/task/{rng.choice(VOCABULARY)}.js:{rng.randrange(1, 900)}:"
            f"{rng.randrange(1, 80)})" for _ in range(rng.randint(11, 23))]
        result = steps[-1]["result"] | {"outcome": "fail", "summary": f"failed: {words(4, 9)}",
                                        "output_tail": "\n".join(trace)}
        steps[-1] = steps[-1] | {"state": "fail", "result": result}
    return {"data": data, "steps": steps}


def vary_bodies(path: Path, template_id: int, first: int, last: int) -> None:
    """Give releases `first`..`last` bodies of their own (`vary`, `with_news`), packed by the
    store as it packs a release it saves (one transaction)."""
    store = Store(path)
    try:
        stored = store.body_of(template_id)
        assert stored is not None
        text = body.dump(stored["data"], stored["steps"]).decode()
        variants = [body.loads(vary(text, n)) for n in range(VARIANTS)]
        conn = store.db.conn
        rows = conn.execute("select id, status from releases where id between ? and ? order by id",
                            [first, last]).fetchall()
        conn.execute("begin immediate")
        for release_id, status in rows:
            news = with_news(variants[release_id % VARIANTS], release_id, status != ReleaseStatus.SUCCEEDED)
            packed = store.pack_body(release_id, ReleaseStatus(status), news["data"], news["steps"])
            conn.execute("update releases set body = ?, body_dictionary = ? where id = ?",
                         [packed["body"], packed["body_dictionary"], release_id])
        conn.execute("commit")
    finally:
        store.db.conn.close()


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
    finally:
        conn.close()
    vary_bodies(path, template_id, first, last)
    conn = sqlite3.connect(path)
    try:
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
