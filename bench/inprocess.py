"""Measures inside one process (kept from the first bench; `python -m bench` runs them too).

- ack: `/release start` through the real Bolt app over HTTP with a signed request is acknowledged
  well inside Slack's 3 s; ratio to a plain `GET /healthz` on the same server.
- coalescing: parent-message updates of a 40-step release with the 1 s coalescing window vs
  one update per transition (the Tier-3 `chat.update` budget is ~50/min).
- hostile: a 1 MB unsigned request is refused about as fast as a tiny one, and /healthz sent
  alongside it answers about as fast as alone (before the fix: minutes of 100% CPU).
- store: one engine transition (the release row and its body rewritten, one transaction) vs a bare
  SQLite insert, and how many commits `Store.create_release` and `Store.save` make.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.results import Results, Row, value_at_most
from bot.chat.blocks import Message
from bot.chat.reporter import ChatReporter
from bot.locks import SqliteLock
from bot.redact import Redactor
from bot.runbook.engine import Engine
from bot.runbook.loader import parse_runbook
from bot.runbook.model import Release, StepRecord, StepResult
from bot.runbook.step import StepContext, StepDef
from bot.store import Store
from tests.helpers import make_settings
from tests.slack_e2e import SlackHarness

SECTION = "In-process measures"


async def bench_ack(results: Results, rounds: int = 40) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runbook = Path(tmp) / "rb.yml"
        runbook.write_text("phases: [{name: p, steps: [{name: smoke}]}]")
        async with SlackHarness(Path(tmp), RUNBOOK_PATH=str(runbook),
                                STAGING_URL="http://127.0.0.1:9") as slack:
            acks, health = [], []
            for i in range(rounds):
                t0 = time.perf_counter()
                response, _ = await slack.command("start main --dry-run" if i % 2 else "help")
                acks.append(time.perf_counter() - t0)
                assert response.status_code == 200
                t0 = time.perf_counter()
                await slack.http.get("/healthz")
                health.append(time.perf_counter() - t0)
            results.add(Row(SECTION, "in-process ack p50, `help` and `start --dry-run`, 1 client",
                            statistics.median(acks) * 1000, "ms", statistics.median(health) * 1000,
                            "GET /healthz"))
            p95 = sorted(acks)[int(len(acks) * 0.95) - 1] * 1000
            results.add(Row(SECTION, "in-process ack p95, 1 client", p95, "ms", 3000.0,
                            "Slack's 3 s limit", "inside Slack's 3 s", value_at_most(3000)))


async def bench_hostile(results: Results, rounds: int = 5) -> None:
    """A 1 MB unsigned request (refused 401) vs a small unsigned one, and how long /healthz waits
    when it is sent while the big one is being refused: both ratios should stay near 1."""
    with tempfile.TemporaryDirectory() as tmp:
        async with SlackHarness(Path(tmp)) as slack:
            headers = {"X-Slack-Signature": "v0=bad", "X-Slack-Request-Timestamp": "1",
                       "Content-Type": "application/x-www-form-urlencoded"}
            big, small, health_during, health_alone = [], [], [], []
            megabyte = "pad=" + "qwertyuiop" * 100_000

            async def timed(coro: Any) -> float:
                t0 = time.perf_counter()
                await coro
                return time.perf_counter() - t0

            for _ in range(rounds):
                small.append(await timed(slack.http.post("/slack/events", content="pad=x",
                                                         headers=headers)))
                health_alone.append(await timed(slack.http.get("/healthz")))
                b, h = await asyncio.gather(
                    timed(slack.http.post("/slack/events", content=megabyte, headers=headers,
                                          timeout=600)),
                    timed(slack.http.get("/healthz", timeout=600)))
                big.append(b)
                health_during.append(h)
            results.add(Row(SECTION, "1 MB unsigned request refused", statistics.median(big) * 1000,
                            "ms", statistics.median(small) * 1000, "a 5-byte one"))
            results.add(Row(SECTION, "/healthz during a 1 MB unsigned request",
                            statistics.median(health_during) * 1000, "ms",
                            statistics.median(health_alone) * 1000, "/healthz alone"))


class CountingChat:
    def __init__(self) -> None:
        self.updates = 0
        self.posts = 0

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        self.posts += 1
        return f"{self.posts}.0"

    async def update(self, channel: str, ts: str, message: Message) -> None:
        self.updates += 1

    async def ephemeral(self, channel: str, user: str, message: Message) -> None:
        return None


async def run_release(interval: float, steps: int = 40) -> tuple[int, int]:
    async def quick(ctx: StepContext) -> StepResult:
        await asyncio.sleep(0.06)
        return StepResult.ok("fine")

    registry = {f"s{i}": StepDef(name=f"s{i}", title=f"S{i}", run=quick, describe="")
                for i in range(steps)}
    runbook = parse_runbook(json.dumps({"phases": [{"name": "p", "steps": [{"name": n} for n in registry]}]}),
                            registry)
    store = Store(":memory:")
    chat = CountingChat()
    reporter = ChatReporter(chat, Redactor(), default_channel="C1", interval=interval)
    engine = Engine(settings=make_settings(), store=store, reporter=reporter, runbook=runbook,
                    registry=registry, lock=SqliteLock(store))
    release = await engine.start(ref="main", user="U1", channel="C1")
    await engine.wait(release.id or 0)
    return chat.updates, steps * 2


async def bench_coalescing(results: Results) -> None:
    coalesced, transitions = await run_release(interval=1.0)
    naive, _ = await run_release(interval=0.0)
    results.add(Row(SECTION, f"chat.update calls for {transitions} transitions of 40 quick steps, "
                    "1 s window", coalesced, "calls", naive, "no window"))


def bench_store(results: Results, rounds: int = 300) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "log.db")
        release = Release(environment="staging", ref="main", started_by="U1",
                          steps=[StepRecord(name="s", title="S", phase="p")])
        store.create_release(release)
        record = release.steps[0]
        t0 = time.perf_counter()
        for i in range(rounds):
            record.result = StepResult.ok(f"round {i}", details="x" * 500)
            store.save(release, record)
        ours = (time.perf_counter() - t0) / rounds
        conn = sqlite3.connect(Path(tmp) / "raw.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("create table t (id integer primary key, body text)")
        t0 = time.perf_counter()
        for i in range(rounds):
            with conn:
                conn.execute("insert into t (body) values (?)", (json.dumps({"i": i, "d": "x" * 500}),))
        raw = (time.perf_counter() - t0) / rounds
        conn.close()
        results.add(Row(SECTION, "one persisted transition (release row and its body)", ours * 1e6,
                        "µs", raw * 1e6, "one bare SQLite insert"))


def commits_during(store: Store, action: Any) -> int:
    """How many COMMITs the store's connection runs while `action()` runs."""
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        action()
    finally:
        store.db.conn.set_trace_callback(None)
    return sum(1 for s in statements if s.lstrip().upper().startswith("COMMIT"))


def bench_transactions(results: Results, steps: int = 17) -> None:
    """Commits of `Store.create_release` (a release of `steps` steps) and of `Store.save`."""
    store = Store(":memory:")
    release = Release(environment="staging", ref="main", started_by="U1",
                      steps=[StepRecord(name=f"s{i}", title=f"S{i}", phase="p", position=i)
                             for i in range(steps)])
    created = commits_during(store, lambda: store.create_release(release))
    release.steps[0].result = StepResult.ok("fine")
    saved = commits_during(store, lambda: store.save(release, release.steps[0]))
    results.add(Row(SECTION, f"commits of `Store.create_release` ({steps} steps)", created,
                    "commits", 1, "one transaction", "one transaction", value_at_most(1)))
    results.add(Row(SECTION, "commits of `Store.save` (release + one step)", saved, "commits", 1,
                    "one transaction", "one transaction", value_at_most(1)))


async def run_all(results: Results) -> None:
    await bench_ack(results)
    await bench_hostile(results)
    await bench_coalescing(results)
    bench_store(results)
    bench_transactions(results)
