"""run_command: argument lists, exit codes, timeouts that keep earlier output, redaction."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.providers.shell import child_env, elapsed_progress, run_command, strip_ansi
from bot.redact import Redactor
from bot.wording import elapsed


async def test_exit_code_and_output() -> None:
    result = await run_command(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok and result.tail() == "out\nerr"


async def test_timeout_kills_the_group_and_keeps_what_was_printed() -> None:
    result = await run_command(["sh", "-c", "echo started; sleep 30 & wait"], timeout=0.5)
    assert result.timed_out and not result.ok
    assert result.stdout == "started\n"


async def test_output_is_redacted() -> None:
    result = await run_command(["echo", "token xoxb-123456789012-abcdefghij pw hunter2hunter2"],
                               redact=Redactor(["hunter2hunter2"]))
    assert "xoxb-1234" not in result.stdout and "hunter2hunter2" not in result.stdout


def test_child_env_drops_the_bots_own_secrets(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    for name in ("SUPABASE_DB_URL", "SUPABASE_DB_PASSWORD", "STAGING_TEST_USER_PASSWORD",
                 "STAGING_REDIS_URL", "REDIS_URL", "VERCEL_DEPLOY_HOOK_URL"):
        monkeypatch.setenv(name, "secret-value")
    monkeypatch.setenv("PATH_LIKE_SETTING", "kept")
    env = child_env({"EXTRA": "1"})
    assert "secret-value" not in env.values() and "SLACK_BOT_TOKEN" not in env
    assert "GITHUB_TOKEN" not in env and env["EXTRA"] == "1" and env["PATH_LIKE_SETTING"] == "kept"


def test_child_env_turns_colour_off(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # picocolors (next lint) treats any FORCE_COLOR, "0" included, as "colour on".
    monkeypatch.setenv("FORCE_COLOR", "3")
    env = child_env()
    assert env["NO_COLOR"] == "1" and "FORCE_COLOR" not in env
    assert child_env({"FORCE_COLOR": "1"})["FORCE_COLOR"] == "1"  # a caller may still ask


async def test_ansi_codes_are_stripped_from_what_children_print() -> None:
    script = r"printf '\033[31mError\033[39m: \033[1mboom\033[22m\n'; printf '\033[33mwarn\033[0m\n' >&2"
    result = await run_command(["sh", "-c", script])
    assert result.stdout == "Error: boom\n" and result.stderr == "warn\n"


def test_strip_ansi_keeps_plain_text_and_drops_hyperlinks() -> None:
    link = "\x1b]8;;https://example.test\x07docs\x1b]8;;\x07"
    assert strip_ansi(f"\x1b[2K\x1b[1A{link} ok") == "docs ok"
    assert strip_ansi("169:69  Error: Unexpected any.") == "169:69  Error: Unexpected any."


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (42.9, "42s"), (65, "1m 05s"),
                                               (3725, "1h 02m")])
def test_elapsed_counts_whole_seconds_so_far(seconds: float, text: str) -> None:
    assert elapsed(seconds) == text


async def test_elapsed_progress_reports_while_the_work_runs() -> None:
    seen: list[str] = []
    ticked = asyncio.Event()

    async def report(text: str) -> None:
        seen.append(text)
        if "elapsed" in text:
            ticked.set()

    async with elapsed_progress(report, "npm ci", every=0.01):
        await asyncio.wait_for(ticked.wait(), 60)  # the work ends only once a tick was seen
    count = len(seen)
    await asyncio.sleep(0.05)
    assert seen[0] == "npm ci"
    assert re.fullmatch(r"npm ci — \d+s elapsed", seen[1])
    assert len(seen) == count  # no report after the block ended


async def test_a_failing_progress_report_does_not_stop_the_work() -> None:
    async def broken(text: str) -> None:
        raise RuntimeError("chat is down")

    async with elapsed_progress(broken, "supabase db push", every=0.01):
        result = await run_command(["sh", "-c", "echo done"])
    assert result.ok and result.stdout == "done\n"
