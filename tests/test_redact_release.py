"""A weak staging password (`123456`) through the engine, the chat and the release log.

Once, its digits inside a migration version and a byte count turned a passing step's stored data
into `1[redacted]`, the release ended failed, `log` raised a JSON error and the gate's button
value no longer named its gate. Now the release succeeds, the gate is answered through the value
its button carries, and the log reads back with every number and id as it was.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.chat.blocks import GATE_ACTION_PREFIX
from bot.chat.console import ConsoleChat
from bot.chat.reporter import ChatReporter
from bot.locks import SqliteLock
from bot.redact import MASK, default_redactor
from bot.runbook.engine import Engine
from bot.runbook.loader import parse_runbook
from bot.runbook.model import Gate, GateAction, ReleaseStatus, StepResult
from bot.runbook.step import StepContext, StepDef
from bot.store import Store
from tests.helpers import make_settings

PASSWORD = "123456"
VERSION = "20250301123456"
MEASURED = {"bytes": 123456, "duration_ms": 1123456, "tested_sha": "ab123456cd" * 4,
            "pending": [VERSION], "at": "2026-12-06T03:02:36.123456+00:00"}
RUNBOOK = """
phases:
  - name: one
    steps: [{name: measure}, {name: approve}, {name: check}]
"""


async def measure(ctx: StepContext) -> StepResult:
    return StepResult.ok(f"logged in with password {PASSWORD}", data=dict(MEASURED),
                         fields={"Manual Tests": f"qa login ({PASSWORD}) works"})


async def approve(ctx: StepContext) -> StepResult:
    decision = await ctx.ask(Gate(key=f"apply-{VERSION}", prompt=f"Apply {VERSION}?",
                                  actions=[GateAction(id="apply", label="Apply 1 migration")]))
    return StepResult.ok(f"{decision.action} by {decision.user}", data={"applied": [VERSION]})


async def check(ctx: StepContext) -> StepResult:
    """A later step reads what an earlier one stored, as deploy and smoke do."""
    seen = ctx.release.data["steps"]["measure"]
    if seen != MEASURED:
        return StepResult.fail(f"measure's data changed: {seen}")
    return StepResult.ok("data intact")


async def _answer_gate(engine: Engine, chat: ConsoleChat, release_id: int) -> dict[str, Any]:
    """Press the gate's button: decide with exactly what its `value` carries."""
    for _ in range(2000):  # a hang guard, not a timing assumption
        for said in chat.messages:
            for block in said.message.blocks:
                for element in block.get("elements", []):
                    if str(element.get("action_id", "")).startswith(GATE_ACTION_PREFIX):
                        value = json.loads(element["value"])
                        action = element["action_id"].removeprefix(GATE_ACTION_PREFIX)
                        result = await engine.decide(value["release"], value["step"],
                                                     value["gate"], action, "U0APPROVER")
                        assert result.accepted, result.message
                        return dict(value)
        await __import__("asyncio").sleep(0.01)
    raise AssertionError("no gate button was posted")


async def test_weak_password_leaves_data_ids_and_buttons_intact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    redactor = default_redactor()
    monkeypatch.setattr(redactor, "_secrets", list(redactor._secrets))  # restored afterwards
    settings = make_settings(STAGING_TEST_USER_PASSWORD=PASSWORD)
    redactor.add(settings.secret_values())
    registry = {name: StepDef(name=name, title=name.title(), run=fn,
                              describe=name, timeout=30)
                for name, fn in (("measure", measure), ("approve", approve), ("check", check))}
    database = tmp_path / "log.db"
    store = Store(database)
    out = io.StringIO()
    chat = ConsoleChat(out=out, redactor=redactor)
    reporter = ChatReporter(chat, redactor, default_channel="C1", interval=0)
    engine = Engine(settings=settings, store=store, reporter=reporter,
                    runbook=parse_runbook(RUNBOOK, registry), registry=registry, redactor=redactor,
                    lock=SqliteLock(store))

    release = await engine.start(ref="main", user="U1", channel="C1")
    assert release.id is not None
    pressed = await _answer_gate(engine, chat, release.id)
    done = await engine.wait(release.id)
    await reporter.flush()

    assert pressed["gate"] == f"apply-{VERSION}"
    assert done.status == ReleaseStatus.SUCCEEDED, [(r.name, r.result) for r in done.steps]
    stored = Store(database).get_release(release.id)
    assert stored is not None and stored.status == ReleaseStatus.SUCCEEDED
    assert stored.data["steps"]["measure"] == MEASURED
    measured = stored.step("measure").result
    assert measured is not None and measured.summary == f"logged in with password {MASK}"
    assert stored.fields["Manual Tests"] == f"qa login ({MASK}) works"
    assert f" {PASSWORD} " not in out.getvalue() and VERSION in out.getvalue()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_PATH", str(database))
    monkeypatch.setenv("STAGING_TEST_USER_PASSWORD", PASSWORD)
    capsys.readouterr()
    assert cli.main(["log", "show", str(release.id), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "succeeded"
    assert [s["summary"] for s in shown["steps"]] == \
        [f"logged in with password {MASK}", "apply by U0APPROVER", "data intact"]
    assert cli.main(["log"]) == 0
    listed = capsys.readouterr().out
    assert f"#{release.id}" in listed or str(release.id) in listed
