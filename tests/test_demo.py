"""`release-bot demo` runs a whole release and its rollback against the sandbox."""

from __future__ import annotations

import io
import os

import pytest

from sandbox.demo import run_demo
from sandbox.services import find_tool

MISSING = [t for t in ("postgres", "supabase", "redis-server", "chromium", "playwright")
           if find_tool(t) is None]
if MISSING and os.environ.get("CI") != "true":
    pytest.skip(f"tools not installed: {', '.join(MISSING)} (scripts/install-tools.sh)",
                allow_module_level=True)


async def test_demo_runs_a_whole_release_and_rolls_it_back() -> None:
    out = io.StringIO()
    code = await run_demo(out=out)
    text = out.getvalue()
    assert code == 0, text[-4000:]
    assert "This demo runs against a SANDBOX on 127.0.0.1" in text
    assert "demo-user> /release start release/1.2.0" in text
    assert "demo-user> press apply" in text
    assert "Succeeded in" in text
    assert "Post-deploy watch, check 1" in text and "health ok; Supabase healthy" in text
    # The release log entry, as the guide's template
    assert "| Field | Notes |" in text and "| Migrations Applied | 20250301000000 reflection_mood |" in text
    for step in ("telemetry_fresh", "tests", "lint", "migrations_review", "migrations_push",
                 "secrets_present", "merge", "deploy", "build_logs", "smoke", "coach_stream",
                 "playwright", "health", "redis", "schema_current", "telemetry_staging",
                 "monitoring_links"):
        assert f"| {step} | ok |" in text, step
    # The rollback: announced with links, every action succeeded, the log holds the trigger
    assert "Rollback of release #1" in text and "issue/PP-142" in text
    assert "staging.pocketphilosopher.app now points at" in text
    assert "| Rollback Trigger (if used) | Coach answers time out on staging (by demo-user" in text
    assert "release/1.2.0 → staging · rolled_back" in text
    assert "| Action | Outcome | Summary |" in text  # log show lists each rollback action
    for action in ("deployment", "schema", "backup", "cache"):
        assert f"| {action} | ok |" in text, action
    assert "The knowledge base (knowledge-base.git" in text
    assert "Rollback of release #1 of release/1.2.0" in text and "Release #1 of release/1.2.0" in text
    assert "-staging-release-1.md:\n  # Release #1 · release/1.2.0 → staging · rolled_back" in text
    assert "Demo succeeded" in text
    # nothing secret was printed
    for secret in ("phx_demodemo", "sbp_demodemo", "ghp_demodemo", "vercel-demo-token"):
        assert secret not in text
