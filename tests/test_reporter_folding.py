"""What gets a thread reply of its own: sequential results, failures, summaries, the verdict.

The engine runs a small runbook through the ChatReporter over the console chat; skipped steps
and a concurrent phase's checks fold into one line and one table, nothing else is lost.
"""

from __future__ import annotations

import io

from bot.chat.blocks import RETRY_ACTION, ROLLBACK_ACTION
from bot.chat.console import ConsoleChat
from bot.chat.reporter import ChatReporter
from bot.locks import SqliteLock
from bot.redact import Redactor
from bot.report import release_table
from bot.runbook.engine import Engine
from bot.runbook.loader import parse_runbook
from bot.runbook.model import Link, ReleaseStatus, StepResult, StepState
from bot.runbook.step import StepContext, StepDef
from bot.store import Store
from tests.helpers import make_settings

RUNBOOK = """
name: folding
phases:
  - name: preflight
    concurrent: true
    steps: [{name: fresh}, {name: present}]
  - name: prepare
    steps: [{name: tests}, {name: review, skip: no new migrations}, {name: push, skip: nothing to push}]
  - name: validate
    concurrent: true
    steps: [{name: smoke}, {name: health}, {name: coach}, {name: redis, skip: no REDIS_URL}]
  - name: report
    always: true
    steps: [{name: links}]
"""
RESULTS = {
    "fresh": StepResult.ok("3 events fresh"),
    "present": StepResult.ok("9 variables set"),
    "tests": StepResult.ok("5 passed", details="jest: 5 passed, 5 total"),
    "smoke": StepResult.ok("rendered", links=[Link(label="staging", url="https://staging.example")]),
    "health": StepResult.warn("redis slow", details="redis answered in 900 ms"),
    "coach": StepResult.ok("streamed 5 chunks"),
    "links": StepResult.ok("3 monitoring links"),
}


def _step(name: str, results: dict[str, StepResult]) -> StepDef:
    async def run(ctx: StepContext) -> StepResult:
        return results[name]

    return StepDef(name=name, title=name.title(), run=run, describe=name, timeout=30)


async def _release(results: dict[str, StepResult]) -> tuple[ConsoleChat, Store, int]:
    registry = {name: _step(name, results) for name in
                ("fresh", "present", "tests", "review", "push", "smoke", "health", "coach",
                 "redis", "links")}
    store = Store(":memory:")
    chat = ConsoleChat(out=io.StringIO(), redactor=Redactor())
    reporter = ChatReporter(chat, Redactor(), default_channel="C1", interval=0,
                            rollback_enabled=True)
    engine = Engine(settings=make_settings(), store=store, reporter=reporter,
                    runbook=parse_runbook(RUNBOOK, registry), registry=registry, redactor=Redactor(),
                    lock=SqliteLock(store))
    release = await engine.start(ref="release/1.2.0", user="U0ALICE", channel="C1")
    assert release.id is not None
    await engine.wait(release.id)
    await reporter.flush()
    return chat, store, release.id


def _replies(chat: ConsoleChat) -> list[str]:
    return [said.message.text for said in chat.messages if said.kind == "reply"]


async def test_skips_and_concurrent_checks_fold_into_summaries_and_the_verdict() -> None:
    chat, store, release_id = await _release(RESULTS)
    replies = _replies(chat)
    # 2 summaries, 2 sequential results, 1 verdict: not 10 step replies + 2 summaries + 1 verdict
    assert len(replies) == 5, replies
    preflight, tests, validate, links, verdict = replies
    assert preflight.startswith("*Preflight summary*: 2 passed")
    assert "Fresh" in preflight and "3 events fresh" in preflight and "9 variables set" in preflight
    assert tests.startswith(":white_check_mark: *Tests* — 5 passed") and "jest: 5 passed" in tests
    assert validate.startswith("*Validate summary*: 3 passed (1 with warnings), 1 skipped")
    for found in ("rendered", "redis slow", "streamed 5 chunks", "Skipped: no REDIS_URL"):
        assert found in validate
    assert "*Health*: redis answered in 900 ms" in validate  # a warning's details kept
    assert "<https://staging.example|Smoke: staging>" in validate  # and every check's links
    assert links.startswith(":white_check_mark: *Links* — 3 monitoring links")
    assert "Succeeded in" in verdict
    assert "Skipped: Review (no new migrations), Push (nothing to push), Redis (no REDIS_URL)" in verdict
    assert [s.message.broadcast for s in chat.messages if s.kind == "reply"] == [False] * 4 + [True]

    stored = store.get_release(release_id)
    assert stored is not None and stored.status == ReleaseStatus.SUCCEEDED
    table = release_table(stored)
    for name in ("fresh", "present", "review", "push", "smoke", "health", "coach", "redis"):
        assert stored.step(name).result is not None, name  # nothing lost from the log
    assert "no new migrations" in table and "redis slow" in table


async def test_a_failed_check_keeps_its_own_reply_and_the_verdict_its_buttons() -> None:
    results = dict(RESULTS)
    results["coach"] = StepResult.fail("stream broke", details="no chunk in 30 s",
                                       output_tail="TimeoutError: no chunk")
    chat, _, _ = await _release(results)
    replies = _replies(chat)
    failures = [r for r in replies if r.startswith(":x: *Coach* — stream broke")]
    assert len(failures) == 1 and "no chunk in 30 s" in failures[0]
    assert "TimeoutError: no chunk" in failures[0]
    summary = next(r for r in replies if r.startswith("*Validate summary*"))
    assert "1 failed" in summary and "stream broke" in summary
    assert not any(r.startswith(":white_check_mark: *Smoke*") for r in replies)  # still folded
    assert replies.index(failures[0]) < replies.index(summary)
    verdict = next(s.message for s in chat.messages if s.kind == "reply" and s.message.broadcast)
    assert "Failed at Coach" in verdict.text
    buttons = [e["action_id"] for b in verdict.blocks if b["type"] == "actions"
               for e in b["elements"]]
    assert buttons == [RETRY_ACTION, ROLLBACK_ACTION]


async def test_a_lone_check_of_a_concurrent_phase_still_gets_its_reply() -> None:
    """With one check to run (the others skipped by the runbook) there is no summary to fold
    into: the check answers on its own, as the engine posts no table for one check."""
    registry = {name: _step(name, RESULTS) for name in ("smoke", "redis")}
    runbook = parse_runbook("""
name: lone
phases:
  - name: validate
    concurrent: true
    steps: [{name: smoke}, {name: redis, enabled: false}]
""", registry)
    store = Store(":memory:")
    chat = ConsoleChat(out=io.StringIO(), redactor=Redactor())
    reporter = ChatReporter(chat, Redactor(), default_channel="C1", interval=0)
    engine = Engine(settings=make_settings(), store=store, reporter=reporter, runbook=runbook,
                    registry=registry, redactor=Redactor(), lock=SqliteLock(store))
    release = await engine.start(ref="main", user="U0ALICE", channel="C1")
    assert release.id is not None
    await engine.wait(release.id)
    replies = _replies(chat)
    assert len(replies) == 2 and replies[0].startswith(":white_check_mark: *Smoke* — rendered")
    assert (store.get_release(release.id) or release).step("smoke").state == StepState.OK
