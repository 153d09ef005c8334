"""The benchmark harness (bench/) imports, and its pieces produce what RESULTS.md is made of.

Nothing here times anything: the figures themselves are read from bench/RESULTS.md.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from slack_sdk.signature import SignatureVerifier

from bench import biglog, inprocess
from bench.__main__ import parse
from bench.load import Samples, signed_command
from bench.release_calls import peak
from bench.results import Results, Row, ratio_at_most
from bot.store import Store, body


def test_a_tiny_store_measure_writes_results_rows(tmp_path: Path) -> None:
    results = Results()
    inprocess.bench_transactions(results, steps=3)
    assert [r.unit for r in results.rows] == ["commits", "commits"]
    assert all(r.value >= 1 and r.met is not None for r in results.rows)
    out = tmp_path / "RESULTS.md"
    results.write(out)
    text = out.read_text()
    assert "## In-process measures" in text
    assert "| what | measured | baseline | ratio | target | met |" in text
    row = next(line for line in text.splitlines() if "Store.create_release" in line)
    assert row.count("|") == 7 and "one transaction" in row
    assert "- commit: " in text and "- machine: " in text


def test_rows_show_ratio_and_target_verdict() -> None:
    row = Row("s", "p99", 130.0, "ms", 100.0, "bare Bolt", "≤ 1.3× bare", ratio_at_most(1.3))
    assert row.ratio == 1.3 and row.met is True
    assert row.markdown() == "| p99 | 130 ms | 100 ms (bare Bolt) | 1.30× | ≤ 1.3× bare | met |"
    slower = Row("s", "p99", 131.0, "ms", 100.0, "bare Bolt", "≤ 1.3× bare", ratio_at_most(1.3))
    assert slower.met is False and "**not met**" in slower.markdown()


def test_peak_counts_events_in_any_window() -> None:
    times = [0.0, 0.2, 0.9, 1.5, 4.0, 4.1, 4.2, 4.3]
    assert peak(times, 1.0) == 4  # 4.0 .. 4.3
    assert peak(times, 3.0) == 5  # 1.5 .. 4.3
    assert peak([0.0, 1.0, 2.0, 3.0], 3.0) == 3  # a window is half open
    assert peak([], 1.0) == 0


def test_percentiles_are_the_median_rounds_and_pooled_keeps_every_ack() -> None:
    steady = [i / 1000 for i in range(1, 101)]
    stalled = [0.5] * 100  # one round during which the machine stalled
    samples = Samples(latencies=steady * 2 + stalled, rounds=[steady, stalled, steady])
    assert samples.percentile(99) == 0.099 and samples.percentile(50) == 0.050
    assert samples.pooled(99) == 0.5


def test_percentiles_are_nearest_rank() -> None:
    samples = Samples(latencies=[i / 1000 for i in range(1, 101)])
    assert samples.percentile(50) == 0.050
    assert samples.percentile(99) == 0.099
    assert samples.percentile(100) == 0.100


def test_signed_command_verifies_with_the_signing_secret() -> None:
    body, headers = signed_command("status", "http://127.0.0.1:1")
    assert SignatureVerifier("s3cret-other").is_valid(
        body.decode(), headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]) is False
    from bench.procs import SIGNING_SECRET

    assert SignatureVerifier(SIGNING_SECRET).is_valid(
        body.decode(), headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])


def test_copies_of_a_template_release_read_back_through_the_store(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    template = biglog.synthetic_release()
    template_id = biglog.store_template(path, template)
    biglog.copy_releases(path, template_id, 6)
    store = Store(path)
    listed = store.list_releases(20, biglog.ENVIRONMENT)
    assert len(listed) == 6 and [r.id for r in listed] == sorted((r.id for r in listed), reverse=True)
    copy = store.get_release(biglog.pick_show_id(path))
    assert copy is not None and copy.id != template_id
    assert [s.name for s in copy.steps] == [s.name for s in template.steps]
    assert copy.fields["Feature Highlights"] == template.fields["Feature Highlights"]
    assert len({r.git_sha for r in listed}) == 6
    # each copy has a body of its own (as successive releases differ), packed by the store
    # against the dictionary the template made when it succeeded
    bodies = {r.id: body.dump(r.data, []).decode() for r in listed}
    assert len(set(bodies.values())) == 6
    assert "a" * 40 not in bodies[copy.id] and "a" * 40 in bodies[template_id]
    assert copy.step(template.steps[0].name).result is not None
    dictionaries = store.db.execute("select count(*), min(made_from) from body_dictionaries").fetchone()
    assert dictionaries == (1, template_id)
    blobs = store.db.execute("select id, body, body_dictionary from releases").fetchall()
    (dictionary,) = store.db.execute("select dictionary from body_dictionaries").fetchone()
    for release_id, blob, dictionary_id in blobs:
        assert dictionary_id == 1 and blob[1] & 0x20, release_id  # zlib's FDICT: it needs one
        unpacker = zlib.decompressobj(zdict=dictionary)
        assert json.loads(unpacker.decompress(blob))["v"] == 1


def test_the_news_of_a_release_are_its_own_and_leave_the_variant_as_it_was() -> None:
    stored = {"data": {"steps": {"merge": {"sha": "s"}}},
              "steps": [{"name": "merge", "state": "ok", "result": {"outcome": "ok", "data": {"sha": "s"}}},
                        {"name": "health", "state": "ok", "result": {"outcome": "ok", "summary": "fine",
                                                                     "output_tail": "", "data": {}}}]}
    before = json.dumps(stored)
    one, two = biglog.with_news(stored, 1, failed=False), biglog.with_news(stored, 2, failed=True)
    assert json.dumps(stored) == before
    commits = one["steps"][0]["result"]["data"]["commits"]
    assert 2 <= len(commits) <= 6 and one["data"]["steps"]["merge"]["commits"] == commits
    assert commits != two["steps"][0]["result"]["data"]["commits"]
    assert one["steps"][1] == stored["steps"][1]  # succeeded: nothing failed
    failed = two["steps"][1]
    assert failed["state"] == "fail" and failed["result"]["outcome"] == "fail"
    tail = failed["result"]["output_tail"]
    assert tail.startswith("Error: ") and tail.count("\n") >= 11


def test_vary_gives_a_release_of_the_same_app_new_ids_times_and_counts() -> None:
    sha = "5e2ecea69dadb4637f263e0943e5d516b0f36bd4"
    text = json.dumps({"sha": sha, "short": f"tested at {sha[:8]}, deployed {sha[:7]}",
                       "deployment_id": "dpl_vnEN5N1aE6PwZPf1Qh6yYTWmE4lB",
                       "url": "https://app-yovfz8uzd-acme.vercel.app", "at": "2026-12-06T09:30:04.175000Z",
                       "first_chunk_ms": 17, "summary": "rendered in 112 ms", "pending": ["20250301000000"],
                       "title": "Deploy to Vercel", "position": 7})
    varied = json.loads(biglog.vary(text, 1))
    assert varied["sha"] != sha and len(varied["sha"]) == 40
    assert varied["short"] == f"tested at {varied['sha'][:8]}, deployed {varied['sha'][:7]}"
    assert varied["deployment_id"] != "dpl_vnEN5N1aE6PwZPf1Qh6yYTWmE4lB"
    assert "yovfz8uzd" not in varied["url"] and varied["url"].endswith("-acme.vercel.app")
    assert varied["at"] != "2026-12-06T09:30:04.175000Z" and varied["at"].startswith("2026-12-06T")
    assert varied["pending"][0].startswith("2025") and varied["pending"] != ["20250301000000"]
    assert (varied["title"], varied["position"]) == ("Deploy to Vercel", 7)  # what does not change
    assert biglog.vary(text, 1) == biglog.vary(text, 1) != biglog.vary(text, 2)


def test_options_parse() -> None:
    opts, out = parse(["--rounds", "1", "--releases", "10", "--skip", "release,load"])
    assert (opts.rounds, opts.releases, opts.skip) == (1, 10, ("release", "load"))
    assert out.name == "RESULTS.md"
