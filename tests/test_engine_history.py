"""The release log keeps history (retries, idle time, notes, Git SHA, `status` of a missing
release) and two bot processes sharing one log agree on who drives a release."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.chat.blocks import Message
from bot.commands import Command
from bot.locks import SqliteLock
from bot.report import release_json, release_table
from bot.runbook.model import Gate, GateAction, ReleaseStatus, StepResult, StepState
from bot.runbook.step import StepContext
from bot.service import ReleaseService
from bot.store import Store
from sandbox.workspace import Workspace
from tests.test_console import session
from tests.test_engine import GATED, SEQUENTIAL, fail, gated_step, make_engine, ok

HANG_GUARD = 30.0


def flaky() -> Any:
    """A step that fails the first time and passes after."""
    calls: list[int] = []

    async def run(ctx: StepContext) -> StepResult:
        calls.append(1)
        return StepResult.fail("flaky") if len(calls) == 1 else StepResult.ok("fine now")
    return run


def _age(store: Store, release_id: int, by: timedelta) -> None:
    """Move a stored release's clock back, as if it had stopped `by` ago."""
    stored = store.get_release(release_id)
    assert stored is not None and stored.finished_at is not None
    stored.started_at -= by
    stored.finished_at -= by
    store.save_release(stored)


# --- 9.7 the log keeps history -----------------------------------------------------------------
async def test_a_retry_is_recorded_with_who_and_when_and_its_idle_time_is_not_counted() -> None:
    engine, _, store = make_engine({"a": ok(), "b": flaky(), "c": ok()}, SEQUENTIAL)
    release = await engine.start(ref="main", user="U1", channel=None)
    first = await engine.wait(release.id or 0)
    assert first.status == ReleaseStatus.FAILED
    _age(store, release.id or 0, timedelta(hours=3))  # it sat failed for three hours
    before = datetime.now(first.started_at.tzinfo)
    await engine.retry(release.id or 0, "U2")
    done = await engine.wait(release.id or 0)
    assert done.status == ReleaseStatus.SUCCEEDED
    [retry] = done.data["retries"]
    assert retry["by"] == "U2" and retry["from_step"] == "b"
    assert datetime.fromisoformat(retry["at"]) >= before
    assert retry["idle_seconds"] >= 3 * 3600
    assert done.duration_seconds is not None and done.duration_seconds < 600
    shown = release_table(done)
    assert "Retried by U2 at" in shown and "from b" in shown
    assert release_json(done, full=True)["retries"][0]["by"] == "U2"


async def test_a_second_retry_adds_to_the_first() -> None:
    engine, _, _ = make_engine({"a": ok(), "b": fail(), "c": ok()}, SEQUENTIAL)
    release = await engine.start(ref="main", user="U1", channel=None)
    await engine.wait(release.id or 0)
    for user in ("U2", "U3"):
        await engine.retry(release.id or 0, user)
        await engine.wait(release.id or 0)
    stored = engine.store.get_release(release.id or 0)
    assert stored is not None
    assert [r["by"] for r in stored.data["retries"]] == ["U2", "U3"]


async def test_notes_reach_feature_highlights_without_a_merge_step() -> None:
    async def highlights(ctx: StepContext) -> StepResult:
        # A merge-like step listing PRs and, again, the notes: no line twice.
        return StepResult.ok("merged", fields={
            "Feature Highlights": "• Coach cites sources (#12)\n• new onboarding"})

    engine, _, _ = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL)
    release = await engine.start(ref="main", user="U1", channel=None,
                                 notes="new onboarding\n- faster coach")
    done = await engine.wait(release.id or 0)
    assert done.fields["Feature Highlights"] == "• new onboarding\n• faster coach"

    engine2, _, _ = make_engine({"a": highlights, "b": ok(), "c": ok()}, SEQUENTIAL)
    release2 = await engine2.start(ref="main", user="U1", channel=None, notes="new onboarding")
    done2 = await engine2.wait(release2.id or 0)
    assert done2.fields["Feature Highlights"].split("\n") == [
        "• new onboarding", "• Coach cites sources (#12)"]


async def test_git_sha_is_filled_from_the_ref_when_no_step_records_it(workspace: Workspace) -> None:
    engine, _, _ = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL,
                               APP_WORKSPACE=str(workspace.app))
    release = await engine.start(ref="release/1.2.0", user="U1", channel=None)
    done = await engine.wait(release.id or 0)
    assert done.git_sha == workspace.sha("release/1.2.0")
    assert release_json(done, full=True)["fields"]["Git SHA"] == done.git_sha
    # The workspace was not moved: ls-remote reads the origin without a fetch or checkout.
    assert workspace.git("rev-parse", "HEAD", cwd=workspace.app) == workspace.sha("main")


async def test_a_full_sha_ref_is_its_own_git_sha() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    engine, _, _ = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL)
    done = await engine.wait((await engine.start(ref=sha, user="U1", channel=None)).id or 0)
    assert done.git_sha == sha


async def test_status_of_a_release_that_does_not_exist_says_so() -> None:
    engine, _, store = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL)
    await engine.wait((await engine.start(ref="main", user="U1", channel=None)).id or 0)
    service = ReleaseService(engine.settings, engine, store)
    replies: list[Message] = []

    async def reply(message: Message) -> None:
        replies.append(message)

    await service.run(Command("status", release_id=99), user="U1", channel="C1", reply=reply)
    assert "There is no release #99." in replies[-1].text
    await service.run(Command("status"), user="U1", channel="C1", reply=reply)
    assert "#1" in replies[-1].text


# --- 9.8 two processes, one truth --------------------------------------------------------------
async def test_a_second_process_never_re_asks_a_gate_another_live_process_waits_on(
        tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log: list[str] = []
    first, reporter1, _ = make_engine({"gated": gated_step(log), "after": ok()}, GATED,
                                      store=Store(path))
    first.gate_poll_seconds = 0.01
    release = await first.start(ref="m", user="U", channel=None)
    await asyncio.wait_for(reporter1.gates.get(), HANG_GUARD)

    second, reporter2, store2 = make_engine({"gated": gated_step(log), "after": ok()}, GATED,
                                            store=Store(path))
    await second.recover()  # a console started next to the server
    assert reporter2.names("gate_opened") == [] and not second.running(release.id or 0)
    waiting = store2.get_release(release.id or 0)
    assert waiting is not None and waiting.status == ReleaseStatus.WAITING
    assert waiting.step("gated").state == StepState.WAITING

    # The press lands in the second process: it is stored, and the first one carries on.
    answered = await second.decide(release.id or 0, "gated", "apply-2", "apply", "U9")
    assert answered.accepted and not second.running(release.id or 0)
    done = await asyncio.wait_for(first.wait(release.id or 0), HANG_GUARD)
    assert done.status == ReleaseStatus.SUCCEEDED and log == ["apply by U9"]
    assert reporter2.names("started") == []
    assert store2.lock_row("staging") is None  # freed at the end


async def test_a_second_process_leaves_a_release_running_elsewhere_alone(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    started, release_it = asyncio.Event(), asyncio.Event()

    async def slow(ctx: StepContext) -> StepResult:
        started.set()
        await release_it.wait()
        return StepResult.ok("done")

    first, _, _ = make_engine({"a": slow, "b": ok(), "c": ok()}, SEQUENTIAL, store=Store(path))
    release = await first.start(ref="m", user="U", channel=None)
    await asyncio.wait_for(started.wait(), HANG_GUARD)
    second, _, store2 = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL,
                                    store=Store(path))
    await second.recover()
    running = store2.get_release(release.id or 0)
    assert running is not None and running.status == ReleaseStatus.RUNNING  # not "interrupted"
    release_it.set()
    done = await asyncio.wait_for(first.wait(release.id or 0), HANG_GUARD)
    assert done.status == ReleaseStatus.SUCCEEDED


async def test_recovering_a_release_takes_its_lock_again(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log: list[str] = []
    first, reporter1, store1 = make_engine({"gated": gated_step(log), "after": ok()}, GATED,
                                           store=Store(path))
    release = await first.start(ref="m", user="U", channel=None)
    await asyncio.wait_for(reporter1.gates.get(), HANG_GUARD)
    held = store1.lock_row("staging")
    assert held is not None and held["owner"] == first.lock.owner  # type: ignore[attr-defined]
    assert held["owner"] != str(release.id)
    await first.shutdown()  # a restart: the lock is handed back

    second, reporter2, store2 = make_engine({"gated": gated_step(log), "after": ok()}, GATED,
                                            store=Store(path))
    await second.recover()
    await asyncio.wait_for(reporter2.gates.get(), HANG_GUARD)  # asked again by the new process
    taken = store2.lock_row("staging")
    assert taken is not None and taken["owner"] == second.lock.owner  # type: ignore[attr-defined]
    assert taken["release_id"] == release.id
    assert (await second.decide(release.id or 0, "gated", "apply-2", "skip", "U9")).accepted
    done = await asyncio.wait_for(second.wait(release.id or 0), HANG_GUARD)
    assert done.status == ReleaseStatus.SUCCEEDED and log == ["skip by U9"]


async def test_a_release_cancelled_by_another_process_frees_the_gate_and_the_lock(
        tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    first, reporter1, _ = make_engine({"gated": gated_step([]), "after": ok()}, GATED,
                                      store=Store(path))
    first.gate_poll_seconds = 0.01
    release = await first.start(ref="m", user="U", channel=None)
    await asyncio.wait_for(reporter1.gates.get(), HANG_GUARD)
    second, _, store2 = make_engine({"gated": gated_step([]), "after": ok()}, GATED,
                                    store=Store(path))
    await second.cancel(release.id or 0, "U5", "wrong branch")
    await asyncio.wait_for(first.wait(release.id or 0), HANG_GUARD)
    assert not first.running(release.id or 0)
    stored = store2.get_release(release.id or 0)
    assert stored is not None and stored.status == ReleaseStatus.CANCELLED
    assert stored.step("gated").state == StepState.CANCELLED
    assert store2.lock_row("staging") is None


# --- 9.9 choices people make are honoured ------------------------------------------------------
def review_gate() -> Any:
    """A migration-review-like gate: apply or skip."""
    async def run(ctx: StepContext) -> StepResult:
        decision = await ctx.ask(Gate(key="apply-1", prompt="Apply 1 migration?", actions=[
            GateAction(id="apply", label="Apply"),
            GateAction(id="skip", label="Skip", asks_reason=True)]))
        data = {"decision": decision.action, "decided_by": decision.user}
        if decision.action == "skip":
            return StepResult.warn(f"skipped by {decision.user}: {decision.reason}", data=data)
        return StepResult.ok("approved", data=data)
    return run


async def schema_check(ctx: StepContext) -> StepResult:
    review = ctx.release.data["steps"]["review"]
    if review["decision"] == "skip":
        return StepResult.fail("1 migration not applied", data={"reopens": ["review"]})
    return StepResult.ok("schema current")


REVIEWED = """
phases:
  - name: prepare
    steps: [{name: review}]
  - name: validate
    steps: [{name: schema}]
"""


async def test_retry_of_a_step_failed_by_a_gate_choice_asks_the_gate_again() -> None:
    engine, reporter, _store = make_engine({"review": review_gate(), "schema": schema_check},
                                          REVIEWED)
    release = await engine.start(ref="m", user="U", channel=None)
    await asyncio.wait_for(reporter.gates.get(), HANG_GUARD)
    await engine.decide(release.id or 0, "review", "apply-1", "skip", "U1", "hotfix first")
    failed = await engine.wait(release.id or 0)
    assert failed.status == ReleaseStatus.FAILED

    await engine.retry(release.id or 0, "U2")
    await asyncio.wait_for(reporter.gates.get(), HANG_GUARD)  # asked again
    assert (await engine.decide(release.id or 0, "review", "apply-1", "apply", "U1")).accepted
    done = await asyncio.wait_for(engine.wait(release.id or 0), HANG_GUARD)
    assert done.status == ReleaseStatus.SUCCEEDED
    assert [(d["action"], d["by"], d["reason"]) for d in done.data["decisions"]] == [
        ("skip", "U1", "hotfix first"), ("apply", "U1", "")]
    assert done.data["retries"][0]["from_step"] == "review"
    assert "hotfix first" in release_table(done)


async def test_retry_of_a_failed_gate_step_asks_again() -> None:
    answers: list[str] = []

    async def gate_then_fail(ctx: StepContext) -> StepResult:
        decision = await ctx.ask(Gate(key="go", prompt="Go?", actions=[GateAction(id="go",
                                                                                  label="Go")]))
        answers.append(decision.user)
        return StepResult.fail("broke after the answer") if len(answers) == 1 else StepResult.ok("ok")

    engine, reporter, _ = make_engine({"gated": gate_then_fail, "after": ok()}, GATED)
    release = await engine.start(ref="m", user="U", channel=None)
    await asyncio.wait_for(reporter.gates.get(), HANG_GUARD)
    await engine.decide(release.id or 0, "gated", "go", "go", "U1")
    assert (await engine.wait(release.id or 0)).status == ReleaseStatus.FAILED
    await engine.retry(release.id or 0, "U2")
    await asyncio.wait_for(reporter.gates.get(), HANG_GUARD)
    await engine.decide(release.id or 0, "gated", "go", "go", "U3")
    done = await asyncio.wait_for(engine.wait(release.id or 0), HANG_GUARD)
    assert done.status == ReleaseStatus.SUCCEEDED and answers == ["U1", "U3"]


async def test_console_press_keeps_the_words_after_the_choice_as_the_reason() -> None:
    console, _ = session()
    engine, reporter, store = make_engine({"review": review_gate(), "schema": schema_check},
                                          REVIEWED)
    console.runtime.engine, console.runtime.store = engine, store
    release = await engine.start(ref="m", user="U", channel=None)
    await asyncio.wait_for(reporter.gates.get(), HANG_GUARD)
    await console.say(f"press skip {release.id} the table is already on staging")
    await engine.wait(release.id or 0)
    decision = store.get_decision(release.id or 0, "review", "apply-1")
    assert decision is not None and decision.action == "skip" and decision.user == "U1"
    assert decision.reason == "the table is already on staging"


async def test_the_engine_renews_its_lease_while_a_release_waits_and_stops_after() -> None:
    engine, reporter, store = make_engine({"gated": gated_step([]), "after": ok()}, GATED)
    lock = SqliteLock(store, lease_seconds=0.03)
    renewed = asyncio.Event()
    plain_renew = lock.renew

    async def renew() -> None:
        await plain_renew()
        renewed.set()

    lock.renew = renew  # type: ignore[method-assign]
    engine.lock = lock
    release = await engine.start(ref="m", user="U", channel=None)
    await asyncio.wait_for(reporter.gates.get(), HANG_GUARD)
    await asyncio.wait_for(renewed.wait(), HANG_GUARD)
    await engine.decide(release.id or 0, "gated", "apply-2", "apply", "U1")
    await asyncio.wait_for(engine.wait(release.id or 0), HANG_GUARD)
    await asyncio.sleep(0)
    assert engine._keepalive is None and store.lock_row("staging") is None


async def test_an_answer_given_while_the_bot_was_down_is_in_the_history(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    first, reporter1, _ = make_engine({"gated": gated_step([]), "after": ok()}, GATED,
                                      store=Store(path))
    release = await first.start(ref="m", user="U", channel=None)
    await asyncio.wait_for(reporter1.gates.get(), HANG_GUARD)
    await first.shutdown()
    second, _, _ = make_engine({"gated": gated_step([]), "after": ok()}, GATED, store=Store(path))
    assert (await second.decide(release.id or 0, "gated", "apply-2", "skip", "U9", "later")).accepted
    done = await asyncio.wait_for(second.wait(release.id or 0), HANG_GUARD)
    assert done.status == ReleaseStatus.SUCCEEDED
    assert [(d["action"], d["by"], d["reason"]) for d in done.data["decisions"]] == [
        ("skip", "U9", "later")]
