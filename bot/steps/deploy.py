"""The `deploy` step (guide section 2, "Deploy Application Code"): deploy the merged SHA on Vercel.

It creates (or, when retried, reuses) the Vercel deployment of the merged SHA and polls it until
it is READY, ERROR or CANCELED or DEPLOY_TIMEOUT_SECONDS pass; once it is READY, staging's domain
(STAGING_DOMAIN, else STAGING_URL's host) is made to point at it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from bot.providers import vercel
from bot.providers.http import ProviderError
from bot.runbook.model import Link, StepResult
from bot.runbook.step import StepContext, StepDef

HOOK_FIND_SECONDS = 60.0


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


STEP = StepDef(
    name="deploy",
    title="Deploy to Vercel",
    requires=("VERCEL_TOKEN", "VERCEL_PROJECT_ID"),
    requires_any=(("GITHUB_REPOSITORY",), ("VERCEL_DEPLOY_HOOK_URL",)),
    timeout=None,
    describe="Create (or reuse) the Vercel deployment of the merged SHA, wait until it is READY, and "
             "point the staging domain at it.",
    run=run_deploy,
)
