"""The release-bot CLI: log, log show, check-config, and clear one-line errors."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import DEMO_NEEDS_CHECKOUT
from bot.runbook.model import Link, Release, ReleaseStatus, StepRecord, StepResult, StepState
from bot.store import Store

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VERCEL_", "GITHUB_"))}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env=base, cwd=cwd or REPO, timeout=60, check=False)


def seeded(tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    store = Store(path)
    for ref, status in (("release/1.1.0", ReleaseStatus.SUCCEEDED), ("release/1.2.0", ReleaseStatus.FAILED)):
        release = Release(environment="staging", ref=ref, started_by="U1", status=status,
                          steps=[StepRecord(name="health", title="Health", phase="validate",
                                            state=StepState.OK,
                                            result=StepResult.ok(
                                                "Healthy", details="```\nsupabase  ok  14 ms\n```",
                                                links=[Link(label="/api/health",
                                                            url="https://staging.example/api/health")]))])
        release.fields["Migrations Applied"] = "20250301000000_reflection_mood"
        release.git_sha = "abc123"
        store.create_release(release)
        store.save(release)
    return path


def test_log_json_newest_first(tmp_path: Path) -> None:
    out = cli("log", "--json", env={"DATABASE_PATH": str(seeded(tmp_path))})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [r["id"] for r in data] == [2, 1]
    assert {"id", "status", "environment", "ref", "git_sha", "started_by", "started_at",
            "finished_at"} <= set(data[0])
    assert data[0]["status"] == "failed"


def test_log_show_json_and_table(tmp_path: Path) -> None:
    env = {"DATABASE_PATH": str(seeded(tmp_path))}
    data = json.loads(cli("log", "show", "1", "--json", env=env).stdout)
    assert data["fields"]["Migrations Applied"] == "20250301000000_reflection_mood"
    assert "Rollback Trigger (if used)" in data["fields"]
    assert data["fields"]["Git SHA"] == "abc123"
    assert data["steps"] == [{"name": "health", "title": "Health", "phase": "validate", "state": "ok",
                              "outcome": "ok", "summary": "Healthy",
                              "details": "```\nsupabase  ok  14 ms\n```",
                              "links": [{"label": "/api/health",
                                         "url": "https://staging.example/api/health"}],
                              "started_at": None, "finished_at": None}]
    table = cli("log", "show", "1", env=env).stdout
    assert "| Field | Notes |" in table and "| Migrations Applied | 20250301000000_reflection_mood |" in table
    # every step's whole result, as its thread reply showed it (the thread may have folded it)
    assert table.rstrip().endswith("## Health (health): ok\n\n```\nsupabase  ok  14 ms\n```\n"
                                   "- /api/health: https://staging.example/api/health")


def test_log_show_unknown_release(tmp_path: Path) -> None:
    out = cli("log", "show", "99", env={"DATABASE_PATH": str(seeded(tmp_path))})
    assert out.returncode == 1 and "release #99 is not in" in out.stderr


def test_check_config_masks_secrets_and_lists_steps(tmp_path: Path) -> None:
    out = cli("check-config", env={"DATABASE_PATH": str(tmp_path / "x.db"),
                                   "VERCEL_TOKEN": "vercel-secret-value-123",
                                   "STAGING_URL": "https://staging.example.test"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "vercel-secret-value-123" not in out.stdout
    assert "VERCEL_TOKEN" in out.stdout and "******** (set)" in out.stdout
    assert "run   validate  smoke" in out.stdout
    assert ("MISS  prepare   tests                required, cannot run: missing settings: "
            "APP_WORKSPACE") in out.stdout
    assert "skip  validate  redis                missing settings: STAGING_REDIS_URL" in out.stdout
    assert "steps can run" in out.stdout and "`/release start` would be refused" in out.stdout


def test_check_config_exits_1_when_a_value_is_wrong(tmp_path: Path) -> None:
    out = cli("check-config", env={"DATABASE_PATH": str(tmp_path / "x.db"),
                                   "SLACK_BOT_TOKEN": "xapp-1-A0-123-abcdefabcdef"}, cwd=tmp_path)
    assert out.returncode == 1, out.stdout
    assert out.stdout.startswith("Verdict:") and "SLACK_BOT_TOKEN" in out.stdout
    assert "xapp-1-A0-123-abcdefabcdef" not in out.stdout


def test_check_config_runbook_prints_a_runbook_for_runbook_path(tmp_path: Path) -> None:
    from bot.runbook.loader import load_runbook
    from bot.steps.registry import STEPS

    env = {"DATABASE_PATH": str(tmp_path / "x.db"), "STAGING_URL": "https://staging.example.test"}
    out = cli("check-config", "--runbook", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "- name: tests   left out (required there): set APP_WORKSPACE" in out.stdout
    path = tmp_path / "runbook.yml"
    path.write_text(out.stdout)
    runbook = load_runbook(path, STEPS)
    assert [s.name for _, s in runbook.enabled_steps()] == ["smoke", "health", "monitoring_links"]
    assert all(s.always_required for _, s in runbook.enabled_steps()[:2])


def test_missing_setting_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    out = cli("serve", env={"DATABASE_PATH": str(tmp_path / "x.db")}, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "release-bot: SLACK_BOT_TOKEN is not set: Bot token (xoxb-...)."


def test_invalid_setting_is_named(tmp_path: Path) -> None:
    out = cli("log", env={"DATABASE_PATH": str(tmp_path / "x.db"), "DEPLOY_TIMEOUT_SECONDS": "soon"},
              cwd=tmp_path)
    assert out.returncode == 2
    assert "setting DEPLOY_TIMEOUT_SECONDS is invalid" in out.stderr and "Traceback" not in out.stderr


def test_bad_runbook_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "rb.yml"
    bad.write_text("phases: [{name: p, steps: [{name: nope}]}]")
    out = cli("check-config", env={"RUNBOOK_PATH": str(bad), "DATABASE_PATH": str(tmp_path / "x.db")},
              cwd=tmp_path)
    assert out.returncode == 2 and "unknown step" in out.stderr and "Traceback" not in out.stderr


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STAGING_URL=https://from-dotenv.example.test\n")
    out = cli("check-config", env={"DATABASE_PATH": str(tmp_path / "x.db")}, cwd=tmp_path)
    assert "https://from-dotenv.example.test" in out.stdout


def test_socket_mode_needs_the_app_token(tmp_path: Path) -> None:
    out = cli("socket", env={"DATABASE_PATH": str(tmp_path / "x.db"), "SLACK_BOT_TOKEN": "xoxb-1-2"},
              cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("release-bot: SLACK_APP_TOKEN is not set: App-level token")


def test_socket_mode_app_builds_without_a_signing_secret() -> None:
    from bot.app import build_bolt_app
    from tests.helpers import make_settings

    app, runtime = build_bolt_app(make_settings(SLACK_BOT_TOKEN="xoxb-1-2", DATABASE_PATH=":memory:"),
                                  socket_mode=True)
    assert runtime.service.rollback is not None  # every front end gets rollback
    assert app is not None


def test_unusable_database_path_is_one_line(tmp_path: Path) -> None:
    out = cli("log", env={"DATABASE_PATH": str(tmp_path)}, cwd=tmp_path)  # a directory
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("release-bot: cannot use the release log") and \
        "DATABASE_PATH" in out.stderr


def test_log_outside_the_project_creates_no_database_and_says_where_it_looked(
        tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for path in ("release-log.db", str(tmp_path / "sub" / "log.db"), str(blocker / "log.db")):
        for args in (("log",), ("log", "show", "1"), ("log", "--json")):
            out = cli(*args, env={"DATABASE_PATH": path}, cwd=tmp_path)
            assert out.returncode == 1 and out.stdout == "", out.stderr
            where = (tmp_path / path).resolve() if not path.startswith("/") else Path(path)
            assert out.stderr.startswith(f"release-bot: no release log at {where} ")
            assert f"looked from {tmp_path}" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_broken_pipe_is_not_a_release_log_problem(tmp_path: Path) -> None:
    """`release-bot log | head -1`: the reader closing the pipe is not an error to report."""
    path = seeded(tmp_path)
    store = Store(path)
    for n in range(3, 500):  # more than a pipe's buffer (64 KiB) of JSON
        store.create_release(Release(environment="staging", ref=f"release/1.{n}.0", started_by="U1"))
    env = {**os.environ, "DATABASE_PATH": str(path)}
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m bot.cli log "
                           "--limit 1000 --json | head -c 1"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60, check=False)
    assert done.stdout == "["
    assert done.stderr == "" and done.returncode in (0, 141)


def test_busy_port_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from bot import cli as cli_module

    monkeypatch.chdir(tmp_path)
    for name, value in {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_SIGNING_SECRET": "s" * 32,
                        "DATABASE_PATH": str(tmp_path / "log.db")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli_module, "_token_problem", lambda *a, **k: None, raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli_module.main(["serve", "--host", "127.0.0.1", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2
    assert any(line.startswith(f"release-bot: cannot listen on 127.0.0.1:{port}: the port is in "
                               "use") for line in err.splitlines()), err
    assert "DATABASE_PATH" not in err and "release log" not in err


def test_log_lines_are_redacted_and_bounded() -> None:
    """The log formatter masks secrets and cuts a huge message to a bounded line."""
    import logging

    from bot.cli import RedactingFormatter
    from bot.redact import LOG_LIMIT, Redactor

    formatter = RedactingFormatter(Redactor(["hunter22"]))
    record = logging.LogRecord("bot", logging.ERROR, __file__, 1,
                               "push failed: %s", ("password hunter22 " + "x" * 100_000,), None)
    line = formatter.format(record)
    assert "hunter22" not in line and "[redacted]" in line
    assert len(line) < LOG_LIMIT + 200 and "more characters not shown" in line


def test_logged_tracebacks_are_redacted_and_keep_their_last_line() -> None:
    import logging
    import sys as _sys

    from bot.cli import RedactingFormatter
    from bot.redact import LOG_LIMIT, Redactor

    formatter = RedactingFormatter(Redactor(["hunter22"]))
    try:
        raise RuntimeError("x" * 50_000 + " push failed with password hunter22")
    except RuntimeError:
        record = logging.LogRecord("bot", logging.ERROR, __file__, 1, "step crashed", (),
                                   _sys.exc_info())
    line = formatter.format(record)
    assert "hunter22" not in line and line.endswith("push failed with password [redacted]")
    assert "step crashed" in line and len(line) < 2 * LOG_LIMIT


def test_log_loads_only_what_it_uses(tmp_path: Path) -> None:
    """`release-bot log` starts without the rollback, Redis, httpx or the Slack Web API client."""
    script = ("import sys\nfrom bot.cli import main\ncode = main(['log', '--json'])\n"
              "heavy = [m for m in ('bot.rollback', 'bot.rollback_cli', 'redis', 'httpx', "
              "'slack_sdk.web', 'slack_bolt', 'aiohttp') if m in sys.modules]\n"
              "print('HEAVY', heavy, code)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VERCEL_"))}
    env["DATABASE_PATH"] = str(seeded(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=60, check=False)
    assert "HEAVY [] 0" in out.stdout, out.stdout + out.stderr


def test_demo_without_the_checkout_is_one_line(tmp_path: Path) -> None:
    """The bot installed alone (no `sandbox` beside it): `demo` says it needs the repository."""
    script = ("import sys\nfrom pathlib import Path\n"
              f"sys.path[:] = [p for p in sys.path if Path(p or '.').resolve() != Path({str(REPO)!r})]\n"
              "from bot.cli import main\nsys.exit(main(['demo']))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VERCEL_", "GITHUB_"))}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.splitlines() == [DEMO_NEEDS_CHECKOUT], out.stderr
    assert "needs a checkout of the repository" in out.stderr and "Traceback" not in out.stderr


def test_only_the_demo_command_imports_the_sandbox() -> None:
    """`bot/` and `handlers/` ship in the wheel without `sandbox/`; only `demo` reaches for it, lazily."""
    importers = []
    for path in sorted([*(REPO / "bot").rglob("*.py"), *(REPO / "handlers").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "sandbox" or n.startswith("sandbox.") for n in names):
                importers.append((path.relative_to(REPO).as_posix(), node.col_offset > 0))
    assert importers == [("bot/cli.py", True)]
