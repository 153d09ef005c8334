"""Reading what a JavaScript test runner printed: its own totals and each failing test.

Counts come from the runner's summary, never from counting lines:

- Jest:      `Tests:       1 failed, 27 passed, 28 total`
- Vitest:    `      Tests  1 failed | 27 passed (28)`
- node:test: `# pass 5` / `# fail 1` (TAP, the default on a pipe) or the same with an info sign (spec)

Failing tests are named as the runner names them, each with the first line of its error:
Jest's bulleted `Suite > test name` (joined with an angle quote) followed by the error
(`TypeError: query.eq is not a function`),
Vitest's ` FAIL  file > suite > name`, node:test's `not ok 3 - name` (its YAML `error:`) or
`✖ name (2ms)`. A node:test parent that failed only because a subtest did is not counted twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from bot.providers.shell import strip_ansi

ERROR_LINE_LIMIT = 300
_JEST_TOTALS = re.compile(r"^\s*Tests:\s+(.*\btotal)\s*$", re.MULTILINE)
_JEST_SUITES = re.compile(r"^\s*Test Suites:\s+(\d+) failed", re.MULTILINE)
_VITEST_FILES = re.compile(r"^\s*Test Files\s+(\d+) failed", re.MULTILINE)
_VITEST_TOTALS = re.compile(r"^\s*Tests\s{2,}(.*\(\d+\))\s*$", re.MULTILINE)
_NODE_TOTAL = re.compile(r"^(?:#|ℹ) (tests|pass|fail|skipped|todo|cancelled) (\d+)\s*$", re.MULTILINE)
_JEST_FAILURE = re.compile(r"^\s*● (.+?)\s*$")
_JEST_FAIL_FILE = re.compile(r"^\s*FAIL\s+(.+?)\s*$")
_VITEST_FAILURE = re.compile(r"^\s*FAIL\s+(\S.* > .+?)\s*$")
_TAP_FAILURE = re.compile(r"^(\s*)not ok \d+ - (.+?)(?:\s+#\s*(?:SKIP|TODO).*)?\s*$")
_SPEC_FAILURE = re.compile(r"^(\s*)✖ (.+?)(?: \(\d+(?:\.\d+)?m?s\))?\s*$")
_NOT_A_TEST = {"Console"}
_SPELLED_ANSI = re.compile(r"\\x1[bB]\[[0-9;?]*[ -/]*[@-~]")
_SPEC_MARKS = ("✖", "✔", "▶", "ℹ", "﹣")


@dataclass(frozen=True)
class FailingTest:
    """A failing test as the runner names it, and the first line of its error."""

    name: str
    error: str = ""


@dataclass
class TestRun:
    """The runner's own totals (None where it printed none) and the failing tests."""

    runner: str = ""
    passed: int | None = None
    failed: int | None = None
    skipped: int | None = None
    total: int | None = None
    suites_failed: int = 0
    failures: list[FailingTest] = field(default_factory=list)

    @property
    def has_totals(self) -> bool:
        return self.failed is not None or self.passed is not None

    def counts(self) -> str:
        """`1 failed, 27 passed, 28 total` from the runner's summary ('' when there was none)."""
        parts = [f"{self.failed} failed"] if self.failed else []
        if self.suites_failed and not self.failed:
            noun = "suite" if self.suites_failed == 1 else "suites"
            parts.append(f"{self.suites_failed} test {noun} failed to run")
        if self.passed is not None:
            parts.append(f"{self.passed} passed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.total is not None:
            parts.append(f"{self.total} total")
        return ", ".join(parts)


def _numbers(text: str) -> dict[str, int]:
    return {word: int(n) for n, word in re.findall(r"(\d+) (failed|passed|skipped|todo|total)", text)}


def _totals(text: str) -> TestRun:
    jest = _JEST_TOTALS.findall(text)
    if jest:
        found = _numbers(jest[-1])
        suites = _JEST_SUITES.findall(text)
        return TestRun("jest", found.get("passed", 0), found.get("failed", 0),
                       found.get("skipped", 0) + found.get("todo", 0), found.get("total"),
                       int(suites[-1]) if suites else 0)
    vitest = _VITEST_TOTALS.findall(text)
    if vitest:
        found = _numbers(vitest[-1])
        total = re.search(r"\((\d+)\)", vitest[-1])
        files = _VITEST_FILES.findall(text)
        return TestRun("vitest", found.get("passed", 0), found.get("failed", 0),
                       found.get("skipped", 0) + found.get("todo", 0),
                       int(total.group(1)) if total else None, int(files[-1]) if files else 0)
    node = dict(_NODE_TOTAL.findall(text))
    if "pass" in node or "fail" in node:
        skipped = int(node.get("skipped", 0)) + int(node.get("todo", 0))
        return TestRun("node:test", int(node.get("pass", 0)),
                       int(node.get("fail", 0)) + int(node.get("cancelled", 0)), skipped,
                       int(node["tests"]) if "tests" in node else None)
    return TestRun()


def _clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= ERROR_LINE_LIMIT else line[: ERROR_LINE_LIMIT - 1] + "…"


def _next_text(lines: list[str], start: int) -> str:
    """The first non-blank line after `start`."""
    return next((_clip(line) for line in lines[start + 1:] if line.strip()), "")


def _yaml_scalar(value: str) -> str:
    """A quoted YAML scalar as text, colour codes left out.

    node:test writes an escape character in a message as the four characters `\\x1B`, even
    inside single quotes, so colour codes spelled that way are removed as well.
    """
    try:
        loaded = yaml.safe_load(value)
    except yaml.YAMLError:
        loaded = value.strip("'\"")
    return _SPELLED_ANSI.sub("", strip_ansi(str(loaded)))


def _tap_block(lines: list[str], start: int) -> tuple[str, bool]:
    """(first error line, failed only because of a subtest) from a TAP failure's YAML block."""
    error, kind, subtests = "", "", False
    for index in range(start + 1, len(lines)):
        line = lines[index]
        stripped = line.strip()
        if stripped == "..." or _TAP_FAILURE.match(line) or stripped.startswith(("ok ", "# Subtest")):
            break
        key, _, value = stripped.partition(":")
        value = value.strip()
        if key == "failureType" and "subtestsFailed" in value:
            subtests = True
        elif key == "name" and not kind:
            kind = value.strip("'\"")
        elif key == "error" and not error:
            block = value in ("|-", "|", ">-", ">", "")
            error = _next_text(lines, index) if block else _clip(_yaml_scalar(value))
    if kind and error and not error.startswith(kind):
        error = f"{kind}: {error}"
    return error, subtests


def _jest_failures(lines: list[str]) -> list[FailingTest]:
    found: list[FailingTest] = []
    current_file = ""
    for index, line in enumerate(lines):
        file_match = _JEST_FAIL_FILE.match(line)
        if file_match:
            current_file = file_match.group(1)
            continue
        match = _JEST_FAILURE.match(line)
        if not match or match.group(1) in _NOT_A_TEST:
            continue
        name = match.group(1)
        if name == "Test suite failed to run" and current_file:
            name = f"{current_file} › {name}"
        found.append(FailingTest(name, _next_text(lines, index)))
    return found


def _node_failures(lines: list[str]) -> list[FailingTest]:
    found: list[FailingTest] = []
    for index, line in enumerate(lines):
        tap = _TAP_FAILURE.match(line)
        if tap:
            error, only_subtests = _tap_block(lines, index)
            if not only_subtests:
                found.append(FailingTest(tap.group(2), error))
            continue
        spec = _SPEC_FAILURE.match(line)
        if spec and not spec.group(2).startswith("failing tests"):
            error = _next_text(lines, index)
            if not error.startswith(_SPEC_MARKS):  # a suite: its tests are listed on their own
                found.append(FailingTest(spec.group(2), error))
    return found


def _vitest_failures(lines: list[str]) -> list[FailingTest]:
    return [FailingTest(m.group(1), _next_text(lines, i))
            for i, line in enumerate(lines) if (m := _VITEST_FAILURE.match(line))]


def _unique(failures: list[FailingTest]) -> list[FailingTest]:
    """The first report of each name (runners repeat failures in a closing summary)."""
    seen: dict[str, FailingTest] = {}
    for failure in failures:
        if failure.name not in seen or (failure.error and not seen[failure.name].error):
            seen[failure.name] = failure
    return list(seen.values())


def parse_test_output(output: str) -> TestRun:
    """The runner's totals and failing tests from Jest, Vitest or node:test output."""
    text = strip_ansi(output)
    run = _totals(text)
    lines = text.splitlines()
    if run.runner == "vitest":
        failures = _vitest_failures(lines)
    elif run.runner == "jest":
        failures = _jest_failures(lines)
    elif run.runner == "node:test":
        failures = _node_failures(lines)
    else:
        failures = _jest_failures(lines) or _vitest_failures(lines) or _node_failures(lines)
    run.failures = _unique(failures)
    return run
