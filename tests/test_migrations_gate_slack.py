"""The migration approval gate end to end: Slack emulator, the real Bolt app over HTTP with signed
requests, a real PostgreSQL as staging and the real Supabase CLI.

The runbook holds just `migrations_review` and `migrations_push`; RELEASE_APPROVERS names one
user. The gate's buttons appear in the release thread, a press by anyone else is refused
ephemerally, the approver's press moves the release on (the schema really changes), a second
press does nothing, and a bot restart while waiting keeps the question open.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.chat.blocks import GATE_ACTION_PREFIX, GATE_REASON_BLOCK, GATE_REASON_INPUT
from bot.providers.supabase_cli import SupabaseCli
from bot.runbook.model import Release, ReleaseStatus, StepState
from sandbox.services import PostgresServer
from sandbox.workspace import Workspace, create_workspace
from tests.helpers import migration_history
from tests.slack_e2e import SlackHarness, blocks_of, buttons

RUNBOOK = """
name: migrations-gate
phases:
  - name: prepare
    steps:
      - name: migrations_review
      - name: migrations_push
"""
BRANCH = "release/1.2.0"
MAIN = ["20250101000000", "20250102000000", "20250103000000"]
V4, V5 = "20250201000000", "20250202000000"
APPROVER, MALLORY = "U0BOSS", "U0MALLORY"
GATE_KEY = f"apply-{V4}-{V5}"


async def release_workspace(tmp_path: Path, db_url: str, supabase_cli: Path) -> Workspace:
    """A workspace whose release branch brings two migrations (V4, V5); the database at `db_url`
    has main's three, pushed with the real CLI."""
    ws = create_workspace(tmp_path / "ws")
    await SupabaseCli(binary=supabase_cli, timeout=120).push(ws.app, db_url=db_url)
    ws.add_migration(BRANCH, "add_journal", "create table public.journal (id int primary key);\n",
                     version=V4)
    ws.add_migration(BRANCH, "add_tags", "create table public.tags (id int primary key);\n",
                     version=V5)
    return ws


@pytest.fixture
async def staging(tmp_path: Path, postgres_server: PostgresServer, postgres_db: str,
                  supabase_cli: Path) -> tuple[Workspace, PostgresServer, str, str]:
    """A workspace whose release branch brings two migrations; staging has main's three."""
    ws = await release_workspace(tmp_path, postgres_db, supabase_cli)
    return ws, postgres_server, urlsplit(postgres_db).path.lstrip("/"), postgres_db


def bot_settings(tmp_path: Path, ws: Workspace, url: str, supabase_cli: Path) -> dict[str, Any]:
    runbook = tmp_path / "runbook.yml"
    runbook.write_text(RUNBOOK)
    return {"RUNBOOK_PATH": str(runbook), "APP_WORKSPACE": str(ws.app), "SUPABASE_DB_URL": url,
            "SUPABASE_CLI": str(supabase_cli), "RELEASE_APPROVERS": APPROVER,
            "COMMAND_TIMEOUT_SECONDS": 120}




def tables(server: PostgresServer, database: str) -> list[str]:
    rows = server.query("select tablename from pg_tables where schemaname = 'public' order by 1",
                        database=database)
    return [row[0] for row in rows]




def gate_posts(slack: SlackHarness, release_id: int) -> list[dict[str, Any]]:
    release = slack.runtime.store.get_release(release_id)
    if release is None or not release.thread_ts:
        return []
    return [m for m in slack.thread(release.thread_ts)
            if any(b["action_id"].startswith(GATE_ACTION_PREFIX) for b in buttons(m))]


async def wait_for_gate(slack: SlackHarness, release_id: int, count: int = 1) -> dict[str, Any]:
    """The `count`-th gate message of the release, once posted, with the release waiting."""
    def ready() -> Any:
        release = slack.runtime.store.get_release(release_id)
        posts = gate_posts(slack, release_id)
        waiting = release is not None and release.status == ReleaseStatus.WAITING
        return posts[count - 1] if waiting and len(posts) >= count else None

    found: dict[str, Any] = await slack.wait_for(ready, 120, "the migration gate")
    return found


def stored(slack: SlackHarness, release_id: int) -> Release:
    release = slack.runtime.store.get_release(release_id)
    assert release is not None
    return release


async def test_gate_buttons_refusal_approval_and_second_press(
        tmp_path: Path, staging: tuple[Workspace, PostgresServer, str, str],
        supabase_cli: Path) -> None:
    ws, server, database, url = staging
    async with SlackHarness(tmp_path, **bot_settings(tmp_path, ws, url, supabase_cli)) as slack:
        await slack.command(f"start {BRANCH}", user=APPROVER)
        gate = await wait_for_gate(slack, 1)

        # The buttons: action ids `gate:<choice>`, value naming release, step and gate.
        found = buttons(gate)
        assert [b["action_id"] for b in found] == ["gate:apply", "gate:skip", "gate:cancel"]
        assert [b["text"]["text"] for b in found] == [
            "Apply 2 migrations", "Skip migrations", "Cancel release"]
        value = found[0]["value"]
        assert json.loads(value) == {"release": 1, "step": "migrations_review", "gate": GATE_KEY}
        assert "add_journal" in gate["text"] and "create table public.journal" in gate["text"]
        ts = stored(slack, 1).thread_ts

        # Someone not in RELEASE_APPROVERS: refused ephemerally, nothing changes.
        for action in ("gate:apply", "gate:cancel"):
            response, key = await slack.press(action, value, user=MALLORY, message_ts=ts or "")
            assert response.status_code == 200
            refusal = await slack.wait_response(key)
            assert refusal["response_type"] == "ephemeral"
            assert "Only release approvers" in refusal["text"] and f"<@{APPROVER}>" in refusal["text"]
        release = stored(slack, 1)
        assert release.status == ReleaseStatus.WAITING
        assert release.step("migrations_review").state == StepState.WAITING
        assert slack.runtime.store.get_decision(1, "migrations_review", GATE_KEY) is None
        assert migration_history(server, database) == MAIN

        # The approver: the release moves on and staging's schema really changes.
        response, key = await slack.press("gate:apply", value, user=APPROVER, message_ts=ts or "")
        assert response.status_code == 200
        done = await slack.finished(1, timeout=180)
        assert done.status == ReleaseStatus.SUCCEEDED, [s.result for s in done.steps]
        assert slack.responses(key) == []  # an accepted press gets no ephemeral complaint
        assert done.step("migrations_review").result is not None
        assert done.step("migrations_review").result.summary.startswith(
            f"2 migrations approved by <@{APPROVER}> at ")
        assert done.fields["Migrations Applied"] == f"{V4} add_journal, {V5} add_tags"
        assert migration_history(server, database) == [*MAIN, V4, V5]
        assert {"journal", "tags"} <= set(tables(server, database))
        decision = slack.runtime.store.get_decision(1, "migrations_review", GATE_KEY)
        assert decision is not None and decision.user == APPROVER and decision.action == "apply"
        # The question message itself is updated: its buttons are gone, the choice recorded.
        said = [str(m.get("text", "")) for m in slack.state.calls_to("chat.update")]
        assert any(f"<@{APPROVER}> chose *Apply 2 migrations*" in text for text in said), said

        # A second press (even a different choice): ephemeral "already answered", no change.
        response, key = await slack.press("gate:skip", value, user=APPROVER, message_ts=ts or "")
        again = await slack.wait_response(key)
        assert again["response_type"] == "ephemeral" and "already answered" in again["text"]
        after = stored(slack, 1)
        assert after.status == ReleaseStatus.SUCCEEDED
        assert after.fields["Migrations Applied"] == f"{V4} add_journal, {V5} add_tags"
        same = slack.runtime.store.get_decision(1, "migrations_review", GATE_KEY)
        assert same is not None and same.action == "apply" and same.at == decision.at


async def test_skip_says_why_in_the_gates_box_and_the_log_keeps_it_as_typed(
        tmp_path: Path, staging: tuple[Workspace, PostgresServer, str, str],
        supabase_cli: Path) -> None:
    """The gate offers a "why" box for the choices that ask one (Skip); what was typed comes with
    the press, is kept in the release log exactly, and is shown escaped in the thread."""
    ws, server, database, url = staging
    async with SlackHarness(tmp_path, **bot_settings(tmp_path, ws, url, supabase_cli)) as slack:
        await slack.command(f"start {BRANCH}", user=APPROVER)
        gate = await wait_for_gate(slack, 1)
        box = next(b for b in blocks_of(gate) if b.get("type") == "input")
        assert box["block_id"] == GATE_REASON_BLOCK and box["optional"] is True
        assert box["element"]["action_id"] == GATE_REASON_INPUT
        assert "Skip migrations" in box["label"]["text"]

        why = "<!channel> hotfix first & the schema lands tomorrow"
        state = {GATE_REASON_BLOCK: {GATE_REASON_INPUT: {"type": "plain_text_input", "value": why}}}
        value = buttons(gate)[0]["value"]
        ts = stored(slack, 1).thread_ts or ""
        response, key = await slack.press("gate:skip", value, user=APPROVER, message_ts=ts,
                                          state=state)
        assert response.status_code == 200
        await slack.finished(1, timeout=180)
        assert slack.responses(key) == []  # accepted: no ephemeral complaint
        decision = slack.runtime.store.get_decision(1, "migrations_review", GATE_KEY)
        assert decision is not None and decision.action == "skip" and decision.reason == why
        assert migration_history(server, database) == MAIN  # skipped: nothing applied
        said = [str(m.get("text", "")) for m in slack.state.calls_to("chat.update")]
        answered = [t for t in said if f"<@{APPROVER}> chose *Skip migrations*" in t]
        assert answered and "&lt;!channel&gt; hotfix first &amp; the schema" in answered[-1]
        assert not [t for t in said if "<!channel>" in t]


async def test_the_wait_survives_a_restart_of_the_bot(
        tmp_path: Path, staging: tuple[Workspace, PostgresServer, str, str],
        supabase_cli: Path) -> None:
    ws, server, database, url = staging
    settings = bot_settings(tmp_path, ws, url, supabase_cli)
    async with SlackHarness(tmp_path, **settings) as slack:
        await slack.command(f"start {BRANCH}", user=APPROVER)
        first = await wait_for_gate(slack, 1)
        value = buttons(first)[0]["value"]

        await slack.stop_bot()
        assert stored(slack, 1).status == ReleaseStatus.WAITING  # stopping changed nothing
        await slack.start_bot(**settings)  # startup runs engine.recover(): the step asks again

        again = await wait_for_gate(slack, 1, count=2)
        assert buttons(again)[0]["value"] == value  # the same question, same gate key
        assert migration_history(server, database) == MAIN

        response, key = await slack.press("gate:apply", value, user=APPROVER)
        assert response.status_code == 200
        done = await slack.finished(1, timeout=180)
        assert done.status == ReleaseStatus.SUCCEEDED, [s.result for s in done.steps]
        assert slack.responses(key) == []
        assert migration_history(server, database) == [*MAIN, V4, V5]
        assert done.step("migrations_push").result is not None
        assert done.step("migrations_push").result.data["applied"] == [V4, V5]
