"""Can this release do its work? Asked before anything is posted or logged.

Each step declares what it needs (settings, tools: `StepDef.skip_reason`); the runbook declares
which steps are required (`required: true`, or `required: {ref_adds: PATH}` for a ref that
adds files under PATH). A release is refused when a required step cannot run, when no step
outside the `always` phases can run, or when the ref does not exist. Pure apart from the
`RefSource` it is handed (git or GitHub, see bot.providers.refs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.config import Settings
from bot.runbook.model import PhaseSpec, Runbook, StepSpec
from bot.runbook.step import StepDef

RUNBOOK_HINT = ("To release with only what can run now, on purpose: "
                "`release-bot check-config --runbook > runbook.yml` and set "
                "RUNBOOK_PATH=runbook.yml.")


class RefSource(Protocol):
    """Where refs are looked up (the workspace's origin, GitHub, or nowhere)."""

    async def missing_ref(self, ref: str) -> str | None: ...
    async def added_files(self, ref: str, base: str, prefix: str) -> list[str] | None: ...


@dataclass
class Blocker:
    """A required step that cannot run, and why."""

    step: str
    title: str
    needs: str
    because: str = ""  # why it is required for this release (conditional requirements)


@dataclass
class Readiness:
    """The verdict on a release before it starts."""

    ref: str
    ref_problem: str | None = None
    blockers: list[Blocker] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    runnable: list[str] = field(default_factory=list)
    nothing_to_do: bool = False

    @property
    def ok(self) -> bool:
        return self.ref_problem is None and not self.blockers and not self.nothing_to_do


def cannot_run(spec: StepSpec, sdef: StepDef, settings: Settings) -> str | None:
    """What stops `spec` from running here (the runbook's own `skip` included), or None."""
    return spec.skip or sdef.skip_reason(settings)


def _needs(reason: str) -> str:
    return reason.replace("missing settings: ", "set ").replace("tools not installed: ", "install ")


async def assess(runbook: Runbook, registry: dict[str, StepDef], settings: Settings, ref: str,
                 refs: RefSource) -> Readiness:
    """Whether a release of `ref` can do the work its runbook requires."""
    verdict = Readiness(ref=ref, ref_problem=await refs.missing_ref(ref))
    working: list[str] = []
    for phase, spec in runbook.enabled_steps():
        sdef = registry[spec.name]
        reason = cannot_run(spec, sdef, settings)
        if reason is None:
            verdict.runnable.append(spec.name)
            if not phase.always:
                working.append(spec.name)
            if spec.always_required:
                verdict.required.append(spec.name)
            continue
        because = await _required_because(spec, ref, settings, refs, verdict.ref_problem)
        if because is not None:
            verdict.required.append(spec.name)
            verdict.blockers.append(Blocker(spec.name, sdef.title, _needs(reason), because))
    verdict.nothing_to_do = not working
    return verdict


async def _required_because(spec: StepSpec, ref: str, settings: Settings, refs: RefSource,
                            ref_problem: str | None) -> str | None:
    """Why `spec` is required for this release ("" when always), or None when it is not."""
    if spec.always_required:
        return ""
    when = spec.required_when
    if when is None or ref_problem is not None:
        return None
    added = await refs.added_files(ref, settings.STAGING_BRANCH, when.prefix)
    if added is None:
        return (f"I cannot tell whether `{ref}` adds files under {when.prefix} (set APP_WORKSPACE, "
                "or GITHUB_TOKEN and GITHUB_REPOSITORY)")
    if not added:
        return None
    shown = ", ".join(name.removeprefix(when.prefix) for name in added[:3])
    more = f" and {len(added) - 3} more" if len(added) > 3 else ""
    return f"`{ref}` adds {len(added)} file(s) under {when.prefix}: {shown}{more}"


def refusal(verdict: Readiness, environment: str) -> str:
    """The answer to the person who asked, naming each missing setting or tool."""
    head = f":no_entry: Release of `{verdict.ref}` to {environment} not started"
    if verdict.ref_problem is not None:
        return f"{head}: {verdict.ref_problem}."
    lines = []
    if verdict.blockers:
        lines.append(f"{head}: required steps cannot run here.")
        for blocker in verdict.blockers:
            why = f" (required: {blocker.because})" if blocker.because else ""
            lines.append(f"• `{blocker.step}` ({blocker.title}): {blocker.needs}{why}")
    else:
        lines.append(f"{head}: no step of the runbook can run here, so it would do nothing.")
    lines.append(RUNBOOK_HINT)
    return "\n".join(lines)


def runbook_for_now(runbook: Runbook, registry: dict[str, StepDef], settings: Settings,
                    source: str, *, refs_known: bool) -> str:
    """A runbook YAML of what can run with these settings, for RUNBOOK_PATH.

    Steps that cannot run are left out, each as a comment naming what it needs. A step required
    under a condition (the migration steps) is kept while the added files can be looked up
    (`refs_known`: APP_WORKSPACE or GitHub), so a ref that adds migrations is still refused
    while the schema cannot be pushed, and other refs skip it.
    """
    lines = [f"# Generated by `release-bot check-config --runbook` from {source}:",
             "# what can run with the current settings and tools. Point RUNBOOK_PATH at it.",
             f"name: {runbook.name}", "phases:"]
    working = False
    for phase in runbook.phases:
        phase_lines, runs = _phase_lines(phase, registry, settings, refs_known)
        lines += phase_lines
        working = working or (runs and not phase.always)
    if not working:
        lines[2:2] = ["# Nothing but reporting can run yet: `/release start` stays refused until",
                      "# a step below is configured."]
    return "\n".join(lines) + "\n"


def _phase_lines(phase: PhaseSpec, registry: dict[str, StepDef], settings: Settings,
                 refs_known: bool) -> tuple[list[str], bool]:
    """The phase's YAML lines, and whether any of its steps can run now."""
    head = [f"  - name: {phase.name}"]
    if phase.concurrent:
        head.append("    concurrent: true")
    if phase.always:
        head.append("    always: true")
    kept: list[str] = []
    runs = False
    for spec in phase.steps:
        if not spec.enabled:
            kept.append(f"      # - name: {spec.name}   (disabled in the runbook)")
            continue
        reason = cannot_run(spec, registry[spec.name], settings)
        runs = runs or reason is None
        if reason is not None and (spec.required_when is None or not refs_known):
            kept.append(f"      # - name: {spec.name}   left out{_was(spec)}: {_needs(reason)}")
            continue
        kept += _spec_lines(spec, None if reason is None else _needs(reason))
    if not any(line.startswith("      - ") for line in kept):
        return [f"  # phase {phase.name} left out: no step can run",
                *[line.replace("      # ", "  #   ", 1) for line in kept]], False
    return [*head, "    steps:", *kept], runs


def _was(spec: StepSpec) -> str:
    if spec.always_required:
        return " (required there)"
    if spec.required_when is not None:
        return (f" (required there when a ref adds {spec.required_when.prefix}, which cannot be "
                "told without APP_WORKSPACE or GITHUB_REPOSITORY)")
    return ""


def _spec_lines(spec: StepSpec, needs: str | None) -> list[str]:
    import json

    lines = [f"      - name: {spec.name}"]
    if spec.always_required:
        lines.append("        required: true")
    elif spec.required_when is not None:
        note = f"  # cannot run now ({needs}): a ref adding files there is refused" if needs else ""
        lines.append(f"        required: {{ref_adds: {spec.required_when.ref_adds}}}{note}")
    if spec.timeout is not None:
        lines.append(f"        timeout: {spec.timeout:g}")
    if spec.options:
        lines.append(f"        options: {json.dumps(spec.options)}")
    return lines
