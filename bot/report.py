"""Text and JSON views of the release log and of the settings, for the CLI.

`release_table()` prints a release as the guide's `| Field | Notes |` table, followed by its
steps; `release_json()` is the stable machine shape (`log --json`, `log show --json`).
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from bot.chat.blocks import duration, tally
from bot.config import Settings
from bot.redact import default_redactor
from bot.runbook.model import TEMPLATE_FIELDS, Release


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
                "started_at": r.started_at.isoformat() if r.started_at else None,
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            }
            for r in release.steps
        ]
        for key in ("rollback", "cancelled_by", "cancel_reason"):
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


def config_report(settings: Settings) -> str:
    """Every setting (secrets masked, unset shown as such), then which steps can run."""
    from bot.runbook.loader import load_runbook
    from bot.runbook.registry import load_steps

    lines = ["Settings (environment and .env; secrets masked):"]
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "******** (set)" if value.get_secret_value() else "(not set)"
        elif value in (None, "", []):
            shown = "(not set)"
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value)
        else:
            shown = str(value)
        lines.append(f"  {name:<38} {shown}")
        del field
    registry = load_steps()
    runbook = load_runbook(settings.RUNBOOK_PATH, registry)
    source = settings.RUNBOOK_PATH or "default runbook"
    lines += ["", f"Steps ({source}):"]
    runnable = refused = 0
    for phase, spec in runbook.enabled_steps():
        reason = spec.skip or registry[spec.name].skip_reason(settings)
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
    total = len(runbook.enabled_steps())
    lines.append(f"{runnable} of {total} steps can run; {total - runnable - refused} would be skipped.")
    if refused:
        lines.append(f"{refused} required step(s) cannot run: `/release start` would be refused. "
                     "`release-bot check-config --runbook` prints a runbook of what can run now.")
    return "\n".join(lines)


def runbook_report(settings: Settings) -> str:
    """The current runbook cut down to what can run with these settings (YAML, commented)."""
    from bot.runbook.loader import load_runbook
    from bot.runbook.readiness import runbook_for_now
    from bot.runbook.registry import load_steps

    registry = load_steps()
    runbook = load_runbook(settings.RUNBOOK_PATH, registry)
    from bot.providers.refs import NoRefs, ref_source

    refs_known = not isinstance(ref_source(settings, default_redactor()), NoRefs)
    return runbook_for_now(runbook, registry, settings, settings.RUNBOOK_PATH or "the default runbook",
                           refs_known=refs_known)
