"""The replay guard: a request's keys are taken once, across processes, within Slack's window."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot import replay
from bot.replay import RedisSeen, ReplayGuard, SqliteSeen
from bot.store import Store


async def test_sqlite_keys_are_taken_once_and_still_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = Store(path)
    one = SqliteSeen.beside(store.db.conn)
    assert await one.add("sig:1") is True
    assert await one.add("sig:1") is False
    assert await one.add("sig:2") is True
    await asyncio.sleep(one.flush_after * 3)  # a moment later the keys are written
    # a restarted bot (a new guard on the same file) still refuses both
    again = SqliteSeen.beside(Store(path).db.conn)
    assert await again.add("sig:1") is False and await again.add("sig:2") is False
    assert await again.add("sig:3") is True
    # The keys are in the log's file, so its replica (restored on a new machine) has them; the
    # guard's connection waits for no fsync (NORMAL in WAL) while the log's keeps FULL.
    assert "slack_request_keys" in store.db.table_names()
    assert store.db.execute("pragma synchronous").fetchone()[0] == 2
    assert one.conn.execute("pragma synchronous").fetchone()[0] == 1


async def test_keys_taken_together_are_written_in_one_transaction(tmp_path: Path) -> None:
    seen = SqliteSeen.beside(Store(tmp_path / "log.db").db.conn)
    assert await seen.add("sig:first")  # the first key reads what the file already holds
    seen.flush()
    statements: list[str] = []
    seen.conn.set_trace_callback(statements.append)
    assert all([await seen.add(f"sig:{i}") for i in range(50)])
    assert statements == []  # nothing read or written while the requests are being answered
    await asyncio.sleep(seen.flush_after * 3)
    assert [s.split()[0].lower() for s in statements] == ["begin", *["insert"] * 50, "commit"]
    assert seen.conn.execute("select count(*) from slack_request_keys").fetchone()[0] == 51


async def test_a_key_older_than_the_window_may_be_taken_again(tmp_path: Path) -> None:
    expired = SqliteSeen.beside(Store(tmp_path / "log.db").db.conn)
    expired.window = -1  # every earlier sighting counts as outside the window
    assert await expired.add("sig:1") is True and await expired.add("sig:1") is True


async def test_keys_are_appended_in_the_order_taken_with_no_index_to_update(tmp_path: Path) -> None:
    """New keys are random signatures: an index on them would rewrite a page of its own for each
    one. The table is written in the order keys are taken and read whole only at start-up, where
    a key taken again after its window keeps its latest time."""
    path = tmp_path / "log.db"
    now = [1000.0]
    seen = SqliteSeen.beside(Store(path).db.conn)
    seen.clock = lambda: now[0]
    assert await seen.add("sig:again")
    now[0] += seen.window + 1
    assert await seen.add("sig:again") and await seen.add("sig:other")
    seen.flush()
    assert seen.conn.execute("pragma index_list(slack_request_keys)").fetchall() == []
    rows = seen.conn.execute("select key, seen_at from slack_request_keys order by rowid").fetchall()
    assert rows == [("sig:again", 1000.0), ("sig:again", now[0]), ("sig:other", now[0])]
    restarted = SqliteSeen.beside(Store(path).db.conn)
    restarted.clock = lambda: now[0] + 1  # the first sighting is outside the window, the second not
    assert await restarted.add("sig:again") is False and await restarted.add("sig:other") is False


async def test_keys_a_bot_wrote_in_the_keyed_table_before_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = Store(path)
    now = 5000.0
    with store.db.conn:
        store.db.conn.execute("create table slack_requests_seen "
                              "(key text primary key, seen_at real not null)")
        store.db.conn.executemany("insert into slack_requests_seen values (?, ?)",
                                  [("sig:recent", now - 10), ("sig:expired", now - 10_000)])
    seen = SqliteSeen.beside(store.db.conn)
    seen.clock = lambda: now
    assert await seen.add("sig:recent") is False  # taken by the bot before the upgrade
    assert await seen.add("sig:expired") is True  # outside the window, as before
    assert "slack_requests_seen" not in Store(path).db.table_names()
    seen.flush()
    keys = [row[0] for row in seen.conn.execute("select key from slack_request_keys order by rowid")]
    assert keys == ["sig:recent", "sig:expired"]


async def test_redis_first_and_the_release_log_when_redis_is_down(redis_server: Any,
                                                                  tmp_path: Path) -> None:
    client = aioredis.from_url(redis_server.url)
    sqlite = SqliteSeen.beside(Store(tmp_path / "log.db").db.conn)
    guard = ReplayGuard(RedisSeen(client), fallback=sqlite)
    try:
        assert await guard.first_time(["sig:a", "event:E1"]) is True
        assert await guard.first_time(["sig:b", "event:E1"]) is False  # Slack's retry of E1
        assert await guard.first_time(["sig:a"]) is False
        assert await client.ttl("release-bot:seen:sig:a") > 0
    finally:
        await client.delete("release-bot:seen:sig:a", "release-bot:seen:sig:b",
                            "release-bot:seen:event:E1")
        await client.aclose()
    down = ReplayGuard(RedisSeen(aioredis.from_url("redis://127.0.0.1:9/0")), fallback=sqlite)
    assert await down.first_time(["sig:c"]) is True
    assert await down.first_time(["sig:c"]) is False


async def test_expired_keys_are_forgotten_in_batches_not_on_every_turn(
        tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(replay, "PRUNE_ABOVE", 10)
    now = [1000.0]
    seen = SqliteSeen.beside(Store(tmp_path / "log.db").db.conn)
    seen.clock = lambda: now[0]
    for i in range(8):
        assert await seen.add(f"sig:old{i}")
    now[0] += seen.window + 1  # those eight are now outside Slack's window
    for i in range(4):
        assert await seen.add(f"sig:new{i}")
    statements: list[str] = []
    seen.conn.set_trace_callback(statements.append)
    seen.flush()
    assert any(s.startswith("delete") for s in statements)  # 12 > 10: the old ones go
    assert seen.conn.execute("select count(*) from slack_request_keys").fetchone()[0] == 4
    assert await seen.add("sig:old0") is True  # outside the window, so it may be taken again
    statements.clear()
    seen.flush()
    # 5 left, under the bar: no pruning pass over the remembered keys on this turn
    assert statements and not any(s.startswith("delete") for s in statements)
    for i in range(20):  # 25 young keys: one pass finds nothing to forget...
        assert await seen.add(f"sig:young{i}")
    seen.flush()
    statements.clear()
    assert await seen.add("sig:one-more")
    seen.flush()
    # ...and the next turns do not walk them again until they have doubled
    assert statements and not any(s.startswith("delete") for s in statements)


async def test_a_stopping_bot_writes_the_keys_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    guard = ReplayGuard(SqliteSeen.beside(Store(path).db.conn))
    seen = guard.primary
    assert isinstance(seen, SqliteSeen)
    seen.flush_after = 3600.0  # nothing would be written for an hour
    assert await guard.first_time(["sig:late"]) is True
    await guard.close()  # what `serve` does when it stops
    assert await SqliteSeen.beside(Store(path).db.conn).add("sig:late") is False


def test_a_key_outlives_every_timestamp_the_signature_check_accepts() -> None:
    # a request is accepted while its timestamp is within WINDOW of our clock either way, so one
    # stamped WINDOW ahead stays valid for 2 x WINDOW after it arrives: its key must last as long
    from bot import slack_request

    assert replay.WINDOW_SECONDS > 2 * slack_request.WINDOW_SECONDS


async def test_a_guard_that_cannot_write_at_stop_still_lets_the_bot_close(
        tmp_path: Path, monkeypatch: Any) -> None:
    from bot.runtime import Runtime
    from tests.slack_e2e import SlackHarness
    from tests.test_hostile_input import tiny

    async def full_disk(self: ReplayGuard) -> None:
        raise OSError("No space left on device")

    closed: list[bool] = []
    real_close = Runtime.close

    async def close(self: Runtime) -> None:
        closed.append(True)
        await real_close(self)

    monkeypatch.setattr(ReplayGuard, "close", full_disk)
    monkeypatch.setattr(Runtime, "close", close)
    async with SlackHarness(tmp_path, **tiny(tmp_path)) as slack:
        assert (await slack.command("help"))[0].status_code == 200
    assert closed == [True]  # the engine, the chat and the knowledge base were still closed


async def test_first_use_takes_the_write_lock_before_it_reads(tmp_path: Path) -> None:
    """Under Litestream another connection writes to the file while the bot starts. The guard's
    first use reads (is there an old table?) and then deletes expired keys: had it read first in
    a deferred transaction, a commit by the other connection in between would refuse the upgrade
    at once ("database is locked", no waiting), and the first request would fail with a 500."""
    path = tmp_path / "log.db"
    Store(path).db.conn.close()
    other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    other.execute("create table litestream_like (n)")
    written: list[str] = []

    def write_between(statement: str) -> None:
        if statement.startswith("delete"):  # after the read, before the write
            try:
                other.execute("insert into litestream_like values (1)")
                written.append("other")
            except sqlite3.OperationalError:  # the guard holds the write lock: wait your turn
                written.append("waited")

    seen = SqliteSeen.beside(Store(path).db.conn)
    seen.conn.set_trace_callback(write_between)
    assert await seen.add("sig:first") is True
    assert written == ["waited"]
    other.close()
