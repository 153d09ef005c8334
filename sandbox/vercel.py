"""Local emulator of the Vercel REST API endpoints the release bot uses.

Shapes and field names follow Vercel's OpenAPI description (`vercel-api.openapi.json`):
a project (`GET /v9/projects/{idOrName}`), the team (`GET /v2/teams/{teamId}`),
project env vars (`GET /v10/projects/{idOrName}/env`), deployments (`POST /v13/deployments`,
`GET /v13/deployments/{idOrUrl}`, `GET /v6/deployments`, `PATCH /v12/deployments/{id}/cancel`),
build events (`GET /v3/deployments/{idOrUrl}/events`), aliases (`POST|GET
/v2/deployments/{id}/aliases`, `GET /v4/aliases/{idOrAlias}`), production promote and rollback,
and deploy hooks (`/v1/integrations/deploy/{projectId}/{hookId}`, no auth, as Vercel documents).

A deployment advances one step each time it is read with `GET /v13/deployments/{idOrUrl}`,
as scripted by a `BuildScript`: QUEUED for `queued_polls` reads, BUILDING for `building_polls`
reads, then its `outcome` (READY, ERROR, CANCELED, or NEVER to keep building forever).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.server import new_app

READY = "READY"
ERROR = "ERROR"
CANCELED = "CANCELED"
NEVER = "NEVER"

DEFAULT_BUILD_LOG: tuple[tuple[str, str], ...] = (
    ("command", "Running build in Washington, D.C., USA (East) - iad1"),
    ("stdout", 'Running "npm run build"'),
    ("stdout", "PostgREST connection established"),
    ("stdout", "GoTrue connection ok"),
    ("stdout", "Compiled successfully"),
)


@dataclass
class BuildScript:
    """How a deployment's build plays out, counted in `GET /v13/deployments/{id}` reads.

    The creation response and the first `queued_polls` reads say QUEUED, the next
    `building_polls` reads BUILDING, then the outcome (NEVER keeps it BUILDING). With both
    counts 0 the deployment is finished as soon as it is created.
    """

    queued_polls: int = 1
    building_polls: int = 1
    outcome: str = READY
    log: list[tuple[str, str]] = field(default_factory=lambda: list(DEFAULT_BUILD_LOG))
    error_message: str = 'Command "npm run build" exited with 1'


@dataclass
class EnvVar:
    """A project environment variable; `value` is plaintext and never returned as such."""

    key: str
    value: str
    target: list[str] = field(default_factory=lambda: ["preview"])
    type: str = "encrypted"
    git_branch: str | None = None
    custom_environment_ids: list[str] = field(default_factory=list)
    id: str = ""
    created_at: int = 0
    updated_at: int = 0


@dataclass
class CustomEnvironment:
    """A Vercel custom environment such as `staging`."""

    id: str
    slug: str
    branch: str | None = None
    domains: list[str] = field(default_factory=list)


@dataclass
class Project:
    """A Vercel project with its env vars, custom environments and domains."""

    id: str
    name: str
    envs: list[EnvVar] = field(default_factory=list)
    custom_environments: list[CustomEnvironment] = field(default_factory=list)
    production_branch: str = "main"
    production_domains: list[str] = field(default_factory=list)
    branch_domains: dict[str, list[str]] = field(default_factory=dict)
    git_org: str = "acme"
    git_repo: str = "app"


@dataclass
class Deployment:
    """One deployment and its scripted build progress."""

    id: str
    project_id: str
    name: str
    url: str
    sha: str
    ref: str
    target: str | None
    created_at: int
    script: BuildScript
    custom_environment: CustomEnvironment | None = None
    meta: dict[str, str] = field(default_factory=dict)
    source: str = "git"
    polls: int = 0
    state: str = "QUEUED"
    building_at: int | None = None
    ready: int | None = None
    error_at: int | None = None
    canceled_at: int | None = None
    alias: list[str] = field(default_factory=list)
    alias_assigned_at: int | None = None


@dataclass
class DeployHook:
    """A deploy hook bound to a project and branch."""

    project_id: str
    ref: str


@dataclass
class VercelState:
    """In-memory Vercel account: projects, deployments, aliases and scripted builds."""

    token: str = "vercel-test-token"  # noqa: S105 - sandbox credential
    team_id: str | None = None
    team_slug: str = "acme"
    projects: dict[str, Project] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    alias_history: list[tuple[str, str]] = field(default_factory=list)
    build_script: BuildScript = field(default_factory=BuildScript)
    build_queue: list[BuildScript] = field(default_factory=list)
    branch_heads: dict[str, str] = field(default_factory=dict)
    head_resolver: Callable[[str], str | None] | None = None
    deploy_hooks: dict[str, DeployHook] = field(default_factory=dict)
    hook_jobs: list[dict[str, Any]] = field(default_factory=list)
    promotions: list[dict[str, Any]] = field(default_factory=list)
    auth_error_status: int = 401
    clock: Callable[[], float] = time.time
    seed: int = 7

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._alias_uids: dict[str, tuple[str, int]] = {}

    def now_ms(self) -> int:
        """The emulator clock in epoch milliseconds."""
        return int(self.clock() * 1000)

    def new_id(self, prefix: str = "", length: int = 24) -> str:
        """A random id in Vercel's style (`dpl_...`, `prj_...`)."""
        alphabet = string.ascii_letters + string.digits
        return prefix + "".join(self._rng.choice(alphabet) for _ in range(length))

    def add_project(self, name: str, project_id: str | None = None, **kwargs: Any) -> Project:
        """Create a project (id `prj_...` unless given)."""
        project = Project(id=project_id or self.new_id("prj_", 28), name=name, **kwargs)
        self.projects[project.id] = project
        return project

    def add_env(self, project: Project, key: str, value: str, **kwargs: Any) -> EnvVar:
        """Add an env var to `project`, filling in id and timestamps."""
        now = self.now_ms()
        env = EnvVar(key=key, value=value, **kwargs)
        env.id = env.id or self.new_id("", 16)
        env.created_at = env.created_at or now
        env.updated_at = env.updated_at or now
        project.envs.append(env)
        return env

    def find_project(self, id_or_name: str) -> Project | None:
        """A project by id or name."""
        if id_or_name in self.projects:
            return self.projects[id_or_name]
        return next((p for p in self.projects.values() if p.name == id_or_name), None)

    def find_deployment(self, id_or_url: str) -> Deployment | None:
        """A deployment by id or by URL (with or without scheme)."""
        if id_or_url in self.deployments:
            return self.deployments[id_or_url]
        host = id_or_url.removeprefix("https://").removeprefix("http://").rstrip("/")
        for deployment in self.deployments.values():
            if deployment.url == host or host in deployment.alias:
                return deployment
        alias_target = self.aliases.get(host)
        return self.deployments.get(alias_target) if alias_target else None

    def resolve_head(self, ref: str) -> str | None:
        """The head SHA of a branch, from `head_resolver` or `branch_heads`."""
        if self.head_resolver is not None:
            sha = self.head_resolver(ref)
            if sha:
                return sha
        return self.branch_heads.get(ref)

    def create_deployment(
        self,
        project: Project,
        *,
        sha: str,
        ref: str,
        target: str | None = None,
        custom_environment: CustomEnvironment | None = None,
        meta: dict[str, str] | None = None,
        source: str = "git",
    ) -> Deployment:
        """Create a deployment as the API would, taking the next scripted build."""
        script = self.build_queue.pop(0) if self.build_queue else _copy_script(self.build_script)
        dep_id = self.new_id("dpl_", 28)
        suffix = self.new_id("", 9).lower()
        deployment = Deployment(
            id=dep_id,
            project_id=project.id,
            name=project.name,
            url=f"{project.name}-{suffix}-{self.team_slug}.vercel.app",
            sha=sha,
            ref=ref,
            target=target,
            created_at=self.now_ms(),
            script=script,
            custom_environment=custom_environment,
            source=source,
            meta={
                "githubCommitSha": sha,
                "githubCommitRef": ref,
                "githubCommitOrg": project.git_org,
                "githubCommitRepo": project.git_repo,
                "githubDeployment": "1",
                **(meta or {}),
            },
        )
        self.deployments[dep_id] = deployment
        self._apply_progress(deployment)
        return deployment

    def advance(self, deployment: Deployment, polls: int = 1) -> Deployment:
        """Play `polls` more reads of the build script."""
        deployment.polls += polls
        self._apply_progress(deployment)
        return deployment

    def finish(self, deployment: Deployment) -> Deployment:
        """Run the build script to its end (no-op for NEVER)."""
        script = deployment.script
        return self.advance(deployment, script.queued_polls + script.building_polls + 1)

    def assign_alias(self, alias: str, deployment: Deployment) -> str | None:
        """Point `alias` at `deployment`; return the deployment it pointed at before."""
        old = self.aliases.get(alias)
        if old and old in self.deployments and alias in self.deployments[old].alias:
            self.deployments[old].alias.remove(alias)
        self.aliases[alias] = deployment.id
        if alias not in deployment.alias:
            deployment.alias.append(alias)
        self.alias_history.append((alias, deployment.id))
        self._alias_uids[alias] = (self.new_id("", 24), self.now_ms())
        return old

    def serving(self, alias: str) -> Deployment | None:
        """The deployment `alias` (a domain) points at now, or None."""
        dep_id = self.aliases.get(alias)
        return self.deployments.get(dep_id) if dep_id else None

    def serving_sha(self, alias: str) -> str | None:
        """The Git commit `alias` serves now (for a sandbox app that reports its commit)."""
        dep = self.serving(alias)
        return dep.sha if dep else None

    def alias_record(self, alias: str) -> tuple[str, int]:
        """The alias uid and creation time (ms)."""
        if alias not in self._alias_uids:
            self._alias_uids[alias] = (self.new_id("", 24), self.now_ms())
        return self._alias_uids[alias]

    def _apply_progress(self, deployment: Deployment) -> None:
        if deployment.state in (READY, ERROR, CANCELED):
            return
        script = deployment.script
        now = self.now_ms()
        phase = _phase(deployment.polls, script)
        if phase == "QUEUED":
            deployment.state = "QUEUED"
            return
        if deployment.building_at is None:
            deployment.building_at = now
        if phase == "BUILDING" or script.outcome == NEVER:
            deployment.state = "BUILDING"
            return
        deployment.state = script.outcome
        if script.outcome == READY:
            deployment.ready = now
            self._auto_alias(deployment)
        elif script.outcome == ERROR:
            deployment.error_at = now
        elif script.outcome == CANCELED:
            deployment.canceled_at = now

    def _auto_alias(self, deployment: Deployment) -> None:
        project = self.projects[deployment.project_id]
        branch_slug = deployment.ref.replace("/", "-").lower()
        deployment.alias.append(f"{project.name}-git-{branch_slug}-{self.team_slug}.vercel.app")
        domains: list[str] = []
        if deployment.target == "production":
            domains = project.production_domains
        elif deployment.custom_environment is not None:
            domains = deployment.custom_environment.domains
        else:
            domains = project.branch_domains.get(deployment.ref, [])
        for domain in domains:
            self.assign_alias(domain, deployment)
        deployment.alias_assigned_at = self.now_ms()


def _phase(polls: int, script: BuildScript) -> str:
    """QUEUED, BUILDING or DONE after `polls` reads (0 is the creation response)."""
    queued, building = script.queued_polls, script.building_polls
    if polls == 0:
        return "QUEUED" if queued > 0 else "BUILDING" if building > 0 else "DONE"
    if polls <= queued:
        return "QUEUED"
    return "BUILDING" if polls <= queued + building else "DONE"


def _copy_script(script: BuildScript) -> BuildScript:
    return BuildScript(
        script.queued_polls,
        script.building_polls,
        script.outcome,
        list(script.log),
        script.error_message,
    )


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _encrypted_placeholder(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.b64encode(b"enc:" + digest).decode()


STATE_KEY: web.AppKey[VercelState] = web.AppKey("vercel_state", VercelState)


def _check_auth(request: web.Request) -> web.Response | None:
    state = request.app[STATE_KEY]
    header = request.headers.get("Authorization", "")
    if not header:
        return _error(
            state.auth_error_status,
            "forbidden",
            "The request is missing an authentication token",
            missingToken=True,
        )
    if header != f"Bearer {state.token}":
        return _error(state.auth_error_status, "forbidden", "Not authorized", invalidToken=True)
    if state.team_id and request.query.get("teamId") != state.team_id:
        return _error(403, "forbidden", "You don't have permission to access this resource.")
    return None


@web.middleware
async def _auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/v1/integrations/deploy/"):
        return await handler(request)
    denied = _check_auth(request)
    if denied is not None:
        return denied
    response: web.StreamResponse = await handler(request)
    return response


def _env_json(env: EnvVar, decrypt: bool) -> dict[str, Any]:
    plain = decrypt and env.type in ("encrypted", "plain")
    body: dict[str, Any] = {
        "id": env.id,
        "key": env.key,
        "value": env.value if plain or env.type == "plain" else _encrypted_placeholder(env.value),
        "type": env.type,
        "target": env.target,
        "configurationId": None,
        "createdAt": env.created_at,
        "updatedAt": env.updated_at,
        "createdBy": "usr_sandbox",
        "decrypted": plain,
    }
    if env.type == "sensitive":
        body["value"] = ""
    if env.git_branch:
        body["gitBranch"] = env.git_branch
    if env.custom_environment_ids:
        body["customEnvironmentIds"] = env.custom_environment_ids
    return body


async def list_env(request: web.Request) -> web.Response:
    """`GET /v10/projects/{idOrName}/env`."""
    state = request.app[STATE_KEY]
    project = state.find_project(request.match_info["idOrName"])
    if project is None:
        return _error(404, "not_found", "Project not found")
    query = request.query
    envs = list(project.envs)
    if "gitBranch" in query:
        envs = [e for e in envs if e.git_branch in (None, query["gitBranch"])]
    custom_id = query.get("customEnvironmentId")
    slug = query.get("customEnvironmentSlug")
    if slug:
        match = next((c for c in project.custom_environments if c.slug == slug), None)
        custom_id = match.id if match else "env_unknown"
    if custom_id:
        envs = [e for e in envs if custom_id in e.custom_environment_ids]
    decrypt = query.get("decrypt") == "true"
    items = [_env_json(e, decrypt) for e in envs]
    return web.json_response({"envs": items, "pagination": {"count": len(items), "next": None, "prev": None}})


def _deployment_json(state: VercelState, dep: Deployment) -> dict[str, Any]:
    project = state.projects[dep.project_id]
    created = dep.created_at
    body: dict[str, Any] = {
        "id": dep.id,
        "name": dep.name,
        "url": dep.url,
        "inspectorUrl": f"https://vercel.com/{state.team_slug}/{dep.name}/{dep.id[4:]}",
        "readyState": dep.state,
        "status": dep.state,
        "type": "LAMBDAS",
        "createdAt": created,
        "buildingAt": dep.building_at or created,
        "bootedAt": created,
        "createdIn": "sfo1",
        "ownerId": state.team_id or "team_sandbox",
        "projectId": dep.project_id,
        "project": {"id": project.id, "name": project.name, "framework": "nextjs"},
        "plan": "pro",
        "public": False,
        "version": 2,
        "regions": ["iad1"],
        "routes": None,
        "env": [],
        "build": {"env": []},
        "projectSettings": {"framework": "nextjs", "buildCommand": None},
        "isInConcurrentBuildsQueue": False,
        "isInSystemBuildsQueue": False,
        "buildSkipped": False,
        "creator": {"uid": "usr_sandbox", "username": "release-bot"},
        "meta": dict(dep.meta),
        "target": dep.target,
        "source": dep.source,
        "alias": list(dep.alias) if dep.state == READY else [],
        "aliasAssigned": dep.alias_assigned_at is not None,
        "aliasError": None,
        "gitSource": {
            "type": "github",
            "org": project.git_org,
            "repo": project.git_repo,
            "ref": dep.ref,
            "sha": dep.sha,
        },
    }
    if dep.alias_assigned_at is not None:
        body["aliasAssignedAt"] = dep.alias_assigned_at
    if dep.ready is not None:
        body["ready"] = dep.ready
    if dep.custom_environment is not None:
        body["customEnvironment"] = {
            "id": dep.custom_environment.id,
            "slug": dep.custom_environment.slug,
        }
    if dep.state == ERROR:
        body.update(
            errorCode="BUILD_FAILED",
            errorMessage=dep.script.error_message,
            errorStep="build",
            buildErrorAt=dep.error_at,
            readyStateReason=dep.script.error_message,
        )
    if dep.state == CANCELED:
        body["canceledAt"] = dep.canceled_at
    return body


async def create_deployment(request: web.Request) -> web.Response:
    """`POST /v13/deployments` for git-sourced deployments."""
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "bad_request", "Invalid JSON body")
    if not isinstance(body, dict) or not body.get("name"):
        return _error(400, "bad_request", "Invalid request: missing required property `name`.")
    project = state.find_project(str(body.get("project") or body["name"]))
    if project is None:
        return _error(404, "not_found", "Project not found")
    git = body.get("gitSource")
    if not isinstance(git, dict) or not git.get("ref"):
        return _error(400, "bad_request", "Invalid request: `gitSource.ref` is required here.")
    ref = str(git["ref"])
    sha = str(git.get("sha") or state.resolve_head(ref) or "")
    if not sha:
        return _error(400, "incorrect_git_source_info", f"Could not resolve ref `{ref}`.")
    custom: CustomEnvironment | None = None
    custom_key = body.get("customEnvironmentSlugOrId")
    target = body.get("target")
    if not custom_key and target not in (None, "production", "preview", "staging"):
        custom_key = target
    if custom_key:
        custom = next((c for c in project.custom_environments if custom_key in (c.id, c.slug)), None)
        if custom is None:
            return _error(404, "custom_environment_not_found", "Custom environment not found")
    response_target = target if target in ("production", "staging") and custom is None else None
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else None
    dep = state.create_deployment(
        project, sha=sha, ref=ref, target=response_target, custom_environment=custom, meta=meta
    )
    return web.json_response(_deployment_json(state, dep))


async def get_deployment(request: web.Request) -> web.Response:
    """`GET /v13/deployments/{idOrUrl}`: each read advances the scripted build one step."""
    state = request.app[STATE_KEY]
    dep = state.find_deployment(request.match_info["idOrUrl"])
    if dep is None:
        return _error(404, "not_found", "Deployment not found")
    state.advance(dep)
    return web.json_response(_deployment_json(state, dep))


async def cancel_deployment(request: web.Request) -> web.Response:
    """`PATCH /v12/deployments/{id}/cancel`."""
    state = request.app[STATE_KEY]
    dep = state.find_deployment(request.match_info["id"])
    if dep is None:
        return _error(404, "not_found", "Deployment not found")
    if dep.state in (READY, ERROR, CANCELED):
        return _error(400, "cannot_cancel", f"Deployment is {dep.state} and cannot be canceled")
    dep.state = CANCELED
    dep.canceled_at = state.now_ms()
    return web.json_response(_deployment_json(state, dep))


def _list_item(state: VercelState, dep: Deployment) -> dict[str, Any]:
    full = _deployment_json(state, dep)
    item = {
        "uid": dep.id,
        "name": dep.name,
        "projectId": dep.project_id,
        "url": dep.url,
        "created": dep.created_at,
        "createdAt": dep.created_at,
        "state": dep.state,
        "readyState": dep.state,
        "type": "LAMBDAS",
        "creator": {"uid": "usr_sandbox", "username": "release-bot"},
        "meta": full["meta"],
        "target": dep.target,
        "aliasAssigned": full["aliasAssigned"],
        "aliasError": None,
        "buildingAt": full["buildingAt"],
        "inspectorUrl": full["inspectorUrl"],
        "source": dep.source,
    }
    for key in ("ready", "customEnvironment", "errorCode", "errorMessage"):
        if key in full:
            item[key] = full[key]
    return item


def _matches(dep: Deployment, query: Any) -> bool:
    checks: list[bool] = []
    if "projectId" in query:
        checks.append(dep.project_id == query["projectId"])
    if "projectIds" in query:
        checks.append(dep.project_id in query.getall("projectIds"))
    if "app" in query:
        checks.append(dep.name == query["app"])
    if "target" in query:
        checks.append((dep.target or "preview") == query["target"])
    if "state" in query:
        checks.append(dep.state in query["state"].split(","))
    if "sha" in query:
        checks.append(dep.sha == query["sha"])
    if "branch" in query:
        checks.append(dep.ref == query["branch"])
    for name, keep in (("since", True), ("from", True), ("until", False), ("to", False)):
        if name in query:
            bound = int(query[name])
            checks.append(dep.created_at > bound if keep else dep.created_at < bound)
    return all(checks)


async def list_deployments(request: web.Request) -> web.Response:
    """`GET /v6/deployments`, newest first, with the documented filters."""
    state = request.app[STATE_KEY]
    try:
        limit = int(request.query.get("limit", "20"))
        found = [d for d in state.deployments.values() if _matches(d, request.query)]
    except ValueError:
        return _error(400, "bad_request", "Invalid query parameter")
    found.sort(key=lambda d: d.created_at, reverse=True)
    page = found[:limit]
    more = len(found) > limit
    return web.json_response(
        {
            "deployments": [_list_item(state, d) for d in page],
            "pagination": {
                "count": len(page),
                "next": page[-1].created_at if more and page else None,
                "prev": page[0].created_at if page else None,
            },
        }
    )


def _events_for(state: VercelState, dep: Deployment) -> list[dict[str, Any]]:
    project = state.projects[dep.project_id]
    lines: list[tuple[str, str]] = [
        (
            "stdout",
            f"Cloning github.com/{project.git_org}/{project.git_repo} "
            f"(Branch: {dep.ref}, Commit: {dep.sha[:7]})",
        ),
    ]
    if dep.state != "QUEUED":
        lines.extend(dep.script.log)
    if dep.state == READY:
        lines.append(("stdout", "Build Completed in /vercel/output"))
        lines.append(("stdout", "Deployment completed"))
    elif dep.state == ERROR:
        lines.append(("stderr", f"Error: {dep.script.error_message}"))
    elif dep.state == CANCELED:
        lines.append(("stdout", "The deployment was canceled"))
    base = dep.created_at
    events = []
    for serial, (kind, text) in enumerate(lines):
        created = base + serial
        events.append(
            {
                "type": kind,
                "created": created,
                "payload": {
                    "deploymentId": dep.id,
                    "id": f"{dep.id}-{serial}",
                    "text": text,
                    "date": created,
                    "serial": f"{created}{serial:06d}",
                    "info": {"type": "build", "name": "bld_sandbox", "entrypoint": "."},
                },
            }
        )
    return events


async def deployment_events(request: web.Request) -> web.Response:
    """`GET /v3/deployments/{idOrUrl}/events`: build log lines revealed as the build goes."""
    state = request.app[STATE_KEY]
    dep = state.find_deployment(request.match_info["idOrUrl"])
    if dep is None:
        return _error(404, "not_found", "Deployment not found")
    events = _events_for(state, dep)
    if request.query.get("direction") == "backward":
        events.reverse()
    limit = request.query.get("limit")
    if limit and limit.lstrip("-").isdigit() and int(limit) >= 0:
        events = events[: int(limit)]
    return web.json_response(events)


async def assign_alias(request: web.Request) -> web.Response:
    """`POST /v2/deployments/{id}/aliases` moves an alias to this deployment."""
    state = request.app[STATE_KEY]
    dep = state.find_deployment(request.match_info["id"])
    if dep is None:
        return _error(404, "deployment_not_found", "The deployment was not found")
    try:
        body = await request.json()
    except ValueError:
        body = None
    alias = body.get("alias") if isinstance(body, dict) else None
    if not isinstance(alias, str) or "." not in alias:
        return _error(400, "invalid_alias", "The supplied alias is invalid")
    if dep.state != READY:
        return _error(400, "deployment_not_ready", "The deployment is not READY and can not be aliased")
    if state.aliases.get(alias) == dep.id:
        return _error(409, "alias_in_use", "The provided alias is already assigned to the given deployment")
    old = state.assign_alias(alias, dep)
    uid, created = state.alias_record(alias)
    return web.json_response({"uid": uid, "alias": alias, "created": _iso(created), "oldDeploymentId": old})


async def list_deployment_aliases(request: web.Request) -> web.Response:
    """`GET /v2/deployments/{id}/aliases`."""
    state = request.app[STATE_KEY]
    dep = state.find_deployment(request.match_info["id"])
    if dep is None:
        return _error(404, "not_found", "The deployment was not found")
    items = []
    for alias, target in state.aliases.items():
        if target == dep.id:
            uid, created = state.alias_record(alias)
            items.append({"uid": uid, "alias": alias, "created": _iso(created), "redirect": None})
    return web.json_response({"aliases": items})


async def get_alias(request: web.Request) -> web.Response:
    """`GET /v4/aliases/{idOrAlias}` by domain or alias uid, optionally only for `projectId`
    (the spec types the 200 body as an array of aliases)."""
    state = request.app[STATE_KEY]
    key = request.match_info["idOrAlias"]
    alias = key if key in state.aliases else None
    if alias is None:
        alias = next((a for a in state.aliases if state.alias_record(a)[0] == key), None)
    dep = state.serving(alias) if alias else None
    project = request.query.get("projectId")
    if alias is None or dep is None or (project and project != dep.project_id):
        return _error(404, "not_found", "The alias was not found")
    uid, created = state.alias_record(alias)
    return web.json_response(
        [
            {
                "alias": alias,
                "uid": uid,
                "created": _iso(created),
                "createdAt": created,
                "updatedAt": created,
                "creator": {"uid": "usr_sandbox", "email": "release-bot@example.test",
                            "username": "release-bot"},
                "deploymentId": dep.id,
                "projectId": dep.project_id,
                "deployment": {"id": dep.id, "url": dep.url, "meta": json_meta(dep)},
                "redirect": None,
            }
        ]
    )


def json_meta(dep: Deployment) -> str:
    """The alias's deployment meta, which the spec types as a JSON string."""
    return json.dumps(dep.meta)


def _point_production(request: web.Request, kind: str) -> tuple[web.Response | None, Deployment | None]:
    state = request.app[STATE_KEY]
    project = state.find_project(request.match_info["projectId"])
    if project is None:
        return _error(404, "not_found", "Project not found"), None
    dep = state.find_deployment(request.match_info["deploymentId"])
    if dep is None or dep.project_id != project.id:
        return _error(404, "not_found", "Deployment not found"), None
    if dep.state != READY:
        return _error(400, "deployment_not_ready", "Deployment is not READY"), None
    if kind == "rollback" and dep.target != "production":
        return _error(400, "invalid_deployment", "Only production deployments can be rolled back to"), None
    for domain in project.production_domains:
        state.assign_alias(domain, dep)
    state.promotions.append(
        {
            "kind": kind,
            "projectId": project.id,
            "deploymentId": dep.id,
            "description": request.query.get("description"),
            "at": state.now_ms(),
        }
    )
    return None, dep


async def promote(request: web.Request) -> web.Response:
    """`POST /v10/projects/{projectId}/promote/{deploymentId}` → 201."""
    error, _ = _point_production(request, "promote")
    return error or web.Response(status=201)


async def rollback(request: web.Request) -> web.Response:
    """`POST /v1/projects/{projectId}/rollback/{deploymentId}` (production only) → 201."""
    error, _ = _point_production(request, "rollback")
    return error or web.Response(status=201)


async def deploy_hook(request: web.Request) -> web.Response:
    """`GET|POST /v1/integrations/deploy/{projectId}/{hookId}` → `{"job": {...}}`."""
    state = request.app[STATE_KEY]
    hook = state.deploy_hooks.get(request.match_info["hookId"])
    if hook is None or hook.project_id != request.match_info["projectId"]:
        return _error(404, "not_found", "Deploy hook not found")
    project = state.projects.get(hook.project_id)
    sha = state.resolve_head(hook.ref)
    if project is None or not sha:
        return _error(400, "bad_request", f"Could not resolve branch `{hook.ref}`")
    target = "production" if hook.ref == project.production_branch else None
    custom = next((c for c in project.custom_environments if c.branch == hook.ref), None)
    dep = state.create_deployment(
        project,
        sha=sha,
        ref=hook.ref,
        target=target,
        custom_environment=custom,
        meta={"deployHookId": request.match_info["hookId"]},
        source="import",
    )
    job = {"id": state.new_id("", 20), "state": "PENDING", "createdAt": state.now_ms()}
    state.hook_jobs.append({**job, "deploymentId": dep.id})
    return web.json_response({"job": job}, status=201)


async def get_project(request: web.Request) -> web.Response:
    """`GET /v9/projects/{idOrName}`."""
    state = request.app[STATE_KEY]
    project = state.find_project(request.match_info["idOrName"])
    if project is None:
        return _error(404, "not_found", "Project not found")
    return web.json_response({
        "id": project.id, "name": project.name, "accountId": state.team_id or "usr_sandbox",
        "framework": "nextjs", "nodeVersion": "20.x", "createdAt": 1_700_000_000_000,
        "updatedAt": state.now_ms(),
        "link": {"type": "github", "org": project.git_org, "repo": project.git_repo,
                 "productionBranch": project.production_branch},
    })


async def get_team(request: web.Request) -> web.Response:
    """`GET /v2/teams/{teamId}`: the team the token works in (403 for any other)."""
    state = request.app[STATE_KEY]
    team_id = request.match_info["teamId"]
    if state.team_id is None or team_id != state.team_id:
        return _error(403, "forbidden", "Not authorized")
    return web.json_response({
        "id": state.team_id, "slug": state.team_slug, "name": state.team_slug.title(),
        "creatorId": "usr_sandbox", "createdAt": 1_700_000_000_000, "updatedAt": state.now_ms(),
        "description": None, "stagingPrefix": state.team_slug, "avatar": None,
        "membership": {"role": "MEMBER", "confirmed": True, "createdAt": 1_700_000_000_000},
    })


async def list_custom_environments(request: web.Request) -> web.Response:
    """`GET /v9/projects/{idOrName}/custom-environments`."""
    state = request.app[STATE_KEY]
    project = state.find_project(request.match_info["idOrName"])
    if project is None:
        return _error(404, "not_found", "Project not found")
    now = state.now_ms()
    environments = [
        {
            "id": env.id,
            "slug": env.slug,
            "type": "preview",
            "branchMatcher": {"type": "equals", "pattern": env.branch} if env.branch else None,
            "domains": [{"name": d, "apexName": d, "projectId": project.id,
                         "customEnvironmentId": env.id} for d in env.domains],
            "createdAt": now,
            "updatedAt": now,
        }
        for env in project.custom_environments
    ]
    for env_json in environments:
        if env_json["branchMatcher"] is None:
            del env_json["branchMatcher"]
    return web.json_response({"accountLimit": {"total": 12}, "environments": environments})


def create_vercel_app(state: VercelState) -> web.Application:
    """An aiohttp app emulating the Vercel REST API over `state`."""
    app = new_app()
    app.middlewares.append(_auth_middleware)
    app[STATE_KEY] = state
    app.router.add_get("/v9/projects/{idOrName}", get_project)
    app.router.add_get("/v2/teams/{teamId}", get_team)
    app.router.add_get("/v10/projects/{idOrName}/env", list_env)
    app.router.add_get("/v9/projects/{idOrName}/custom-environments", list_custom_environments)
    app.router.add_post("/v13/deployments", create_deployment)
    app.router.add_get("/v13/deployments/{idOrUrl}", get_deployment)
    app.router.add_patch("/v12/deployments/{id}/cancel", cancel_deployment)
    app.router.add_get("/v6/deployments", list_deployments)
    app.router.add_get("/v3/deployments/{idOrUrl}/events", deployment_events)
    app.router.add_post("/v2/deployments/{id}/aliases", assign_alias)
    app.router.add_get("/v2/deployments/{id}/aliases", list_deployment_aliases)
    app.router.add_get("/v4/aliases/{idOrAlias}", get_alias)
    app.router.add_post("/v10/projects/{projectId}/promote/{deploymentId}", promote)
    app.router.add_post("/v1/projects/{projectId}/rollback/{deploymentId}", rollback)
    app.router.add_route("*", "/v1/integrations/deploy/{projectId}/{hookId}", deploy_hook)
    return app
