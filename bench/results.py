"""Rows of measurements, the targets of issue 10, and `bench/RESULTS.md`.

A `Row` is one figure with the baseline it was measured against in the same run, their ratio, and
(when the issue's table names one) the target and whether this run met it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
Check = Callable[["Row"], bool]


@dataclass
class Row:
    """One measured figure and its yardstick."""

    section: str
    what: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_what: str = ""
    target: str = ""
    check: Check | None = field(default=None, repr=False)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        return None if self.check is None else bool(self.check(self))

    def markdown(self) -> str:
        """`| what | measured | baseline | ratio | target | met |`."""
        base = "—" if self.baseline is None else f"{number(self.baseline)} {self.unit} ({self.baseline_what})"
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}×"
        met = {None: "", True: "met", False: "**not met**"}[self.met]
        return (f"| {self.what} | {number(self.value)} {self.unit} | {base} | {ratio} | "
                f"{self.target} | {met} |")


def number(value: float) -> str:
    """A figure with sensible precision."""
    if value == int(value):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio_at_most(limit: float) -> Check:
    """Met when value / baseline ≤ limit."""
    return lambda row: row.ratio is not None and row.ratio <= limit


def value_at_most(limit: float) -> Check:
    """Met when the value itself ≤ limit."""
    return lambda row: row.value <= limit


def value_below(limit: float) -> Check:
    """Met when the value itself < limit."""
    return lambda row: row.value < limit


@dataclass
class Results:
    """Everything one `python -m bench` run measured, and notes on how."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    measured: str = field(default_factory=lambda: commit())  # the commit at the start of the run

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {row.section:<18} {row.what:<58} {number(row.value):>10} {row.unit:<6}"
              + (f" ratio {row.ratio:6.2f}x" if row.ratio is not None else "")
              + ("" if row.met is None else ("  met" if row.met else "  NOT MET")), flush=True)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def markdown(self) -> str:
        lines = ["# Benchmark results", "",
                 "Written by `make bench` (`python -m bench`); every ratio is against a baseline "
                 "measured in the same run. Targets are those of issue 10's table.", "",
                 *machine_lines(self.started, self.load_before, self.measured), ""]
        if self.notes:
            lines += ["## How this run measured", "", *[f"- {n}" for n in self.notes], ""]
        section = None
        for row in self.rows:
            if row.section != section:
                section = row.section
                lines += ["", f"## {section}", "",
                          "| what | measured | baseline | ratio | target | met |",
                          "| --- | --- | --- | --- | --- | --- |"]
            lines.append(row.markdown())
        checked = [r for r in self.rows if r.met is not None]
        missed = [r for r in checked if not r.met]
        lines += ["", "## Summary", "",
                  f"{len(checked) - len(missed)} of {len(checked)} targets met."]
        lines += [f"- not met: {r.section} — {r.what} ({r.target})" for r in missed]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        path.write_text(self.markdown(), encoding="utf-8")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def commit() -> str:
    """The commit measured, marked when the work tree had other changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!bench/RESULTS.md"],
                               cwd=REPO_ROOT, text=True, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" with uncommitted changes" if dirty.strip() else "")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def machine_lines(started: datetime, load_before: tuple[float, float, float],
                  measured: str) -> list[str]:
    load_after = os.getloadavg()
    return [
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- commit: {measured}",
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores, {_memory()}, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()}, slack-bolt {_version('slack-bolt')}, "
        f"aiohttp {_version('aiohttp')}, sqlite {__import__('sqlite3').sqlite_version}",
        f"- load average (1/5/15 min) at start {', '.join(f'{x:.1f}' for x in load_before)}; "
        f"at the end {', '.join(f'{x:.1f}' for x in load_after)}",
    ]
