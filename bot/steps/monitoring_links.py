"""The `monitoring_links` step: the release log's "Post-Deploy Monitoring Links" field, filled
from the MONITORING_LINKS templates.
"""

from __future__ import annotations

import re
import string

from bot.runbook.model import Link, StepResult
from bot.runbook.step import StepContext, StepDef


def _placeholders(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError:
        return ["(malformed braces)"]


def _link_values(ctx: StepContext) -> dict[str, str]:
    settings = ctx.settings
    deploy = (ctx.release.data.get("steps") or {}).get("deploy") or {}
    url = str(deploy.get("url") or "")
    if url and not re.match(r"^https?://", url):
        url = f"https://{url}"
    values = {
        "inspector_url": str(deploy.get("inspector_url") or ""),
        "deployment_url": url,
        "posthog_host": settings.POSTHOG_HOST or "",
        "posthog_project_id": settings.POSTHOG_PROJECT_ID or "",
        "staging_url": settings.STAGING_URL or "",
        "release_id": str(ctx.release.id) if ctx.release.id is not None else "",
        "sha": ctx.release.git_sha or str(deploy.get("sha") or ""),
    }
    return {name: value for name, value in values.items() if value}


async def monitoring_links(ctx: StepContext) -> StepResult:
    """Build the release log's monitoring links from the templates."""
    templates = [str(t) for t in ctx.option("links", ctx.settings.MONITORING_LINKS)]
    values = _link_values(ctx)
    links: list[Link] = []
    notes: list[str] = []
    for number, entry in enumerate(templates, start=1):
        label, sep, template = entry.partition("|")
        if not sep:
            label, template = f"Link {number}", entry
        label, template = label.strip(), template.strip()
        missing = [name for name in _placeholders(template) if name not in values]
        if missing:
            notes.append(f"{label}: left out, no value for "
                         + ", ".join("{" + name + "}" for name in missing))
            continue
        links.append(Link(label=label, url=template.format(**values)))
    lines = [f"{link.label}: {link.url}" for link in links]
    details = "\n".join([*(f"• <{link.url}|{link.label}>" for link in links),
                         *(f"_{note}_" for note in notes)])
    data = {"links": [link.model_dump() for link in links], "left_out": notes}
    if not links:
        why = "; ".join(notes) if notes else "MONITORING_LINKS is empty"
        return StepResult.warn(f"No monitoring links could be built ({why})", details=details,
                               data=data)
    summary = f"{len(links)} monitoring link{'s' if len(links) != 1 else ''}"
    if notes:
        summary += f" ({len(notes)} left out)"
    return StepResult.ok(summary, details=details, links=links, data=data,
                         fields={"Post-Deploy Monitoring Links": "\n".join(lines)})


STEP = StepDef(
    name="monitoring_links",
    title="Post-deploy monitoring links",
    timeout=30,
    describe="Fill 'Post-Deploy Monitoring Links' from MONITORING_LINKS templates with the "
             "deployment, PostHog and staging URLs.",
    run=monitoring_links,
)
