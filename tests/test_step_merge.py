"""The `merge` step against the GitHub emulator: merged, nothing to merge, conflict, API faults."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from bot.runbook.model import Outcome, Release
from sandbox.github import GitHubState, create_github_app
from sandbox.server import CALLS_KEY, FAULTS_KEY, serve
from tests.helpers import StepHarness, make_settings

TOKEN = "ghp_sandboxtoken"


@dataclass
class GitHub:
    state: GitHubState
    app: web.Application
    url: str
    released_sha: str

    def settings(self, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "GITHUB_API_URL": self.url,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_REPOSITORY": "acme/app",
            "STAGING_BRANCH": "main",
            "HTTP_TIMEOUT_SECONDS": 2,
        }
        values.update(overrides)
        return make_settings(**values)

    def merge_posts(self) -> int:
        return sum(1 for c in self.app[CALLS_KEY] if c["method"] == "POST" and c["path"].endswith("/merges"))


@pytest.fixture
async def gh() -> AsyncIterator[GitHub]:
    state = GitHubState(token=TOKEN, repo="acme/app")
    state.add_commit("main", "Initial commit")
    released = state.add_commit("main", "Ship v1", pr_title="Version one", pr_number=1)
    state.branch_from("release/2", "main")
    state.add_commit("release/2", "Add dashboard cards", pr_title="Dashboard cards", pr_number=10)
    state.add_commit("release/2", "Tweak card spacing", pr_title="Dashboard cards", pr_number=10)
    state.add_commit("release/2", "Merge pull request #12 from acme/coach-citations\n\nCoach citations")
    state.add_commit("release/2", "Fix typo in footer\n\nlong body")
    app = create_github_app(state)
    async with serve(app) as url:
        yield GitHub(state, app, url, released.sha)


def release(ref: str = "release/2", **data: Any) -> Release:
    return Release(id=7, environment="staging", ref=ref, started_by="U1", data=dict(data),
                   notes="Also: new onboarding copy")


async def test_merged_records_sha_highlights_and_compare_link(gh: GitHub) -> None:
    harness = StepHarness(gh.settings(), release(previous_sha=gh.released_sha))
    result = await harness.run("merge")
    assert result.outcome == Outcome.OK, result.summary
    merge_sha = gh.state.merges[-1]["sha"]
    assert gh.state.head("main") == merge_sha
    assert result.fields["Git SHA"] == merge_sha
    assert result.data == {
        "sha": merge_sha,
        "status": "merged",
        "compare_url": "https://github.com/acme/app/compare/main...release/2",
        "previous_sha": gh.released_sha,
    }
    lines = result.fields["Feature Highlights"].splitlines()
    assert lines == [
        "• Dashboard cards (#10)",
        "• Coach citations (#12)",
        "• Fix typo in footer (" + gh.state.branches["release/2"][-1].sha[:7] + ")",
        "• Also: new onboarding copy",
    ]
    # The already-released PR #1 is not a highlight of this release.
    assert "Version one" not in result.fields["Feature Highlights"]
    assert any(link.url == f"https://github.com/acme/app/commit/{merge_sha}" for link in result.links)
    body = next(c for c in gh.app[CALLS_KEY] if c["path"].endswith("/merges"))
    assert body["headers"]["Accept"] == "application/vnd.github+json"
    assert body["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    assert "release/2" in body["body"] and "release #7" in body["body"]


async def test_without_previous_sha_highlights_compare_against_the_staging_branch(gh: GitHub) -> None:
    result = await StepHarness(gh.settings(), release()).run("merge")
    assert result.outcome == Outcome.OK
    assert "• Dashboard cards (#10)" in result.fields["Feature Highlights"]
    assert result.data["previous_sha"] is None


async def test_nothing_to_merge_passes_with_the_branch_head(gh: GitHub) -> None:
    gh.state.branch_from("hotfix", "main")  # already contained in main
    head = gh.state.head("main")
    result = await StepHarness(gh.settings(), release("hotfix")).run("merge")
    assert result.outcome == Outcome.OK, result.summary
    assert result.data["status"] == "noop"
    assert result.data["sha"] == head
    assert result.fields["Git SHA"] == head
    assert "already merged" in result.summary
    assert gh.state.merges == []


async def test_conflict_fails_with_a_compare_link(gh: GitHub) -> None:
    gh.state.conflicts.add(("main", "release/2"))
    before = gh.state.head("main")
    result = await StepHarness(gh.settings(), release()).run("merge")
    assert result.outcome == Outcome.FAIL
    assert "conflicts" in result.summary
    assert [link.url for link in result.links] == ["https://github.com/acme/app/compare/main...release/2"]
    assert result.data["status"] == "conflict"
    assert "Git SHA" not in result.fields
    assert gh.state.head("main") == before


async def test_unknown_ref_fails_clearly(gh: GitHub) -> None:
    result = await StepHarness(gh.settings(), release("no-such-branch")).run("merge")
    assert result.outcome == Outcome.FAIL
    assert "ref not found" in result.summary
    assert "Head does not exist" in result.summary


async def test_bad_token_fails_clearly(gh: GitHub) -> None:
    result = await StepHarness(gh.settings(GITHUB_TOKEN="ghp_wrong"), release()).run("merge")
    assert result.outcome == Outcome.FAIL
    assert "401" in result.summary and "token was rejected" in result.summary
    assert "ghp_wrong" not in result.summary
    assert gh.state.merges == []


async def test_rate_limit_is_retried_after_retry_after(gh: GitHub) -> None:
    gh.app[FAULTS_KEY].add(r"^POST .*/merges$", 429, retry_after=1)
    started = time.monotonic()
    result = await StepHarness(gh.settings(), release()).run("merge")
    assert result.outcome == Outcome.OK, result.summary
    assert time.monotonic() - started >= 0.9
    assert gh.merge_posts() == 2
    assert len(gh.state.merges) == 1


async def test_server_error_is_retried(gh: GitHub) -> None:
    gh.app[FAULTS_KEY].add(r"^POST .*/merges$", 500)
    result = await StepHarness(gh.settings(), release()).run("merge")
    assert result.outcome == Outcome.OK, result.summary
    assert gh.merge_posts() == 2


async def test_persistent_server_errors_fail_clearly(gh: GitHub) -> None:
    gh.app[FAULTS_KEY].add(r"^POST .*/merges$", 502, times=3)
    result = await StepHarness(gh.settings(), release()).run("merge")
    assert result.outcome == Outcome.FAIL
    assert "server error 502" in result.summary and "gave up after 3 attempts" in result.summary


async def test_malformed_json_fails_clearly(gh: GitHub) -> None:
    gh.app[FAULTS_KEY].add(r"^POST .*/merges$", 201, body="{not json")
    result = await StepHarness(gh.settings(), release()).run("merge")
    assert result.outcome == Outcome.FAIL
    assert "malformed JSON" in result.summary


async def test_timeouts_fail_clearly(gh: GitHub) -> None:
    gh.app[FAULTS_KEY].add(r"^POST .*/merges$", 0, delay=0.6, times=3)
    result = await StepHarness(gh.settings(HTTP_TIMEOUT_SECONDS=0.2), release()).run("merge")
    assert result.outcome == Outcome.FAIL
    assert "timed out" in result.summary


async def test_highlight_lookup_errors_do_not_block_the_merge(gh: GitHub) -> None:
    gh.app[FAULTS_KEY].add(r"^GET .*/compare/", 404, body='{"message": "Not Found"}')
    result = await StepHarness(gh.settings(), release()).run("merge")
    assert result.outcome == Outcome.OK
    assert "Highlights unavailable" in result.details
    assert result.fields["Feature Highlights"] == "• Also: new onboarding copy"


async def test_releasing_the_staging_branch_itself_needs_no_merge(gh: GitHub) -> None:
    gh.state.add_commit("main", "Fix login redirect", pr_title="Login redirect fix", pr_number=20)
    result = await StepHarness(gh.settings(), release("main", previous_sha=gh.released_sha)).run("merge")
    assert result.outcome == Outcome.OK, result.summary
    assert result.data["status"] == "noop" and result.data["sha"] == gh.state.head("main")
    assert gh.merge_posts() == 0
    assert result.fields["Feature Highlights"] == "• Login redirect fix (#20)\n• Also: new onboarding copy"
