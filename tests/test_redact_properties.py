"""Property tests: redaction never makes stored JSON unparseable and never changes identifiers.

The secret is a weak one on purpose (`123456`, digits that turn up inside numbers, SHAs,
timestamps and Slack ts values), the case that once turned a passing step's data into
`1[redacted]` and a gate's button value into something no handler recognised.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.redact import MASK, Redactor, default_redactor, is_id_key
from bot.runbook.model import Gate, GateAction, Release, StepRecord, StepResult, StepState
from bot.store import Store

SECRET = "123456"
WORD = st.text("abcdef0123456789_", min_size=1, max_size=6)

# Identifiers in which the secret's digits appear inside a longer token.
embedded = st.one_of(
    st.builds(lambda a, b: f"{a}{SECRET}{b}", WORD, st.just("")),
    st.builds(lambda a, b: f"{a}{SECRET}{b}", st.just(""), WORD),
    st.builds(lambda a, b: f"{a}{SECRET}{b}", WORD, WORD),
    st.builds(lambda s: f"{s}.{SECRET}", st.integers(1_000_000_000, 1_999_999_999)),  # Slack ts
    st.builds(lambda d: d.isoformat(timespec="seconds") + f".{SECRET}+00:00", st.datetimes()),
    st.builds(lambda n: f"release-{SECRET}-{n}", st.integers(0, 99)),
)
identifier = st.one_of(embedded, st.just(SECRET), st.text(min_size=0, max_size=12))
id_keys = st.sampled_from(["id", "value", "action_id", "block_id", "private_metadata", "ts",
                           "thread_ts", "sha", "Git SHA", "deployment_id", "deploymentId",
                           "created_at", "trigger_id", "release_id"])
text_keys = st.text("abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=10).filter(
    lambda k: not is_id_key(k))
words = st.lists(st.one_of(st.just(SECRET), embedded, st.text(max_size=8)), max_size=5)
free_text = words.map(" ".join)
numbers = st.one_of(st.integers(), st.just(int(SECRET)), st.just(int("1" + SECRET)),
                    st.floats(allow_nan=False, allow_infinity=False))
leaf = st.one_of(numbers, st.booleans(), st.none(), free_text)


def _tree(children: Any) -> Any:
    entries = st.one_of(st.tuples(id_keys, identifier), st.tuples(text_keys, children))
    return st.one_of(st.lists(children, max_size=4),
                     st.lists(entries, max_size=5).map(dict))


data_trees = st.recursive(leaf, _tree, max_leaves=25)


def _same_except_text(before: Any, after: Any) -> None:
    """`after` has `before`'s shape; identifiers and non-text leaves are equal."""
    if isinstance(before, dict):
        assert isinstance(after, dict) and list(after) == list(before)
        for key, value in before.items():
            if is_id_key(key):
                assert after[key] == value, key
            else:
                _same_except_text(value, after[key])
    elif isinstance(before, list):
        assert isinstance(after, list) and len(after) == len(before)
        for one, other in zip(before, after, strict=True):
            _same_except_text(one, other)
    elif isinstance(before, str):
        assert isinstance(after, str)
        assert f" {SECRET} " not in f" {after} "
    else:
        assert after == before and type(after) is type(before)


@given(data_trees)
def test_redacting_data_keeps_its_shape_ids_and_numbers(data: Any) -> None:
    redact = Redactor([SECRET])
    out = redact.data(data)
    _same_except_text(data, out)
    assert json.loads(json.dumps(out)) == out


@given(embedded)
def test_identifiers_containing_the_secret_are_never_changed(text: str) -> None:
    assert Redactor([SECRET])(text) == text
    assert Redactor([SECRET])(f"see {text} now") == f"see {text} now"


@given(st.lists(st.one_of(st.just(SECRET), embedded, st.text(max_size=6)), max_size=6))
def test_the_secret_standing_alone_is_always_masked(parts: list[str]) -> None:
    out = Redactor([SECRET])(" ".join(parts))
    assert SECRET not in out.split(" ")
    assert out.count(MASK) >= parts.count(SECRET) > 0 or SECRET not in parts


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data_trees, data_trees, identifier)
def test_stored_release_reads_back_parseable_with_ids_intact(release_data: Any, step_data: Any,
                                                             button_value: str) -> None:
    """What goes through the release log (SQLite) comes back: JSON parses, ids unchanged."""
    redactor = default_redactor()
    known = list(redactor._secrets)
    redactor.add([SECRET])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "log.db")
            release = store.create_release(Release(environment="staging", ref="main",
                                                   started_by="U1", channel="C1",
                                                   thread_ts=f"1700000000.{SECRET}"))
            release.data = {"steps": {"x": release_data}}
            record = StepRecord(name="x", title="X", phase="p", state=StepState.WAITING)
            record.result = StepResult.ok(f"done {SECRET}", data={"tree": step_data})
            record.gate = Gate(key=f"gate-{SECRET}", prompt=f"Apply {SECRET}?",
                               actions=[GateAction(id=button_value or "apply", label="Apply")])
            release.steps = [record]
            store.save(release, record)
            loaded = store.get_release(release.id or 0)
    finally:
        redactor._secrets[:] = known
    assert loaded is not None
    assert loaded.thread_ts == release.thread_ts
    _same_except_text({"steps": {"x": release_data}}, loaded.data)
    step = loaded.steps[0]
    assert step.result is not None and step.result.summary == f"done {MASK}"
    _same_except_text({"tree": step_data}, step.result.data)
    assert step.gate is not None and step.gate.key == record.gate.key
    assert step.gate.actions[0].id == record.gate.actions[0].id
    assert step.gate.prompt == f"Apply {MASK}?"
