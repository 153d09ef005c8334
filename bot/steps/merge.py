"""The `merge` step (guide section 2, "Deploy Application Code"): merge the release ref into
STAGING_BRANCH through GitHub's merges API and list the release's highlights (pull request
titles between the last released SHA and this ref).
"""

from __future__ import annotations

import re
from typing import Any

from bot.providers import github
from bot.providers.http import ProviderError
from bot.runbook.model import Link, StepResult
from bot.runbook.step import StepContext, StepDef

MERGE_PR_RE = re.compile(r"^Merge pull request #(\d+)\b")
MAX_PR_LOOKUPS = 60


def _compare_web_url(settings_repo: str, base: str, head: str, api_html_url: str | None) -> str:
    """The compare page: from the API's html_url (GitHub Enterprise hosts too), else github.com."""
    if api_html_url and "/compare/" in api_html_url:
        return api_html_url.split("/compare/", 1)[0] + f"/compare/{base}...{head}"
    return f"https://github.com/{settings_repo}/compare/{base}...{head}"


async def _highlights(
    client: Any, repo: str, comparison: github.Comparison
) -> tuple[list[str], str]:
    """Bullet lines for Feature Highlights from a comparison, and a note on what was skipped."""
    lines: list[str] = []
    seen_prs: set[int] = set()
    note = ""
    for index, (sha, first, _url) in enumerate(comparison.commits):
        pulls: list[tuple[int, str, str]] = []
        if index < MAX_PR_LOOKUPS:
            pulls = await github.pulls_for_commit(client, repo, sha)
        elif not note:
            note = f"PR titles looked up for the first {MAX_PR_LOOKUPS} commits only."
        merge_match = MERGE_PR_RE.match(first)
        if merge_match and not pulls:
            # A merge commit's body is the PR title.
            body = comparison.messages.get(sha, "").strip().splitlines()[1:]
            title = next((b.strip() for b in body if b.strip()), first)
            pulls = [(int(merge_match.group(1)), title, "")]
        if pulls:
            for number, title, _pr_url in pulls:
                if number not in seen_prs:
                    seen_prs.add(number)
                    lines.append(f"• {title} (#{number})")
        elif first and not first.startswith("Merge "):
            lines.append(f"• {first} ({sha[:7]})")
    return lines, note


async def run_merge(ctx: StepContext) -> StepResult:
    """Merge `ctx.release.ref` into STAGING_BRANCH; 201/204 pass, 409 fails with the compare link."""
    settings = ctx.settings
    repo = str(settings.GITHUB_REPOSITORY)
    base, head = settings.STAGING_BRANCH, ctx.release.ref
    previous_sha = ctx.release.data.get("previous_sha") or None
    compare_base = str(previous_sha) if previous_sha else base
    message = f"Release {head} to {settings.ENVIRONMENT}"
    if ctx.release.id is not None:
        message += f" (release #{ctx.release.id})"
    notes: list[str] = []
    async with github.github_client(settings) as client:
        comparison: github.Comparison | None = None
        highlights: list[str] = []
        if compare_base != head:
            try:
                comparison = await github.compare(client, repo, compare_base, head)
                highlights, note = await _highlights(client, repo, comparison)
                if note:
                    notes.append(note)
            except ProviderError as exc:
                if exc.status in (401, 403):
                    return StepResult.fail(f"Could not read {repo} on GitHub: {exc}")
                notes.append(f"Highlights unavailable: {exc}")
        try:
            if head == base:  # releasing the staging branch itself: nothing to merge
                outcome = github.MergeOutcome("noop")
            else:
                outcome = await github.merge(client, repo, base, head, message)
            compare_url = _compare_web_url(
                repo, base, head, comparison.html_url if comparison else None
            )
            if outcome.status == "conflict":
                return StepResult.fail(
                    f"Merging {head} into {base} conflicts; resolve it in a pull request and retry.",
                    links=[Link(label=f"Compare {base}...{head}", url=compare_url)],
                    data={"sha": None, "status": "conflict", "compare_url": compare_url,
                          "previous_sha": previous_sha},
                )
            sha = outcome.sha if outcome.status == "merged" else None
            if sha is None:
                sha = await github.resolve_ref(client, repo, base)
        except ProviderError as exc:
            return StepResult.fail(f"Could not merge {head} into {base} in {repo}: {exc}")
    if ctx.release.notes.strip():
        highlights.extend(
            f"• {line.strip().lstrip('•-* ').strip()}"
            for line in ctx.release.notes.splitlines()
            if line.strip()
        )
    fields = {"Git SHA": sha}
    if highlights:
        fields["Feature Highlights"] = "\n".join(highlights)
    did = "merged" if outcome.status == "merged" else "was already merged"
    summary = f"{head} {did} into {base} at {sha[:7]}"
    details_parts = []
    if highlights:
        since = f"`{str(previous_sha)[:7]}`" if previous_sha else f"`{base}`"
        details_parts.append(f"*Since {since}:*\n" + "\n".join(highlights))
    details_parts.extend(notes)
    links = [Link(label=f"Compare {compare_base[:12]}...{head}", url=_compare_web_url(
        repo, compare_base, head, comparison.html_url if comparison else None))]
    if outcome.html_url:
        links.insert(0, Link(label="Merge commit", url=outcome.html_url))
    return StepResult.ok(
        summary,
        details="\n\n".join(details_parts),
        links=links,
        fields=fields,
        data={"sha": sha, "status": outcome.status, "compare_url": compare_url,
              "previous_sha": previous_sha},
    )


STEP = StepDef(
    name="merge",
    title="Merge the release into the staging branch",
    requires=("GITHUB_TOKEN", "GITHUB_REPOSITORY"),
    describe="Merge the release ref into STAGING_BRANCH on GitHub and list the release's PRs.",
    run=run_merge,
)
