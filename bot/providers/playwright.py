"""Reading Playwright's JSON report (`npx playwright test --reporter=json`).

Pure functions over the report: `parse_output(stdout)` finds the JSON document in what the
runner printed (None when there is none, e.g. the config failed to load), and `parse_report`
turns the report dict into a `PlaywrightReport` with the `stats` counters, one `TestOutcome`
per test (suite titles joined with an angle quote, as Playwright prints them) and the first lines of
every failed result's error message with ANSI colour codes stripped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from bot.providers.shell import strip_ansi

__all__ = ["PlaywrightReport", "TestOutcome", "first_lines", "parse_output", "parse_report",
           "strip_ansi"]

ERROR_LINES = 4


def first_lines(message: str, count: int = ERROR_LINES) -> list[str]:
    """The first `count` non-blank lines of an error message, ANSI codes stripped."""
    lines = [line.rstrip() for line in strip_ansi(message).splitlines()]
    return [line for line in lines if line.strip()][:count]


@dataclass
class TestOutcome:
    """One test of the run: its title path, project, Playwright status and error lines."""

    title: str
    project: str
    status: str  # "expected" | "unexpected" | "flaky" | "skipped"
    errors: list[str] = field(default_factory=list)
    duration_ms: int = 0

    @property
    def failed(self) -> bool:
        return self.status == "unexpected"

    @property
    def passed(self) -> bool:
        return self.status in ("expected", "flaky")


@dataclass
class PlaywrightReport:
    """The counters of `stats`, every test, and errors raised outside any test."""

    expected: int = 0
    unexpected: int = 0
    skipped: int = 0
    flaky: int = 0
    tests: list[TestOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when something ran, nothing failed and no global error was reported."""
        return self.unexpected == 0 and not self.errors and (self.expected + self.flaky) > 0

    @property
    def passed(self) -> list[TestOutcome]:
        return [t for t in self.tests if t.passed]

    @property
    def failed(self) -> list[TestOutcome]:
        return [t for t in self.tests if t.failed]


def parse_output(stdout: str) -> dict[str, Any] | None:
    """The JSON report printed on stdout, or None when the output holds no report."""
    text = stdout.strip()
    candidates = [text]
    # Something (a config's console.log, a warning) may print before the report.
    match = re.search(r"^\{\s*$", stdout, re.MULTILINE)
    if match:
        candidates.append(stdout[match.start():].strip())
    for candidate in candidates:
        try:
            report = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(report, dict) and ("stats" in report or "suites" in report):
            return report
    return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _result_errors(result: dict[str, Any]) -> list[str]:
    messages: list[str] = []
    error = result.get("error")
    if isinstance(error, dict) and error.get("message"):
        messages.append(str(error["message"]))
    else:
        for item in result.get("errors") or []:
            if isinstance(item, dict) and item.get("message"):
                messages.append(str(item["message"]))
    lines: list[str] = []
    for message in messages:
        lines += first_lines(message)
    return lines


def _walk(suite: dict[str, Any], titles: list[str], out: list[TestOutcome]) -> None:
    title = str(suite.get("title") or "")
    # The top-level suite of a file is titled with the file path; keep it for context.
    path = [*titles, title] if title else titles
    for spec in suite.get("specs") or []:
        spec_title = " › ".join([*path, str(spec.get("title") or "")])
        for test in spec.get("tests") or []:
            results = [r for r in test.get("results") or [] if isinstance(r, dict)]
            status = str(test.get("status") or "")
            if not status:
                status = "expected" if spec.get("ok") else "unexpected"
            errors: list[str] = []
            if status == "unexpected":
                for result in results:
                    if result.get("status") not in ("passed", "skipped"):
                        errors += _result_errors(result)
            out.append(
                TestOutcome(
                    title=spec_title,
                    project=str(test.get("projectName") or test.get("projectId") or ""),
                    status=status,
                    errors=errors,
                    duration_ms=sum(_int(r.get("duration")) for r in results),
                )
            )
    for child in suite.get("suites") or []:
        if isinstance(child, dict):
            _walk(child, path, out)


def parse_report(report: dict[str, Any]) -> PlaywrightReport:
    """A `PlaywrightReport` from the JSON reporter's document."""
    stats = report.get("stats") if isinstance(report.get("stats"), dict) else {}
    assert isinstance(stats, dict)
    tests: list[TestOutcome] = []
    for suite in report.get("suites") or []:
        if isinstance(suite, dict):
            _walk(suite, [], tests)
    errors: list[str] = []
    for error in report.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            errors += first_lines(str(error["message"]))
    return PlaywrightReport(
        expected=_int(stats.get("expected")),
        unexpected=_int(stats.get("unexpected")),
        skipped=_int(stats.get("skipped")),
        flaky=_int(stats.get("flaky")),
        tests=tests,
        errors=errors,
    )
