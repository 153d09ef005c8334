"""Guide section 2, "Deploy Application Code": merge, deploy on Vercel, check the build log.

`merge` merges the release ref into STAGING_BRANCH through GitHub's merges API and lists the
release's highlights (pull request titles between the last released SHA and this ref).
`deploy` creates (or, when retried, reuses) the Vercel deployment of the merged SHA and polls it
until it is READY, ERROR or CANCELED or DEPLOY_TIMEOUT_SECONDS pass; once it is READY, staging's
domain (STAGING_DOMAIN, else STAGING_URL's host) is made to point at it. `build_logs` reads that
deployment's build log for the PostgREST/GoTrue connection lines and for error lines, and asks
the Supabase Management API for auth/rest/db health when it can (healthy auth and rest make
missing connection lines a warning).
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

from bot.chat.blocks import table
from bot.providers import github, supabase_api, vercel
from bot.providers.http import ProviderError
from bot.runbook.model import Link, StepResult
from bot.runbook.registry import StepContext, step
from bot.wording import plural

MERGE_PR_RE = re.compile(r"^Merge pull request #(\d+)\b")
MAX_PR_LOOKUPS = 60
HOOK_FIND_SECONDS = 60.0
MAX_SHOWN_LINES = 15
LINE_WIDTH = 200


# --- merge -----------------------------------------------------------------------------------


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


@step(
    "merge",
    title="Merge the release into the staging branch",
    phase="deploy",
    requires=("GITHUB_TOKEN", "GITHUB_REPOSITORY"),
    describe="Merge the release ref into STAGING_BRANCH on GitHub and list the release's PRs.",
)
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


# --- deploy ----------------------------------------------------------------------------------


def _iso_ms(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    return None


def _https(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    return url if url.startswith(("http://", "https://")) else f"https://{url}"


def _deploy_data(dep: dict[str, Any], sha: str, reused: bool) -> dict[str, Any]:
    return {
        "deployment_id": vercel.deployment_id(dep),
        "url": _https(dep.get("url")),
        "inspector_url": dep.get("inspectorUrl"),
        "created_at": _iso_ms(dep.get("createdAt") or dep.get("created")),
        "ready_at": _iso_ms(dep.get("ready")),
        "state": vercel.deployment_state(dep),
        "sha": sha,
        "reused": reused,
        "alias": None,
        "alias_previous": None,
        "alias_repointed": None,
    }


def _deploy_links(data: dict[str, Any]) -> list[Link]:
    links = []
    if data.get("url"):
        links.append(Link(label="Deployment", url=data["url"]))
    if data.get("inspector_url"):
        links.append(Link(label="Vercel inspector", url=data["inspector_url"]))
    return links


@step(
    "deploy",
    title="Deploy to Vercel",
    phase="deploy",
    requires=("VERCEL_TOKEN", "VERCEL_PROJECT_ID"),
    requires_any=(("GITHUB_REPOSITORY",), ("VERCEL_DEPLOY_HOOK_URL",)),
    timeout=None,
    describe="Create (or reuse) the Vercel deployment of the merged SHA, wait until it is READY, and "
    "point the staging domain at it.",
)
async def run_deploy(ctx: StepContext) -> StepResult:
    """Deploy the merged SHA to the staging target and poll it to READY/ERROR/CANCELED/timeout."""
    settings = ctx.settings
    project = str(settings.VERCEL_PROJECT_ID)
    target = settings.VERCEL_TARGET
    poll = float(ctx.option("poll_seconds", settings.DEPLOY_POLL_SECONDS))
    limit = float(ctx.option("timeout_seconds", settings.DEPLOY_TIMEOUT_SECONDS))
    merged = ctx.release.data.get("steps", {}).get("merge") or {}
    sha = merged.get("sha") or ctx.release.git_sha
    if not sha:
        return StepResult.fail(
            "No Git SHA to deploy: the merge step recorded none and the release has no Git SHA."
        )
    sha = str(sha)
    hook = settings.secret("VERCEL_DEPLOY_HOOK_URL")
    start = time.monotonic()
    data: dict[str, Any] = {"sha": sha, "reused": False}
    async with vercel.vercel_client(settings) as client:
        try:
            existing = await vercel.find_deployment_for_sha(client, project, sha, target)
            reused = existing is not None and vercel.deployment_state(existing) in vercel.ACTIVE_STATES
            if existing is not None and reused:
                dep = existing
            elif hook:
                await vercel.trigger_hook(client, hook)
                found = await _find_after_hook(ctx, client, project, sha, target, poll, existing)
                if found is None:
                    return StepResult.fail(
                        f"The deploy hook was triggered but no deployment of {sha[:7]} appeared within "
                        f"{min(HOOK_FIND_SECONDS, limit):g}s; the hook builds its branch's head, "
                        "which may not be this SHA.",
                        data=data,
                    )
                dep = found
            else:
                ref = settings.STAGING_BRANCH
                dep = await vercel.create_deployment(
                    client, project, sha, ref, target, repo=settings.GITHUB_REPOSITORY,
                    meta={"releaseId": str(ctx.release.id)} if ctx.release.id is not None else None,
                )
            dep_id = vercel.deployment_id(dep)
            data = _deploy_data(dep, sha, reused)
            await ctx.progress(f"{'reusing' if reused else 'created'} {dep_id} for {sha[:7]}")
            while True:
                dep = await vercel.get_deployment(client, dep_id)
                data = _deploy_data(dep, sha, reused)
                state = data["state"]
                elapsed = time.monotonic() - start
                if state in vercel.TERMINAL_STATES:
                    break
                if elapsed >= limit:
                    return StepResult.fail(
                        f"Deployment {dep_id} still {state} after {limit:g} s.",
                        links=_deploy_links(data), data=data,
                    )
                await ctx.progress(f"{state} · {elapsed:.0f}s")
                await asyncio.sleep(min(poll, max(limit - elapsed, 0.0)))
        except ProviderError as exc:
            return StepResult.fail(
                f"Vercel deployment of {sha[:7]} failed to start or be read: {exc}",
                links=_deploy_links(data), data=data,
            )
        took = time.monotonic() - start
        links = _deploy_links(data)
        if state == "READY":
            again = " (reused the existing deployment)" if reused else ""
            deployed = f"Deployed {sha[:7]} to {data['url']} in {took:.0f}s{again}"
            domain = settings.staging_domain
            try:
                serving = await _point_domain(ctx, client, domain, dep_id, data)
            except ProviderError as exc:
                return StepResult.fail(
                    f"{deployed}, but {domain} could not be pointed at it: {exc}",
                    links=links, data=data,
                )
            created = f"Deployment `{dep_id}` created {data['created_at']}, ready {data['ready_at']}."
            return StepResult.ok(f"{deployed}; {serving}", details=f"{created}\n{serving}.",
                                 links=links, data=data)
    if state == "ERROR":
        reason = dep.get("errorMessage") or dep.get("readyStateReason") or dep.get("errorCode")
        because = f": {reason}" if reason else ""
        return StepResult.fail(f"Vercel build of {sha[:7]} failed{because}", links=links, data=data)
    return StepResult.fail(f"Vercel deployment {dep_id} was {state.lower()}.", links=links, data=data)


async def _point_domain(
    ctx: StepContext, client: Any, domain: str | None, dep_id: str, data: dict[str, Any]
) -> str:
    """Make staging's domain serve `dep_id`: look the alias up, re-point it when it is elsewhere.

    A reused deployment keeps whatever the domain pointed at since (after a rollback, the
    rolled-back-to build), and Vercel only assigns a domain automatically to new deployments, so
    the alias is checked after every READY deployment. Records `alias`, `alias_previous` (the
    deployment it pointed at before) and `alias_repointed` in `data`; says what it did.
    """
    if not domain:
        return "no staging domain to check (STAGING_DOMAIN and STAGING_URL are not set)"
    data["alias"] = domain
    alias = await vercel.get_alias(client, domain)
    before = vercel.alias_deployment_id(alias) if alias else None
    data["alias_previous"] = before
    if before == dep_id:
        data["alias_repointed"] = False
        return f"{domain} already served it"
    await ctx.progress(f"pointing {domain} at {dep_id}")
    await vercel.assign_alias(client, dep_id, domain)
    data["alias_repointed"] = True
    return f"{domain} re-pointed from {before}" if before else f"{domain} pointed at it"


async def _find_after_hook(
    ctx: StepContext,
    client: Any,
    project: str,
    sha: str,
    target: str,
    poll: float,
    before: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """Poll briefly for the deployment the hook started (a new one for `sha`)."""
    old_id = vercel.deployment_id(before) if before else None
    deadline = time.monotonic() + min(
        HOOK_FIND_SECONDS, float(ctx.option("timeout_seconds", ctx.settings.DEPLOY_TIMEOUT_SECONDS))
    )
    while True:
        found = await vercel.find_deployment_for_sha(client, project, sha, target)
        if found is not None and vercel.deployment_id(found) != old_id:
            return found
        if time.monotonic() >= deadline:
            return None
        await ctx.progress("waiting for the deploy hook's deployment")
        await asyncio.sleep(max(poll, 0.01))


# --- build logs ------------------------------------------------------------------------------


def _code(lines: list[str]) -> str:
    shown = [line[:LINE_WIDTH].replace("```", "'''") for line in lines[:MAX_SHOWN_LINES]]
    more = len(lines) - len(shown)
    if more > 0:
        shown.append(f"... and {more} more")
    return "```\n" + "\n".join(shown) + "\n```"


@step(
    "build_logs",
    title="Check build logs (PostgREST/GoTrue)",
    phase="deploy",
    requires=("VERCEL_TOKEN", "VERCEL_PROJECT_ID"),
    describe="Read the deployment's build log for PostgREST/GoTrue connection lines and errors; "
    "check Supabase auth/rest/db health when SUPABASE_ACCESS_TOKEN and SUPABASE_PROJECT_REF are set "
    "(healthy auth and rest stand in for connection lines a build does not print).",
)
async def run_build_logs(ctx: StepContext) -> StepResult:
    """Every BUILD_LOG_SUCCESS_PATTERNS regex matches a line; no line is an error.

    An error line matches BUILD_LOG_ERROR_PATTERNS or is one Vercel marks as an error (a `fatal`
    event, level `error`). Many builds print no PostgREST/GoTrue lines at all (nothing connects to
    Supabase while building): when Supabase's own health says auth and rest are healthy, missing
    connection lines are a warning, not a failure.
    """
    settings = ctx.settings
    deployed = ctx.release.data.get("steps", {}).get("deploy") or {}
    dep_id = deployed.get("deployment_id")
    if not dep_id:
        return StepResult.fail("No deployment recorded by the deploy step.")
    try:
        success = [re.compile(p) for p in settings.BUILD_LOG_SUCCESS_PATTERNS]
        errors = [re.compile(p) for p in settings.BUILD_LOG_ERROR_PATTERNS]
    except re.error as exc:
        return StepResult.fail(f"A build log pattern is not a valid regex: {exc}")
    async with vercel.vercel_client(settings) as client:
        try:
            log = await vercel.build_log(client, str(dep_id))
        except ProviderError as exc:
            return StepResult.fail(f"Could not read the build log of {dep_id}: {exc}")
    lines = [ctx.redact(line.text) for line in log]
    matched: list[str] = []
    missing: list[str] = []
    for pattern in success:
        hit = next((line for line in lines if pattern.search(line)), None)
        if hit is None:
            missing.append(pattern.pattern)
        elif hit not in matched:
            matched.append(hit)
    offending = [text for text, line in zip(lines, log, strict=True)
                 if line.is_error or any(p.search(text) for p in errors)]
    problems: list[str] = []
    warnings: list[str] = []
    details: list[str] = []
    if matched:
        details.append("*Connection lines:*\n" + _code(matched))
    if missing:
        details.append("*No line matched:*\n" + "\n".join(f"• `{p}`" for p in missing))
    if offending:
        problems.append(f"{len(offending)} error line(s)")
        details.append("*Error lines:*\n" + _code(offending))
    data: dict[str, Any] = {
        "deployment_id": dep_id, "lines": len(lines), "matched": matched,
        "missing_patterns": missing, "error_lines": offending[:MAX_SHOWN_LINES],
    }
    ref = settings.SUPABASE_PROJECT_REF
    healthy: set[str] = set()
    if settings.secret("SUPABASE_ACCESS_TOKEN") and ref:
        try:
            async with supabase_api.supabase_client(settings) as sb:
                health = await supabase_api.project_health(sb, ref, ("auth", "rest", "db"))
        except ProviderError as exc:
            problems.append("Supabase health unavailable")
            details.append(f"Supabase health check failed: {exc}")
        else:
            rows = [[h.name, "yes" if h.healthy else "no", h.status] for h in health]
            details.append("*Supabase services:*\n" + table(["service", "healthy", "status"], rows))
            data["supabase_health"] = {h.name: h.status for h in health}
            healthy = {h.name for h in health if h.healthy}
            for h in health:
                if not h.healthy:
                    why = f" ({h.error})" if h.error else ""
                    (problems if h.name in ("auth", "rest") else warnings).append(
                        f"Supabase {h.name} is {h.status}{why}"
                    )
    elif missing:
        details.append("Set SUPABASE_ACCESS_TOKEN and SUPABASE_PROJECT_REF and the Supabase auth/rest "
                       "health can stand in for connection lines the build does not print.")
    if missing:
        if {"auth", "rest"} <= healthy and not problems:
            warnings.insert(0, f"no line matched {len(missing)} expected pattern(s); "
                            "Supabase auth and rest answer healthy")
        else:
            problems.insert(0, f"{len(missing)} expected line(s) missing")
    tail = "\n".join(lines[-20:])
    links = [Link(label="Vercel inspector", url=deployed["inspector_url"])] if deployed.get(
        "inspector_url") else []
    body = "\n\n".join(details)
    if problems:
        return StepResult.fail(
            "Build log check failed: " + "; ".join(problems + warnings),
            details=body, links=links, output_tail=tail, data=data,
        )
    if warnings:
        return StepResult.warn(
            "Build log has no error lines, but " + "; ".join(warnings), details=body, links=links,
            data=data,
        )
    return StepResult.ok(
        f"Build log has all {plural(len(success), 'expected line')} and no error lines "
        f"({plural(len(lines), 'line')})",
        details=body, links=links, data=data,
    )
