"""Reading what ESLint printed: its `stylish` format, `next lint`'s spelling of it, and `unix` lines.

Plain `eslint` (stylish) prints a file heading and indented problems, then a summary:

    /repo/src/a.ts
      3:1  error    Unexpected var, use let or const instead  no-var
      9:4  warning  'x' is defined but never used             no-unused-vars

    ✖ 2 problems (1 error, 1 warning)

`next lint` prints the same problems unindented, with `Error:`/`Warning:` and a `./` path:

    ./app/page.tsx
    169:69  Error: Unexpected any. Specify a different type.  @typescript-eslint/no-explicit-any

The `unix`-like form `path:line:col  error  message  rule` (one problem a line) is read too.
`parse_lint_output` returns every problem with its file, line, column, severity, message and rule.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from bot.providers.shell import strip_ansi

_SEVERITY = r"(?P<severity>error|warning|Error:|Warning:)"
# A stylish problem line: `  169:69  error  message  rule` or next lint's `169:69  Error: message  rule`.
_STYLISH = re.compile(rf"^\s*(?P<line>\d+):(?P<column>\d+)\s+{_SEVERITY}\s+(?P<rest>.+)$")
# One problem a line with the file in front: `src/a.js:3:1  error  message  rule`.
_INLINE = re.compile(
    rf"^\s*(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<column>\d+):?\s+{_SEVERITY}\s+(?P<rest>.+)$"
)
# ESLint's `unix` formatter: `/repo/src/a.js:3:1: Unexpected var [Error/no-var]`.
_UNIX = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<column>\d+): (?P<message>.+?) "
    r"\[(?P<severity>Error|Warning)(?:/(?P<rule>[^\]]+))?\]$"
)
_RULE = re.compile(r"^@?[\w.-]+(?:/[\w.-]+)*$")
_SUMMARY = re.compile(r"✖ (\d+) problems? \((\d+) errors?, (\d+) warnings?\)")


@dataclass(frozen=True)
class LintProblem:
    """One problem ESLint reported."""

    file: str
    line: int
    column: int
    severity: str  # "error" | "warning"
    message: str
    rule: str = ""

    @property
    def where(self) -> str:
        """`file:line:column` (`line:column` when the file heading was not seen)."""
        place = f"{self.line}:{self.column}"
        return f"{self.file}:{place}" if self.file else place

    def as_text(self) -> str:
        """One readable line: where, severity, rule, message."""
        rule = f"  {self.rule}" if self.rule else ""
        return f"{self.where}  {self.severity}{rule}  {self.message}"

    def as_data(self) -> dict[str, str | int]:
        return asdict(self)


@dataclass
class LintReport:
    """The problems found, and ESLint's own totals when it printed them."""

    problems: list[LintProblem]
    summary_errors: int | None = None
    summary_warnings: int | None = None

    @property
    def errors(self) -> int:
        """How many errors: ESLint's summary when printed, else the problems counted."""
        if self.summary_errors is not None:
            return self.summary_errors
        return sum(1 for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> int:
        """How many warnings: ESLint's summary when printed, else the problems counted."""
        if self.summary_warnings is not None:
            return self.summary_warnings
        return sum(1 for p in self.problems if p.severity == "warning")

    @property
    def files(self) -> list[str]:
        """The files with problems, in the order ESLint listed them."""
        return list(dict.fromkeys(p.file for p in self.problems if p.file))


def _severity(word: str) -> str:
    return "error" if word.lower().startswith("error") else "warning"


def _message_and_rule(rest: str) -> tuple[str, str]:
    """Split `message  rule` (ESLint pads the columns with two or more spaces)."""
    parts = re.split(r"\s{2,}", rest.strip())
    if len(parts) > 1 and _RULE.match(parts[-1]):
        return "  ".join(parts[:-1]).strip(), parts[-1]
    return rest.strip(), ""


def _problem(match: re.Match[str], file: str) -> LintProblem:
    groups = match.groupdict()
    if "rest" in groups:
        message, rule = _message_and_rule(groups["rest"])
    else:
        message, rule = groups["message"].strip(), groups.get("rule") or ""
    return LintProblem(file=groups.get("file") or file, line=int(groups["line"]),
                       column=int(groups["column"]), severity=_severity(groups["severity"]),
                       message=message, rule=rule)


def parse_lint_output(output: str) -> LintReport:
    """Every problem in ESLint or `next lint` output, each under the file heading it followed."""
    problems: list[LintProblem] = []
    heading = ""
    errors = warnings = None
    for raw in strip_ansi(output).splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        summary = _SUMMARY.search(line)
        if summary:
            errors, warnings = int(summary.group(2)), int(summary.group(3))
            continue
        match = _INLINE.match(line) or _UNIX.match(line) or _STYLISH.match(line)
        if match:
            problems.append(_problem(match, heading))
        elif not line[0].isspace():
            heading = line.strip()  # the latest unindented line heads the problems below it
    return LintReport(problems, errors, warnings)
