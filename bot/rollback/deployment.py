"""The deployment revert: point the staging alias back at the previous good deployment (or
Vercel's production rollback), and find that deployment when the release log does not name it."""

from __future__ import annotations

from typing import Any

from bot.config import Settings
from bot.providers import vercel
from bot.rollback.model import DEPLOYMENT, ActionResult, DeploymentRef, Plan, deployment_of
from bot.runbook.model import Link, Outcome, Release

NO_CREDENTIALS = ("VERCEL_TOKEN", "VERCEL_PROJECT_ID")


def https(url: str | None) -> str | None:
    """Vercel's bare host names as URLs."""
    if not url:
        return None
    return url if url.startswith(("http://", "https://")) else f"https://{url}"


def ref_from_vercel(dep: dict[str, Any], source: str) -> DeploymentRef:
    """A deployment as Vercel describes it."""
    return DeploymentRef(id=vercel.deployment_id(dep), url=https(dep.get("url")),
                         inspector_url=dep.get("inspectorUrl"), sha=vercel.deployment_sha(dep),
                         source=source)


async def vercel_target(release: Release, settings: Settings
                        ) -> tuple[DeploymentRef | None, str | None]:
    """The previous READY deployment of the target on Vercel, or why there is none."""
    missing = settings.missing(NO_CREDENTIALS)
    if missing:
        return None, f"no earlier successful release recorded a deployment, and {', '.join(missing)} " \
                     "not set to ask Vercel"
    async with vercel.vercel_client(settings) as client:
        found = await _previous_ready(client, release, settings)
        if found is None:
            return None, ("no earlier successful release recorded a deployment and Vercel has "
                          f"no earlier READY deployment for {settings.VERCEL_TARGET}")
        full = await vercel.get_deployment(client, vercel.deployment_id(found))
    return ref_from_vercel(full, "Vercel"), None


async def _previous_ready(client: Any, release: Release, settings: Settings
                          ) -> dict[str, Any] | None:
    """Before the release's own deployment, else the newest READY one of another SHA."""
    project = str(settings.VERCEL_PROJECT_ID)
    target = settings.VERCEL_TARGET  # production included: only production deployments
    current = deployment_of(release)
    if current is not None:
        found: dict[str, Any] | None = await vercel.previous_ready_deployment(
            client, project, target, current.id)
        return found
    for item in await vercel.list_deployments(client, project, state="READY"):
        sha = vercel.deployment_sha(item)
        if vercel.target_matches(item, target) and (not release.git_sha or sha != release.git_sha):
            return dict(item)
    return None


async def revert_deployment(plan: Plan, reverted: DeploymentRef | None, reason: str,
                            settings: Settings) -> ActionResult:
    """Move staging (or production) back to the plan's target deployment."""
    missing = settings.missing(NO_CREDENTIALS)
    if missing:
        return ActionResult(DEPLOYMENT, Outcome.SKIPPED,
                            f"Not reverted: {', '.join(missing)} not set.")
    if settings.VERCEL_TARGET != "production" and not settings.staging_domain:
        return ActionResult(DEPLOYMENT, Outcome.FAIL, "Not reverted: no staging domain to move "
                            "(set STAGING_DOMAIN or STAGING_URL).")
    target = plan.target
    if target is None:
        target, problem = await vercel_target(plan.release, settings)
        if target is None:
            return ActionResult(DEPLOYMENT, Outcome.FAIL,
                                f"No deployment to go back to: {problem}.")
    async with vercel.vercel_client(settings) as client:
        full = await vercel.get_deployment(client, target.id)
        fresh = ref_from_vercel(full, target.source)
        refusal = _refusal(fresh, vercel.deployment_state(full), reverted, target)
        if refusal is not None:
            return refusal
        how, data = await _move(client, fresh, reason, settings)
    return _moved(fresh, reverted, how, data)


def _refusal(fresh: DeploymentRef, state: str, reverted: DeploymentRef | None,
             target: DeploymentRef) -> ActionResult | None:
    """Why the target cannot be served again, or None."""
    if reverted is not None and fresh.id == reverted.id:
        return ActionResult(DEPLOYMENT, Outcome.FAIL,
                            f"Nothing to go back to: {fresh.id} is the release's own "
                            "deployment (the same SHA was deployed before).")
    if state != "READY":
        return ActionResult(DEPLOYMENT, Outcome.FAIL,
                            f"Deployment {target.id} is {state}, not READY; nothing was moved.")
    return None


async def _move(client: Any, fresh: DeploymentRef, reason: str, settings: Settings
                ) -> tuple[str, dict[str, Any]]:
    """Production rollback, or the staging alias moved; (what happened, its data)."""
    if settings.VERCEL_TARGET == "production":
        await vercel.rollback_production(client, str(settings.VERCEL_PROJECT_ID), fresh.id, reason)
        return (f"Vercel rolled production back to {fresh.id}",
                {"method": "rollback", "deployment_id": fresh.id})
    domain = settings.staging_domain
    assert domain is not None
    answer = await vercel.assign_alias(client, fresh.id, domain)
    verb = "already pointed" if answer.get("unchanged") else "now points"
    return (f"{domain} {verb} at {fresh.id}",
            {"method": "alias", "alias": domain, "deployment_id": fresh.id,
             "previous_deployment_id": answer.get("oldDeploymentId")})


def _moved(fresh: DeploymentRef, reverted: DeploymentRef | None, how: str,
           data: dict[str, Any]) -> ActionResult:
    """The success, with links to both deployments."""
    links = [Link(label=f"Now serving: {fresh.id}", url=fresh.url)] if fresh.url else []
    if reverted is not None and reverted.url:
        links.insert(0, Link(label=f"Reverted: {reverted.id}", url=reverted.url))
    where = f" ({fresh.source})" if fresh.source else ""
    return ActionResult(DEPLOYMENT, Outcome.OK, f"{how}{where}.", links=links, data=data,
                        serving=fresh)
