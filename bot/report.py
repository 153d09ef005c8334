"""Text and JSON views of the release log and of the settings, for the CLI.

`release_table()` prints a release as the guide's `| Field | Notes |` table, followed by its
steps; `release_json()` is the stable machine shape (`log --json`, `log show --json`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.config import Settings
from bot.redact import default_redactor
from bot.runbook.model import TEMPLATE_FIELDS, Release
from bot.runbook.step import StepDef
from bot.wording import duration, plural, tally


def release_json(release: Release, full: bool = False) -> dict[str, Any]:
    """The release as JSON; `full` adds `fields` and `steps`."""
    out: dict[str, Any] = {
        "id": release.id,
        "status": release.status.value,
        "environment": release.environment,
        "ref": release.ref,
        "git_sha": release.git_sha,
        "started_by": release.started_by,
        "started_at": release.started_at.isoformat(),
        "finished_at": release.finished_at.isoformat() if release.finished_at else None,
        "duration_seconds": release.duration_seconds,
        "skipped": release.counts().get("skipped", 0),
        "counts": release.counts(),
    }
    if full:
        out["fields"] = {name: release.fields.get(name, "") for name in TEMPLATE_FIELDS}
        out["fields"]["Git SHA"] = release.git_sha or release.fields.get("Git SHA", "")
        out["notes"] = release.notes
        out["steps"] = [
            {
                "name": r.name,
                "title": r.title,
                "phase": r.phase,
                "state": r.state.value,
                "outcome": r.result.outcome.value if r.result else None,
                "summary": r.result.summary if r.result else "",
                "details": r.result.details if r.result else "",
                "links": [link.model_dump() for link in r.result.links] if r.result else [],
                "started_at": r.started_at.isoformat() if r.started_at else None,
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            }
            for r in release.steps
        ]
        for key in ("rollback", "cancelled_by", "cancel_reason", "retries", "decisions"):
            if key in release.data:
                out[key] = release.data[key]
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def release_table(release: Release) -> str:
    """The guide's release log template, filled in, then the steps."""
    fields = dict(release.fields)
    fields["Git SHA"] = release.git_sha or fields.get("Git SHA", "")
    lines = [
        f"Release #{release.id} · {release.ref} → {release.environment} · {release.status.value}",
        f"Started by {release.started_by} at {release.started_at:%Y-%m-%d %H:%M:%S UTC}"
        + (f", took {duration(release.duration_seconds)}" if release.finished_at else ""),
        "",
        "| Field | Notes |",
        "| ----- | ----- |",
    ]
    lines += [f"| {name} | {_cell(fields.get(name, ''))} |" for name in TEMPLATE_FIELDS]
    lines += ["", f"Steps: {tally(release.steps)}", "",
              "| Step | Outcome | Summary |", "| ---- | ------- | ------- |"]
    for record in release.steps:
        summary = record.result.summary if record.result else ""
        lines.append(f"| {record.name} | {record.state.value} | {_cell(summary)} |")
    lines += _history_lines(release)
    rollback = release.data.get("rollback")
    if isinstance(rollback, dict):
        lines += ["", f"Rollback by {rollback.get('by')} at {rollback.get('at')}: "
                  f"{rollback.get('status', '')}", "", "| Action | Outcome | Summary |",
                  "| ------ | ------- | ------- |"]
        for action in rollback.get("actions") or []:
            lines.append(f"| {action.get('action')} | {action.get('outcome')} | "
                         f"{_cell(str(action.get('summary', '')))} |")
        for check in rollback.get("checks") or []:
            lines.append(f"| check: {check.get('step')} | {check.get('outcome')} | "
                         f"{_cell(str(check.get('summary', '')))} |")
    return "\n".join(lines)


def step_details(release: Release) -> str:
    """What each step found beyond its summary line: its details and links, as its thread reply
    showed them. The thread folds quiet steps (a concurrent phase's checks into one table), so
    this is where every step's whole result can still be read (`log show`)."""
    lines: list[str] = []
    for record in release.steps:
        result = record.result
        if result is None or not (result.details or result.links):
            continue
        lines += ["", f"## {record.title} ({record.name}): {record.state.value}", ""]
        if result.details:
            lines.append(result.details)
        lines += [f"- {link.label}: {link.url}" for link in result.links]
    return "\n".join(["", "Step results:", *lines]) if lines else ""


def _history_lines(release: Release) -> list[str]:
    """Who retried the release and when, and the reasons people gave at its gates."""
    out = []
    for retry in release.data.get("retries") or []:
        if isinstance(retry, dict):
            step = f" from {retry['from_step']}" if retry.get("from_step") else ""
            out.append(f"Retried by {retry.get('by')} at {retry.get('at')}{step}")
    for decision in release.data.get("decisions") or []:
        if isinstance(decision, dict) and decision.get("reason"):
            out.append(f"{decision.get('step')}: {decision.get('by')} chose "
                       f"{decision.get('action')} at {decision.get('at')}: {decision['reason']}")
    return ["", *out] if out else []


def releases_table(releases: list[Release]) -> str:
    """One line per release, newest first."""
    if not releases:
        return "No releases yet."
    rows = ["  #  status       ref                    sha       started by   started (UTC)     took"
            "     skipped"]
    for r in releases:
        skipped = r.counts().get("skipped", 0)
        rows.append(f"{r.id:>3}  {r.status.value:<12} {r.ref[:22]:<22} {(r.git_sha or '')[:8]:<8}  "
                    f"{r.started_by[:12]:<12} {r.started_at:%Y-%m-%d %H:%M}  "
                    f"{duration(r.duration_seconds) if r.finished_at else '…':<8} "
                    f"{skipped or ''}".rstrip())
    return "\n".join(rows)


def missing_log(settings: Settings) -> str | None:
    """Where the release log was looked for, when it is not there (reading never creates it)."""
    path = settings.DATABASE_PATH
    if path == ":memory:" or Path(path).exists():
        return None
    return (f"no release log at {Path(path).resolve()} (DATABASE_PATH={path}, looked from "
            f"{Path.cwd()}); run in the bot's folder or set DATABASE_PATH")


def config_report(settings: Settings, steps: dict[str, StepDef]) -> str:
    """The verdict first (how many steps can run, whether a start would be refused, what is wrong
    with the values), then which steps run, skip or are missing and why, then every setting
    (secrets masked, unset shown as such)."""
    from bot.config_check import check_values

    findings = check_values(settings)
    step_lines, runnable, total, refused = _step_lines(settings, steps,
                                                       {f.setting for f in findings if f.error})
    errors = sum(1 for f in findings if f.error)
    warnings = len(findings) - errors
    lines = [f"Verdict: {runnable} of {plural(total, 'step')} can run, "
             f"{total - runnable - refused} would be skipped"
             + (f", {refused} required cannot run" if refused else "") + "; "
             + (f"{plural(errors, 'setting')} {'is' if errors == 1 else 'are'} wrong"
                if errors else "no setting is wrong")
             + (f", {plural(warnings, 'warning')}" if warnings else "") + "."]
    if refused:
        lines.append(f"{plural(refused, 'required step')} cannot run: `/release start` would be "
                     "refused. `release-bot check-config --runbook` prints a runbook of what can "
                     "run now.")
    lines += [f.line() for f in findings]
    lines += ["", *step_lines, "", "Settings (environment and .env; secrets masked):"]
    for name in type(settings).model_fields:
        lines.append(f"  {name:<38} {_shown(getattr(settings, name))}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "******** (set)" if value.get_secret_value() else "(not set)"
    if value in (None, "", []):
        return "(not set)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _step_lines(settings: Settings, registry: dict[str, StepDef],
                wrong: set[str]) -> tuple[list[str], int, int, int]:
    """Which steps of the runbook run, skip or are missing (required but cannot run), and why;
    how many run, of how many, and how many required ones cannot. A step needing a setting in
    `wrong` cannot run either."""
    from bot.runbook.loader import load_runbook

    runbook = load_runbook(settings.RUNBOOK_PATH, registry)
    lines = [f"Steps ({settings.RUNBOOK_PATH or 'default runbook'}):"]
    runnable = refused = 0
    for phase, spec in runbook.enabled_steps():
        needs = [name for name in registry[spec.name].requires if name in wrong]
        reason = spec.skip or registry[spec.name].skip_reason(settings) or (
            f"wrong settings: {', '.join(needs)} (see above)" if needs else None)
        if reason and spec.always_required:
            refused += 1
            lines.append(f"  MISS  {phase.name:<9} {spec.name:<20} required, cannot run: {reason}")
        elif reason:
            when = spec.required_when
            note = f" (refused when a ref adds {when.prefix})" if when else ""
            lines.append(f"  skip  {phase.name:<9} {spec.name:<20} {reason}{note}")
        else:
            runnable += 1
            lines.append(f"  run   {phase.name:<9} {spec.name:<20} {registry[spec.name].describe}")
    disabled = [s.name for p in runbook.phases for s in p.steps if not s.enabled]
    if disabled:
        lines.append(f"  (disabled in the runbook: {', '.join(disabled)})")
    return lines, runnable, len(runbook.enabled_steps()), refused


def runbook_report(settings: Settings, registry: dict[str, StepDef]) -> str:
    """The current runbook cut down to what can run with these settings (YAML, commented)."""
    from bot.providers.refs import NoRefs, ref_source
    from bot.runbook.loader import load_runbook
    from bot.runbook.readiness import runbook_for_now

    runbook = load_runbook(settings.RUNBOOK_PATH, registry)
    refs_known = not isinstance(ref_source(settings, default_redactor()), NoRefs)
    return runbook_for_now(runbook, registry, settings,
                           settings.RUNBOOK_PATH or "the default runbook", refs_known=refs_known)
