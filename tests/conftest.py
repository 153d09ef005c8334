"""Shared fixtures: real services (tests.conftest_services), the sandbox staging app, a sample
app workspace, and the real Bolt app served over HTTP against the Slack emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Store
from sandbox.server import serve
from sandbox.staging_app import StagingState, create_staging_app
from sandbox.workspace import Workspace, create_workspace
from tests.slack_e2e import SlackHarness

pytest_plugins = ["tests.conftest_services"]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store() -> Store:
    return Store(":memory:")


@pytest.fixture
async def staging() -> AsyncIterator[tuple[str, StagingState]]:
    """The sandbox staging app on loopback: (base URL, its mutable state)."""
    state = StagingState()
    async with serve(create_staging_app(state)) as url:
        yield url, state


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A sample app checkout with an origin, plus a `release/1.2.0` branch."""
    modules = REPO / ".tools" / "node_modules"
    ws = create_workspace(tmp_path / "ws", node_modules=modules if modules.exists() else None)
    ws.add_release_branch("1.2.0")
    return ws


@pytest.fixture
async def slack(tmp_path: Path) -> AsyncIterator[SlackHarness]:
    """The real Bolt app over HTTP with signed requests, talking to the Slack emulator."""
    async with SlackHarness(tmp_path) as harness:
        yield harness
