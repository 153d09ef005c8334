"""The runbook's data: outcomes, step results, releases, gates and runbook specs.

Pure data (pydantic models and enums); no I/O. The engine, the store and the chat renderers
all speak these types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

TEMPLATE_FIELDS = [
    "Release Date",
    "Git SHA",
    "Migrations Applied",
    "Feature Highlights",
    "Manual Tests",
    "Post-Deploy Monitoring Links",
    "Rollback Trigger (if used)",
]
# Fields several steps contribute lines to; the others are set by one step.
APPENDED_FIELDS = {"Manual Tests", "Feature Highlights"}


def utcnow() -> datetime:
    """Timezone-aware now, in UTC."""
    return datetime.now(UTC)


class Outcome(StrEnum):
    """What a step concluded."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"


class StepState(StrEnum):
    """Where a step of a release stands."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in {StepState.OK, StepState.WARN, StepState.FAIL, StepState.SKIPPED}


class ReleaseStatus(StrEnum):
    """Where a release stands."""

    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        return self in {ReleaseStatus.RUNNING, ReleaseStatus.WAITING}


class Link(BaseModel):
    """A labelled URL shown with a result."""

    label: str
    url: str


class StepResult(BaseModel):
    """What a step found: outcome, one summary line, details (mrkdwn), links, and data."""

    outcome: Outcome
    summary: str
    details: str = ""
    links: list[Link] = Field(default_factory=list)
    output_tail: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def ok(cls, summary: str, **kw: Any) -> StepResult:
        return cls(outcome=Outcome.OK, summary=summary, **kw)

    @classmethod
    def warn(cls, summary: str, **kw: Any) -> StepResult:
        return cls(outcome=Outcome.WARN, summary=summary, **kw)

    @classmethod
    def fail(cls, summary: str, **kw: Any) -> StepResult:
        return cls(outcome=Outcome.FAIL, summary=summary, **kw)

    @classmethod
    def skipped(cls, summary: str, **kw: Any) -> StepResult:
        return cls(outcome=Outcome.SKIPPED, summary=summary, **kw)


class GateAction(BaseModel):
    """One button of a gate."""

    id: str
    label: str
    style: str | None = None  # "primary" | "danger" | None
    approvers_only: bool = True


class Gate(BaseModel):
    """A question a step asks a person; the release waits until someone answers."""

    key: str
    prompt: str
    actions: list[GateAction]
    approvers: list[str] = Field(default_factory=list)  # Slack user/group IDs who may answer


class Decision(BaseModel):
    """A person's answer to a gate."""

    action: str
    user: str
    at: datetime = Field(default_factory=utcnow)


class StepRecord(BaseModel):
    """One step of one release, as stored."""

    name: str
    title: str
    phase: str
    position: int = 0
    state: StepState = StepState.PENDING
    result: StepResult | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    gate: Gate | None = None


class Release(BaseModel):
    """A release, its steps, and the template fields of the release log."""

    id: int | None = None
    environment: str
    ref: str
    git_sha: str | None = None
    started_by: str
    channel: str | None = None
    thread_ts: str | None = None
    status: ReleaseStatus = ReleaseStatus.RUNNING
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    notes: str = ""
    fields: dict[str, str] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        """How many steps are in each state."""
        out: dict[str, int] = {}
        for record in self.steps:
            out[record.state.value] = out.get(record.state.value, 0) + 1
        return out

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class RequiredWhen(BaseModel):
    """A condition under which a step is required: the release ref adds files under a path."""

    model_config = {"extra": "forbid"}

    ref_adds: str = Field(min_length=1)  # e.g. supabase/migrations (relative to the repo root)

    @property
    def prefix(self) -> str:
        """The path as a directory prefix: `supabase/migrations/`."""
        return self.ref_adds.strip().strip("/") + "/"


class StepSpec(BaseModel):
    """One runbook entry: which step, whether it runs, is required, its timeout and options.

    `required: true` means a release is refused (nothing posted, nothing logged) when this step
    cannot run; `required: {ref_adds: PATH}` means the same, but only for a release whose ref
    adds files under PATH relative to the staging branch. Other steps are optional: when they
    cannot run they are skipped, and skips are counted apart from passes.
    """

    model_config = {"extra": "forbid"}

    name: str
    enabled: bool = True
    required: bool | RequiredWhen = False
    skip: str | None = None  # skip this step with this reason (shown in thread and status)
    timeout: float | None = Field(None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def always_required(self) -> bool:
        """Required for every release (not only under a condition)."""
        return self.required is True

    @property
    def required_when(self) -> RequiredWhen | None:
        """The condition under which this step is required, if it is conditional."""
        return self.required if isinstance(self.required, RequiredWhen) else None


class PhaseSpec(BaseModel):
    """A phase: steps run in order, or all at once when `concurrent`."""

    model_config = {"extra": "forbid"}

    name: str
    concurrent: bool = False
    always: bool = False  # runs even after an earlier phase failed (e.g. monitoring links)
    steps: list[StepSpec]


class Runbook(BaseModel):
    """The release procedure as data."""

    model_config = {"extra": "forbid"}

    name: str = "staging"
    phases: list[PhaseSpec]

    def enabled_steps(self) -> list[tuple[PhaseSpec, StepSpec]]:
        return [(p, s) for p in self.phases for s in p.steps if s.enabled]

    def spec(self, name: str) -> StepSpec | None:
        """The entry of step `name`, or None."""
        return next((s for p in self.phases for s in p.steps if s.name == name), None)
