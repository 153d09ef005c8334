"""Sentences read naturally: "1 step", "has already succeeded"."""

from __future__ import annotations

import pytest

from bot.runbook.engine import EngineError
from bot.wording import plural
from tests.test_engine import SEQUENTIAL, make_engine, ok


def test_plural() -> None:
    assert [plural(n, "step") for n in (0, 1, 2)] == ["0 steps", "1 step", "2 steps"]
    assert plural(1, "match", "matches") == "1 match" and plural(3, "match", "matches") == "3 matches"


async def test_cancelling_an_ended_release_says_it_has_already_ended() -> None:
    engine, _, _ = make_engine({"a": ok(), "b": ok(), "c": ok()}, SEQUENTIAL)
    release = await engine.start(ref="main", user="U1", channel="C1")
    await engine.wait(release.id or 0)
    with pytest.raises(EngineError) as caught:
        await engine.cancel(release.id or 0, "U1")
    assert str(caught.value) == f"Release #{release.id} has already succeeded."


def test_uptime_counts_days_past_a_day() -> None:
    from bot.wording import uptime

    assert [uptime(s) for s in (59, 3725, 86400 * 3 + 3600 * 4 + 5)] == ["59s", "1h 02m", "3d 04h"]
