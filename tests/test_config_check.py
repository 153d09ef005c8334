"""`check-config` checks values, not only presence, and says its verdict first."""

from __future__ import annotations

from pathlib import Path

from bot.config_check import check_values
from bot.report import config_report
from bot.steps.registry import STEPS
from tests.helpers import make_settings


def _found(**values: object) -> dict[str, tuple[bool, str]]:
    return {f.setting: (f.error, f.message) for f in check_values(make_settings(**values))}


def test_wrong_values_are_errors_naming_the_setting(tmp_path: Path) -> None:
    found = _found(SLACK_BOT_TOKEN="xapp-1-A0123-4567-abcdef", SLACK_APP_TOKEN="xoxb-1-2-abc",
                   STAGING_URL="staging.example.test", SUPABASE_DB_URL="db.example.test:5432/x",
                   APP_WORKSPACE=str(tmp_path / "missing"),
                   RELEASE_APPROVERS="alice,U0BOB", RELEASE_OPERATORS="U0ALICE,S0GROUP")
    assert found["SLACK_BOT_TOKEN"][0] and "SLACK_APP_TOKEN" in found["SLACK_BOT_TOKEN"][1]
    assert found["SLACK_APP_TOKEN"][0]
    assert found["STAGING_URL"] == (True, "has no scheme: 'staging.example.test' "
                                          "(write https://staging.example.test)")
    assert found["SUPABASE_DB_URL"][0] and "db.example.test" not in found["SUPABASE_DB_URL"][1]
    assert found["APP_WORKSPACE"][0] and "does not exist" in found["APP_WORKSPACE"][1]
    assert found["RELEASE_APPROVERS"][0] and "alice" in found["RELEASE_APPROVERS"][1]
    assert "U0BOB" not in found["RELEASE_APPROVERS"][1]
    assert "RELEASE_OPERATORS" not in found


def test_good_values_pass_and_short_secrets_warn(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    found = _found(SLACK_BOT_TOKEN="xoxb-123456789012-abcdefghijkl", STAGING_URL="https://x.test",
                   APP_WORKSPACE=str(tmp_path), REDIS_URL="redis://localhost:6379/0",
                   STAGING_TEST_USER_PASSWORD="123456", RELEASE_CHANNEL="C0RELEASES")
    assert found == {"STAGING_TEST_USER_PASSWORD": (False, found["STAGING_TEST_USER_PASSWORD"][1])}
    assert "shorter than 8 characters" in found["STAGING_TEST_USER_PASSWORD"][1]
    assert "123456" not in found["STAGING_TEST_USER_PASSWORD"][1]


def test_report_says_the_verdict_first_and_the_settings_last(tmp_path: Path) -> None:
    report = config_report(make_settings(STAGING_URL="staging.example.test",
                                         APP_WORKSPACE=str(tmp_path / "gone"),
                                         DATABASE_PATH=str(tmp_path / "log.db")), STEPS)
    lines = report.splitlines()
    runs = sum(1 for line in lines if line.startswith("  run   "))
    missing = sum(1 for line in lines if line.startswith("  MISS  "))
    assert missing > 0
    assert lines[0].startswith(f"Verdict: {runs} of 17 steps can run, {17 - runs - missing} would "
                               f"be skipped, {missing} required cannot run; 2 settings are wrong")
    assert "`/release start` would be refused" in lines[1]
    assert lines[2].startswith("  error  ") and lines[3].startswith("  error  ")
    assert ("MISS  validate  smoke                required, cannot run: wrong settings: "
            "STAGING_URL") in report
    assert report.index("Steps (default runbook):") < report.index("Settings (environment")
    assert lines[-1].startswith("  ")  # the settings table ends the report


def test_report_with_nothing_wrong(tmp_path: Path) -> None:
    report = config_report(make_settings(STAGING_URL="https://x.test",
                                         DATABASE_PATH=str(tmp_path / "log.db")), STEPS)
    runs = sum(1 for line in report.splitlines() if line.startswith("  run   "))
    missing = sum(1 for line in report.splitlines() if line.startswith("  MISS  "))
    assert "  run   validate  smoke" in report
    assert report.splitlines()[0] == (f"Verdict: {runs} of 17 steps can run, "
                                      f"{17 - runs - missing} would be skipped, {missing} required "
                                      "cannot run; no setting is wrong.")
