"""GitHub's REST API: merge a ref into a branch, compare two refs, find a commit's pull requests.

Every function takes an `httpx.AsyncClient` made by `github_client()` (base URL GITHUB_API_URL,
bearer GITHUB_TOKEN, GitHub's versioned JSON headers) and raises `ProviderError` with a plain
sentence when GitHub refuses or the answer is not what the API documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx

from bot.config import Settings
from bot.providers.http import ProviderError, error_message, json_body, json_object, make_client, send

PROVIDER = "GitHub"
AUTH_HINT = "the token was rejected or lacks contents:write on the repository"
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

MergeStatus = Literal["merged", "noop", "conflict"]


@dataclass(frozen=True)
class MergeOutcome:
    """What `POST /merges` did: merged (201), noop (204, already merged) or conflict (409)."""

    status: MergeStatus
    sha: str | None = None
    html_url: str | None = None


@dataclass(frozen=True)
class Comparison:
    """Commits in `head` that `base` lacks, as (sha, first line of message, html_url)."""

    commits: list[tuple[str, str, str]] = field(default_factory=list)
    html_url: str | None = None
    messages: dict[str, str] = field(default_factory=dict)  # sha -> full message
    dates: dict[str, str] = field(default_factory=dict)  # sha -> author date (ISO 8601)


def github_client(settings: Settings) -> httpx.AsyncClient:
    """A client for GITHUB_API_URL with the token and GitHub's API version headers."""
    return make_client(
        settings.GITHUB_API_URL,
        token=settings.secret("GITHUB_TOKEN") or None,
        timeout=settings.HTTP_TIMEOUT_SECONDS,
        headers=HEADERS,
    )


def _repo_path(repo: str) -> str:
    owner, sep, name = repo.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ProviderError(PROVIDER, f"repository {repo!r} is not in owner/name form")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _ref(ref: str) -> str:
    return quote(ref, safe="/")


async def merge(
    client: httpx.AsyncClient, repo: str, base: str, head: str, message: str
) -> MergeOutcome:
    """Merge `head` (branch or SHA) into branch `base` with `POST /repos/{o}/{r}/merges`."""
    response = await send(
        client,
        "POST",
        f"{_repo_path(repo)}/merges",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
        ok_statuses=(404, 409),
        json={"base": base, "head": head, "commit_message": message},
    )
    if response.status_code == 404:
        raise ProviderError(
            PROVIDER,
            f"ref not found: {error_message(response)} (base {base!r}, head {head!r} in {repo})",
            404,
        )
    if response.status_code == 409:
        return MergeOutcome("conflict")
    if response.status_code == 204:
        return MergeOutcome("noop")
    body = json_object(json_body(response, PROVIDER), PROVIDER, "the merge")
    sha = body.get("sha")
    if not isinstance(sha, str) or not sha:
        raise ProviderError(PROVIDER, "answered the merge without the merge commit's sha")
    html_url = body.get("html_url")
    return MergeOutcome("merged", sha, html_url if isinstance(html_url, str) else None)


async def _compare(client: httpx.AsyncClient, repo: str, base: str, head: str, *,
                   per_page: int) -> dict[str, Any]:
    """GitHub's comparison of two refs (`GET .../compare/{base}...{head}`) as a JSON object."""
    response = await send(client, "GET", f"{_repo_path(repo)}/compare/{_ref(base)}...{_ref(head)}",
                          provider=PROVIDER, auth_hint=AUTH_HINT, params={"per_page": per_page})
    return json_object(json_body(response, PROVIDER), PROVIDER, "the comparison")


async def compare(client: httpx.AsyncClient, repo: str, base: str, head: str) -> Comparison:
    """Commits reachable from `head` but not from `base` (`GET .../compare/{base}...{head}`)."""
    body = await _compare(client, repo, base, head, per_page=250)
    raw = body.get("commits")
    if not isinstance(raw, list):
        raise ProviderError(PROVIDER, "answered the comparison without a `commits` list")
    commits: list[tuple[str, str, str]] = []
    messages: dict[str, str] = {}
    dates: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("sha"), str):
            continue
        detail = item.get("commit")
        author = detail.get("author") if isinstance(detail, dict) else None
        if isinstance(author, dict) and isinstance(author.get("date"), str):
            dates[item["sha"]] = author["date"]
        message = detail.get("message") if isinstance(detail, dict) else None
        text = message if isinstance(message, str) else ""
        first = text.strip().splitlines()[0] if text.strip() else ""
        commits.append((item["sha"], first, str(item.get("html_url") or "")))
        messages[item["sha"]] = text
    html_url = body.get("html_url")
    return Comparison(commits, html_url if isinstance(html_url, str) else None, messages, dates)


async def pulls_for_commit(
    client: httpx.AsyncClient, repo: str, sha: str
) -> list[tuple[int, str, str]]:
    """Pull requests associated with a commit, as (number, title, html_url)."""
    response = await send(
        client,
        "GET",
        f"{_repo_path(repo)}/commits/{_ref(sha)}/pulls",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
    )
    body = json_body(response, PROVIDER)
    if not isinstance(body, list):
        raise ProviderError(PROVIDER, "answered the commit's pull requests with something other than a list")
    out: list[tuple[int, str, str]] = []
    for item in body:
        if isinstance(item, dict) and isinstance(item.get("number"), int):
            out.append((item["number"], str(item.get("title") or ""), str(item.get("html_url") or "")))
    return out


async def resolve_ref(client: httpx.AsyncClient, repo: str, ref: str) -> str:
    """The commit SHA a branch, tag or SHA points at (`GET /repos/{o}/{r}/commits/{ref}`)."""
    response = await send(
        client,
        "GET",
        f"{_repo_path(repo)}/commits/{_ref(ref)}",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
        ok_statuses=(404, 422),
    )
    if response.status_code in (404, 422):
        raise ProviderError(PROVIDER, f"ref not found: {ref!r} in {repo}", response.status_code)
    body = json_object(json_body(response, PROVIDER), PROVIDER, "the commit lookup")
    sha = body.get("sha")
    if not isinstance(sha, str) or not sha:
        raise ProviderError(PROVIDER, f"answered the lookup of {ref!r} without a sha")
    return sha


async def added_files(client: httpx.AsyncClient, repo: str, base: str, head: str,
                      prefix: str) -> list[str]:
    """Files `head` adds under `prefix` relative to `base` (compare's `files`, status `added`)."""
    body = await _compare(client, repo, base, head, per_page=100)
    files = body.get("files")
    if not isinstance(files, list):
        raise ProviderError(PROVIDER, "answered the comparison without a `files` list")
    return [str(item["filename"]) for item in files
            if isinstance(item, dict) and item.get("status") == "added"
            and str(item.get("filename", "")).startswith(prefix)]
