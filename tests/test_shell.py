"""run_command: argument lists, exit codes, timeouts that keep earlier output, redaction."""

from __future__ import annotations

from bot.providers.shell import child_env, run_command
from bot.redact import Redactor


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
