"""Local emulator of the GitHub REST endpoints the release bot uses.

Branches are linear commit histories (oldest first). It serves merges
(`POST /repos/{owner}/{repo}/merges`: 201 merge commit, 204 nothing to merge, 409 conflict,
404 unknown base/head), compare (`GET /repos/{owner}/{repo}/compare/{base}...{head}`),
the repository itself with the token's `permissions` (`GET /repos/{owner}/{repo}`),
single commits (`GET /repos/{owner}/{repo}/commits/{ref}`), pull requests associated with a
commit (`GET /repos/{owner}/{repo}/commits/{sha}/pulls`) and branches
(`GET /repos/{owner}/{repo}/branches/{branch}`). Errors use GitHub's
`{"message", "documentation_url"}` shape; rate limits are scripted with server faults.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.server import new_app

DOCS = "https://docs.github.com/rest"
WEB = "https://github.com"
API = "https://api.github.com"


@dataclass
class Commit:
    """A commit on a branch."""

    sha: str
    message: str
    author: str = "Dev Eloper"
    email: str = "dev@example.test"
    date: str = "2024-01-01T00:00:00Z"
    parents: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # paths this commit adds


@dataclass
class PullRequest:
    """A pull request associated with one or more commits."""

    number: int
    title: str
    head_ref: str = "feature"
    base_ref: str = "main"
    state: str = "closed"
    merged: bool = True
    user: str = "dev"


@dataclass
class GitHubState:
    """In-memory repository: branches, pull requests by commit SHA, scripted conflicts."""

    token: str = "ghp_sandboxtoken"  # noqa: S105 - sandbox credential
    repo: str = "acme/app"
    branches: dict[str, list[Commit]] = field(default_factory=dict)
    pulls: dict[str, list[PullRequest]] = field(default_factory=dict)
    conflicts: set[tuple[str, str]] = field(default_factory=set)
    merges: list[dict[str, Any]] = field(default_factory=list)
    permissions: dict[str, bool] = field(default_factory=lambda: {
        "admin": False, "maintain": False, "push": True, "triage": True, "pull": True})
    default_branch: str = "main"
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._counter = 0

    def make_sha(self, seed: str = "") -> str:
        """A fresh, deterministic 40-hex SHA."""
        self._counter += 1
        return hashlib.sha1(f"{self._counter}:{seed}".encode(), usedforsecurity=False).hexdigest()

    def now_iso(self) -> str:
        """The emulator clock as an ISO 8601 UTC timestamp."""
        return datetime.fromtimestamp(self.clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def add_commit(
        self,
        branch: str,
        message: str,
        *,
        author: str = "Dev Eloper",
        pr_title: str | None = None,
        pr_number: int | None = None,
        added: list[str] | None = None,
    ) -> Commit:
        """Append a commit to `branch` (created when new), optionally from a pull request."""
        history = self.branches.setdefault(branch, [])
        parents = [history[-1].sha] if history else []
        commit = Commit(self.make_sha(message), message, author, date=self.now_iso(), parents=parents,
                        added=list(added or []))
        history.append(commit)
        if pr_title is not None:
            number = pr_number or (sum(len(p) for p in self.pulls.values()) + 1)
            self.pulls.setdefault(commit.sha, []).append(PullRequest(number, pr_title, head_ref=branch))
        return commit

    def branch_from(self, new: str, source: str) -> list[Commit]:
        """Create branch `new` at the head of `source`."""
        self.branches[new] = list(self.branches[source])
        return self.branches[new]

    def head(self, branch: str) -> str | None:
        """The head SHA of a branch."""
        history = self.branches.get(branch)
        return history[-1].sha if history else None

    def history(self, ref: str) -> list[Commit] | None:
        """Commits reachable from `ref` (a branch name or a SHA), oldest first."""
        if ref in self.branches:
            return self.branches[ref]
        for commits in self.branches.values():
            for index, commit in enumerate(commits):
                if commit.sha == ref or (len(ref) >= 7 and commit.sha.startswith(ref)):
                    return commits[: index + 1]
        return None

    def find_commit(self, ref: str) -> Commit | None:
        """The commit a ref points at."""
        history = self.history(ref)
        return history[-1] if history else None


STATE_KEY: web.AppKey[GitHubState] = web.AppKey("github_state", GitHubState)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response(
        {"message": message, "documentation_url": DOCS, "status": str(status), **extra},
        status=status,
    )


@web.middleware
async def _auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or token != state.token:
        return _error(401, "Bad credentials")
    owner, repo = request.match_info.get("owner"), request.match_info.get("repo")
    if owner is not None and f"{owner}/{repo}".lower() != state.repo.lower():
        return _error(404, "Not Found")
    response: web.StreamResponse = await handler(request)
    return response


def _commit_json(state: GitHubState, commit: Commit) -> dict[str, Any]:
    person = {"name": commit.author, "email": commit.email, "date": commit.date}
    return {
        "sha": commit.sha,
        "node_id": f"C_{commit.sha[:20]}",
        "url": f"{API}/repos/{state.repo}/commits/{commit.sha}",
        "html_url": f"{WEB}/{state.repo}/commit/{commit.sha}",
        "comments_url": f"{API}/repos/{state.repo}/commits/{commit.sha}/comments",
        "commit": {
            "author": person,
            "committer": person,
            "message": commit.message,
            "tree": {"sha": hashlib.sha1(commit.sha.encode(), usedforsecurity=False).hexdigest()},
            "url": f"{API}/repos/{state.repo}/git/commits/{commit.sha}",
            "comment_count": 0,
        },
        "author": {"login": commit.author.split()[0].lower()},
        "committer": {"login": "web-flow"},
        "parents": [
            {
                "sha": p,
                "url": f"{API}/repos/{state.repo}/commits/{p}",
                "html_url": f"{WEB}/{state.repo}/commit/{p}",
            }
            for p in commit.parents
        ],
    }


def _missing(base: list[Commit], head: list[Commit]) -> list[Commit]:
    base_shas = {c.sha for c in base}
    return [c for c in head if c.sha not in base_shas]


async def merge(request: web.Request) -> web.Response:
    """`POST /repos/{owner}/{repo}/merges`: 201, 204, 404 or 409 as GitHub answers."""
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "Problems parsing JSON")
    if not isinstance(body, dict) or not body.get("base") or not body.get("head"):
        return _error(422, 'Invalid request.\n\n"base" and "head" weren\'t supplied.')
    base_name, head_ref = str(body["base"]), str(body["head"])
    if base_name not in state.branches:
        return _error(404, "Base does not exist")
    head = state.history(head_ref)
    if head is None:
        return _error(404, "Head does not exist")
    new = _missing(state.branches[base_name], head)
    if not new:
        return web.Response(status=204)
    if (base_name, head_ref) in state.conflicts:
        return _error(409, "Merge conflict")
    base = state.branches[base_name]
    message = body.get("commit_message") or f"Merge {head_ref} into {base_name}"
    merge_commit = Commit(
        state.make_sha(message),
        str(message),
        "release-bot",
        "bot@example.test",
        state.now_iso(),
        [base[-1].sha, head[-1].sha] if base else [head[-1].sha],
    )
    base.extend(new)
    base.append(merge_commit)
    state.merges.append({"base": base_name, "head": head_ref, "sha": merge_commit.sha})
    return web.json_response(_commit_json(state, merge_commit), status=201)


def _files(commits: list[Commit]) -> list[dict[str, Any]]:
    """Compare's `files`: each path the commits add, with status `added`."""
    return [{"sha": commit.sha, "filename": path, "status": "added", "additions": 1,
             "deletions": 0, "changes": 1} for commit in commits for path in commit.added]


async def compare(request: web.Request) -> web.Response:
    """`GET /repos/{owner}/{repo}/compare/{base}...{head}`."""
    state = request.app[STATE_KEY]
    spec = request.match_info["basehead"]
    base_ref, sep, head_ref = spec.partition("...")
    if not sep:
        return _error(404, "Not Found")
    base, head = state.history(base_ref), state.history(head_ref)
    if base is None or head is None:
        return _error(404, "Not Found")
    ahead, behind = _missing(base, head), _missing(head, base)
    if not ahead and not behind:
        status = "identical"
    elif ahead and behind:
        status = "diverged"
    else:
        status = "ahead" if ahead else "behind"
    base_shas = {c.sha for c in base}
    common = [c for c in head if c.sha in base_shas]
    html = f"{WEB}/{state.repo}/compare/{base_ref}...{head_ref}"
    return web.json_response(
        {
            "url": f"{API}/repos/{state.repo}/compare/{base_ref}...{head_ref}",
            "html_url": html,
            "permalink_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "base_commit": _commit_json(state, base[-1]) if base else None,
            "merge_base_commit": _commit_json(state, common[-1]) if common else None,
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": len(behind),
            "total_commits": len(ahead),
            "commits": [_commit_json(state, c) for c in ahead],
            "files": _files(ahead),
        }
    )


async def get_commit(request: web.Request) -> web.Response:
    """`GET /repos/{owner}/{repo}/commits/{ref}`."""
    state = request.app[STATE_KEY]
    ref = request.match_info["ref"]
    commit = state.find_commit(ref)
    if commit is None:
        return _error(422, f"No commit found for SHA: {ref}")
    body = _commit_json(state, commit)
    body["stats"] = {"total": 0, "additions": 0, "deletions": 0}
    body["files"] = []
    return web.json_response(body)


async def commit_pulls(request: web.Request) -> web.Response:
    """`GET /repos/{owner}/{repo}/commits/{sha}/pulls`: PRs associated with a commit."""
    state = request.app[STATE_KEY]
    commit = state.find_commit(request.match_info["sha"])
    if commit is None:
        return _error(422, f"No commit found for SHA: {request.match_info['sha']}")
    items = []
    for pr in state.pulls.get(commit.sha, []):
        items.append(
            {
                "number": pr.number,
                "title": pr.title,
                "state": pr.state,
                "html_url": f"{WEB}/{state.repo}/pull/{pr.number}",
                "url": f"{API}/repos/{state.repo}/pulls/{pr.number}",
                "user": {"login": pr.user},
                "merged_at": commit.date if pr.merged else None,
                "head": {"ref": pr.head_ref, "sha": commit.sha},
                "base": {"ref": pr.base_ref},
            }
        )
    return web.json_response(items)


async def get_branch(request: web.Request) -> web.Response:
    """`GET /repos/{owner}/{repo}/branches/{branch}`."""
    state = request.app[STATE_KEY]
    name = request.match_info["branch"]
    history = state.branches.get(name)
    if not history:
        return _error(404, "Branch not found")
    return web.json_response(
        {
            "name": name,
            "commit": _commit_json(state, history[-1]),
            "protected": False,
            "_links": {"html": f"{WEB}/{state.repo}/tree/{name}"},
        }
    )


async def get_repository(request: web.Request) -> web.Response:
    """`GET /repos/{owner}/{repo}`: the repository, with what the token may do in `permissions`."""
    state = request.app[STATE_KEY]
    owner, name = state.repo.split("/", 1)
    return web.json_response(
        {
            "id": 1296269,
            "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
            "name": name,
            "full_name": state.repo,
            "private": True,
            "visibility": "private",
            "owner": {"login": owner, "type": "Organization"},
            "html_url": f"{WEB}/{state.repo}",
            "url": f"{API}/repos/{state.repo}",
            "default_branch": state.default_branch,
            "archived": False,
            "disabled": False,
            "permissions": dict(state.permissions),
        }
    )


def create_github_app(state: GitHubState) -> web.Application:
    """An aiohttp app emulating the GitHub REST API over `state`."""
    app = new_app()
    app.middlewares.append(_auth_middleware)
    app[STATE_KEY] = state
    prefix = "/repos/{owner}/{repo}"
    app.router.add_get(prefix, get_repository)
    app.router.add_post(f"{prefix}/merges", merge)
    app.router.add_get(prefix + "/compare/{basehead:.+}", compare)
    app.router.add_get(prefix + "/commits/{sha}/pulls", commit_pulls)
    app.router.add_get(prefix + "/commits/{ref:.+}", get_commit)
    app.router.add_get(prefix + "/branches/{branch:.+}", get_branch)
    return app
