"""Vercel's REST API: create and watch deployments, read build logs, move aliases, roll back.

`vercel_client()` makes a client for VERCEL_API_URL with the bearer token and, when
VERCEL_TEAM_ID is set, `teamId` as a query parameter on every request. Staging on Vercel is a
Preview deployment (VERCEL_TARGET `preview`, or `preview:<branch>` for a branch with its own
domain) or a custom environment (VERCEL_TARGET = its id or slug); `target_matches()` says
whether a deployment belongs to that target. Every function raises `ProviderError` with a plain
sentence on failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from bot.config import Settings
from bot.providers.http import ProviderError, json_body, json_object, make_client, send

PROVIDER = "Vercel"
AUTH_HINT = "the token was rejected or cannot access this project/team (check VERCEL_TOKEN, VERCEL_TEAM_ID)"
TERMINAL_STATES = ("READY", "ERROR", "CANCELED", "DELETED")
ACTIVE_STATES = ("INITIALIZING", "QUEUED", "BUILDING", "READY")


def vercel_client(settings: Settings) -> httpx.AsyncClient:
    """A client for VERCEL_API_URL; every request carries `teamId` when VERCEL_TEAM_ID is set."""
    client = make_client(
        settings.VERCEL_API_URL,
        token=settings.secret("VERCEL_TOKEN") or None,
        timeout=settings.HTTP_TIMEOUT_SECONDS,
    )
    if settings.VERCEL_TEAM_ID:
        client.params = client.params.set("teamId", settings.VERCEL_TEAM_ID)
    return client


def _seg(value: str) -> str:
    return quote(value, safe="")


def parse_target(target: str) -> tuple[str, str | None]:
    """VERCEL_TARGET as (kind, value): ("preview", None), ("preview", branch), ("production", None)
    or ("custom", slug/id)."""
    target = (target or "preview").strip()
    if target == "preview":
        return "preview", None
    if target == "production":
        return "production", None
    if target.startswith("preview:"):
        branch = target.partition(":")[2].strip()
        return "preview", branch or None
    return "custom", target


def target_matches(deployment: dict[str, Any], target: str | None) -> bool:
    """Whether a deployment (list item or full) was made for VERCEL_TARGET `target`."""
    if target is None:
        return True
    kind, value = parse_target(target)
    custom = deployment.get("customEnvironment")
    if kind == "custom":
        return isinstance(custom, dict) and value in (custom.get("id"), custom.get("slug"))
    if kind == "production":
        return not custom and deployment.get("target") == "production"
    if custom or deployment.get("target") not in (None, "preview"):
        return False
    if value is None:
        return True
    meta = deployment.get("meta")
    ref = meta.get("githubCommitRef") if isinstance(meta, dict) else None
    return ref == value


def deployment_id(deployment: dict[str, Any]) -> str:
    """The id of a deployment from either shape (`id` in full bodies, `uid` in lists)."""
    return str(deployment.get("id") or deployment.get("uid") or "")


def deployment_state(deployment: dict[str, Any]) -> str:
    """`readyState` (or `state` in list items)."""
    return str(deployment.get("readyState") or deployment.get("state") or "UNKNOWN")


def deployment_sha(deployment: dict[str, Any]) -> str | None:
    """The Git commit a deployment was built from, from its meta or gitSource."""
    meta = deployment.get("meta")
    if isinstance(meta, dict) and meta.get("githubCommitSha"):
        return str(meta["githubCommitSha"])
    source = deployment.get("gitSource")
    if isinstance(source, dict) and source.get("sha"):
        return str(source["sha"])
    return None


def created_ms(deployment: dict[str, Any]) -> int:
    """Creation time in epoch milliseconds (0 when absent)."""
    value = deployment.get("createdAt") or deployment.get("created") or 0
    return int(value) if isinstance(value, int | float) else 0


async def create_deployment(
    client: httpx.AsyncClient,
    project: str,
    sha: str,
    ref: str,
    target: str,
    *,
    repo: str | None = None,
    meta: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Create a deployment of commit `sha` on branch `ref` from GitHub repo `repo` (owner/name).

    `target` is VERCEL_TARGET: `preview` deploys a Preview of `ref`; `preview:<branch>` deploys a
    Preview of that branch (so its branch domain follows); anything else is a custom environment
    id or slug, sent as `customEnvironmentSlugOrId`.
    """
    kind, value = parse_target(target)
    if kind == "preview" and value:
        ref = value
    if not repo or "/" not in repo:
        raise ProviderError(
            PROVIDER, "creating a deployment from Git needs the GitHub repository (owner/name)"
        )
    org, _, name = repo.partition("/")
    body: dict[str, Any] = {
        "name": project,
        "project": project,
        "gitSource": {"type": "github", "org": org, "repo": name, "ref": ref, "sha": sha},
    }
    if kind == "custom" and value:
        body["customEnvironmentSlugOrId"] = value
    if kind == "production":
        body["target"] = "production"
    if meta:
        body["meta"] = meta
    response = await send(
        client, "POST", "/v13/deployments", provider=PROVIDER, auth_hint=AUTH_HINT, json=body,
        idempotent=False
    )
    created = json_object(json_body(response, PROVIDER), PROVIDER, "the new deployment")
    if not deployment_id(created):
        raise ProviderError(PROVIDER, "answered the new deployment without an id")
    return created


async def trigger_hook(client: httpx.AsyncClient, hook_url: str) -> dict[str, Any]:
    """POST the deploy hook (a secret URL, never sent our token nor echoed in errors)."""
    parts = urlsplit(hook_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProviderError(PROVIDER, "VERCEL_DEPLOY_HOOK_URL is not an http(s) URL")
    timeout = client.timeout.read or 15.0
    async with make_client(f"{parts.scheme}://{parts.netloc}", timeout=timeout) as hook_client:
        try:
            response = await send(
                hook_client, "POST", parts.path + (f"?{parts.query}" if parts.query else ""),
                provider=PROVIDER, auth_hint="the deploy hook was refused", idempotent=False,
            )
        except ProviderError as exc:
            status = f" ({exc.status})" if exc.status else ""
            raise ProviderError(
                PROVIDER, f"the deploy hook could not be triggered{status}; check VERCEL_DEPLOY_HOOK_URL",
                exc.status,
            ) from None
    try:
        body = response.json()
    except ValueError:
        return {}
    job = body.get("job") if isinstance(body, dict) else None
    return job if isinstance(job, dict) else {}


async def list_deployments(
    client: httpx.AsyncClient, project_id: str, **filters: str | int
) -> list[dict[str, Any]]:
    """`GET /v6/deployments` of one project, newest first, with the documented filters."""
    params: dict[str, str | int] = {"projectId": project_id, "limit": 100, **filters}
    response = await send(
        client, "GET", "/v6/deployments", provider=PROVIDER, auth_hint=AUTH_HINT, params=params
    )
    body = json_object(json_body(response, PROVIDER), PROVIDER, "the deployment list")
    items = body.get("deployments")
    if not isinstance(items, list):
        raise ProviderError(PROVIDER, "answered the deployment list without `deployments`")
    found = [item for item in items if isinstance(item, dict)]
    found.sort(key=created_ms, reverse=True)
    return found


async def find_deployment_for_sha(
    client: httpx.AsyncClient, project_id: str, sha: str, target: str | None = None
) -> dict[str, Any] | None:
    """The newest deployment of commit `sha` (its meta `githubCommitSha`) for `target`, or None."""
    for item in await list_deployments(client, project_id, sha=sha):
        item_sha = deployment_sha(item)
        same = bool(item_sha) and (item_sha == sha or (len(sha) >= 7 and str(item_sha).startswith(sha)))
        if same and target_matches(item, target):
            return item
    return None


async def get_deployment(client: httpx.AsyncClient, id_or_url: str) -> dict[str, Any]:
    """`GET /v13/deployments/{idOrUrl}`."""
    response = await send(
        client, "GET", f"/v13/deployments/{_seg(id_or_url)}", provider=PROVIDER, auth_hint=AUTH_HINT
    )
    return json_object(json_body(response, PROVIDER), PROVIDER, "the deployment")


@dataclass(frozen=True)
class BuildLine:
    """One line of a build log: its event `type` (stdout, stderr, command, fatal, ...) and the
    event's `level` (error, warning) when it has one."""

    text: str
    kind: str = "stdout"
    level: str | None = None

    @property
    def is_error(self) -> bool:
        """Vercel itself marks the line as an error (a `fatal` event, or level `error`)."""
        return self.kind == "fatal" or self.level == "error"


async def build_log(client: httpx.AsyncClient, id_or_url: str) -> list[BuildLine]:
    """The build log of a deployment, oldest first (`GET /v3/deployments/{idOrUrl}/events`).

    Events come in the spec's two shapes: `{type, created, payload: {text, ...}}` and the flat
    `{type, created, text, level?, ...}`; each line of an event's text becomes a `BuildLine`.
    """
    response = await send(
        client,
        "GET",
        f"/v3/deployments/{_seg(id_or_url)}/events",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
        params={"direction": "forward", "limit": -1, "builds": 1},
    )
    body = json_body(response, PROVIDER)
    if body is None:
        return []
    if not isinstance(body, list):
        raise ProviderError(PROVIDER, "answered the build events with something other than a list")
    lines: list[BuildLine] = []
    for event in body:
        if not isinstance(event, dict):
            continue
        payload = event.get("payload")
        text = payload.get("text") if isinstance(payload, dict) else None
        if text is None:
            text = event.get("text")
        if not isinstance(text, str):
            continue
        kind = str(event.get("type") or "stdout")
        level = event.get("level")
        level = str(level) if isinstance(level, str) else None
        lines.extend(BuildLine(line, kind, level) for line in text.splitlines() or [""])
    return lines


async def build_events(client: httpx.AsyncClient, id_or_url: str) -> list[str]:
    """The build log of a deployment as text lines, oldest first."""
    return [line.text for line in await build_log(client, id_or_url)]


async def previous_ready_deployment(
    client: httpx.AsyncClient, project_id: str, target: str | None, before_id: str
) -> dict[str, Any] | None:
    """The newest READY deployment for `target` created before deployment `before_id`."""
    before = await get_deployment(client, before_id)
    cutoff = created_ms(before)
    filters: dict[str, str | int] = {"state": "READY"}
    if cutoff:
        filters["until"] = cutoff
    for item in await list_deployments(client, project_id, **filters):
        if deployment_id(item) == before_id or deployment_state(item) != "READY":
            continue
        if cutoff and created_ms(item) >= cutoff:
            continue
        if target_matches(item, target):
            return item
    return None


async def get_alias(client: httpx.AsyncClient, id_or_alias: str) -> dict[str, Any] | None:
    """`GET /v4/aliases/{idOrAlias}`: the alias (a domain or alias id), or None when it is unknown.

    The OpenAPI description types the 200 body as an array of aliases while the live API answers
    one object; both are accepted.
    """
    response = await send(
        client,
        "GET",
        f"/v4/aliases/{_seg(id_or_alias)}",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
        ok_statuses=(404,),
    )
    if response.status_code == 404:
        return None
    body = json_body(response, PROVIDER)
    if isinstance(body, list):
        body = next((item for item in body if isinstance(item, dict)), None)
        if body is None:
            return None
    return json_object(body, PROVIDER, "the alias")


def alias_deployment_id(alias: dict[str, Any]) -> str | None:
    """The deployment an alias points at (`deploymentId`, else `deployment.id`)."""
    value = alias.get("deploymentId")
    if not value:
        deployment = alias.get("deployment")
        value = deployment.get("id") if isinstance(deployment, dict) else None
    return str(value) if value else None


def alias_deployment_sha(alias: dict[str, Any]) -> str | None:
    """The Git commit of the aliased deployment, from its meta (a JSON string in the spec)."""
    deployment = alias.get("deployment")
    meta: Any = deployment.get("meta") if isinstance(deployment, dict) else None
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return None
    if isinstance(meta, dict) and meta.get("githubCommitSha"):
        return str(meta["githubCommitSha"])
    return None


async def assign_alias(client: httpx.AsyncClient, deployment_id: str, alias: str) -> dict[str, Any]:
    """Point `alias` (a domain) at a deployment (`POST /v2/deployments/{id}/aliases`)."""
    response = await send(
        client,
        "POST",
        f"/v2/deployments/{_seg(deployment_id)}/aliases",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
        ok_statuses=(409,),
        json={"alias": alias},
    )
    body = json_body(response, PROVIDER)
    if response.status_code == 409:
        error = body.get("error") if isinstance(body, dict) else None
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        if "already assigned to the given deployment" in message:
            return {"alias": alias, "unchanged": True}
        raise ProviderError(PROVIDER, f"409: {message or 'the alias is in use'}", 409)
    return json_object(body, PROVIDER, "the alias assignment")


async def rollback_production(
    client: httpx.AsyncClient, project_id: str, deployment_id: str, description: str
) -> None:
    """Roll production back to `deployment_id` (`POST /v1/projects/{id}/rollback/{deploymentId}`)."""
    await send(
        client,
        "POST",
        f"/v1/projects/{_seg(project_id)}/rollback/{_seg(deployment_id)}",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
        params={"description": description},
    )
