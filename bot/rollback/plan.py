"""What a rollback of one release would do: the deployment to go back to, the migrations the
release applied, the backups and recovery window, the staging Redis key count.

The deployment to go back to is the one of the last successful release before this one, else
the previous READY deployment of the staging target on Vercel. `make_plan(..., quick=True)`
reads the release log only (no network), for a form that must open within Slack's three seconds;
each network lookup of a full plan has a short timeout.
"""

from __future__ import annotations

import asyncio

from bot.config import Settings
from bot.providers import redis_info, supabase_api
from bot.providers.http import ProviderError
from bot.rollback.backup import describe_backups
from bot.rollback.deployment import vercel_target
from bot.rollback.model import Plan, applied_migrations, deployment_of, schema_command_text
from bot.runbook.model import Release

LOOKUP_SECONDS = 2.5  # each network lookup of a plan shown in the modal


async def make_plan(release: Release, previous: Release | None, settings: Settings, *,
                    quick: bool = False) -> Plan:
    """What each action would do; `previous` is the last successful release before this one."""
    plan = quick_plan(release, previous, settings)
    if quick:
        if plan.target is None:
            plan.target_problem = "looking it up on Vercel…"
        return plan
    await asyncio.gather(_plan_target(plan, settings), _plan_backups(plan, settings),
                         _plan_redis(plan, settings))
    plan.complete = True
    return plan


def quick_plan(release: Release, previous: Release | None, settings: Settings) -> Plan:
    """The plan from the release log and the settings alone."""
    plan = Plan(release=release, current=deployment_of(release),
                migrations=applied_migrations(release),
                project_ref=settings.SUPABASE_PROJECT_REF)
    plan.schema_command = schema_command_text(settings, max(len(plan.migrations), 1))
    if previous is not None:
        plan.target = deployment_of(previous)
    if settings.STAGING_REDIS_URL is not None:
        plan.redis_text = f"on {redis_info.where(settings.secret('STAGING_REDIS_URL'))}"
    else:
        plan.redis_text = "STAGING_REDIS_URL is not set"
    if not settings.SUPABASE_ACCESS_TOKEN or not settings.SUPABASE_PROJECT_REF:
        plan.backups_text = "SUPABASE_ACCESS_TOKEN and SUPABASE_PROJECT_REF are not set"
    return plan


async def _plan_target(plan: Plan, settings: Settings) -> None:
    if plan.target is not None:
        plan.target_problem = None
        return
    try:
        async with asyncio.timeout(LOOKUP_SECONDS):
            plan.target, plan.target_problem = await vercel_target(plan.release, settings)
    except TimeoutError:
        plan.target_problem = f"Vercel did not answer within {LOOKUP_SECONDS:g}s"
    except ProviderError as exc:
        plan.target_problem = str(exc)


async def _plan_backups(plan: Plan, settings: Settings) -> None:
    if not settings.SUPABASE_ACCESS_TOKEN or not settings.SUPABASE_PROJECT_REF:
        return
    try:
        async with asyncio.timeout(LOOKUP_SECONDS), \
                supabase_api.supabase_client(settings) as client:
            found = await supabase_api.list_backups(client, settings.SUPABASE_PROJECT_REF)
    except TimeoutError:
        plan.backups_text = f"the backup list did not arrive within {LOOKUP_SECONDS:g}s"
        return
    except ProviderError as exc:
        plan.backups_text = f"cannot list backups: {exc}"
        return
    plan.backups_text = describe_backups(found, plan.release.started_at)


async def _plan_redis(plan: Plan, settings: Settings) -> None:
    if settings.STAGING_REDIS_URL is None:
        return
    url = settings.secret("STAGING_REDIS_URL")
    try:
        plan.redis_keys = await redis_info.count_keys(url, min(LOOKUP_SECONDS, 2.0))
        plan.redis_text = f"{plan.redis_keys} keys now on {redis_info.where(url)}"
    except ProviderError as exc:
        plan.redis_text = f"cannot count keys: {exc}"
