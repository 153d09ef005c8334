"""The `secrets_present` step: staging on Vercel has every REQUIRED_SECRETS key, up to date.

Guide section 1, "Update secrets". The project's env vars come from
`GET /v10/projects/{idOrName}/env` (never with `decrypt=true`); only names, targets, branches,
custom environment ids and `updatedAt` are kept — values are dropped as each page is read.
Staging is VERCEL_TARGET: `preview` (Preview vars for all branches), `preview:<branch>`
(Preview vars for that git branch, or for all branches), or a custom environment by id or slug
(a slug is resolved with `GET /v9/projects/{idOrName}/custom-environments`). A key whose
production copy was updated after staging's copy gets a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.chat.blocks import table
from bot.providers.http import ProviderError, make_client, send
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext, StepDef

PROVIDER = "Vercel"
AUTH_HINT = "the Vercel token was rejected or cannot read this project's environment variables"
MAX_PAGES = 50


@dataclass(frozen=True)
class EnvVarMeta:
    """An env var without its value: where it applies and when it last changed."""

    key: str
    targets: tuple[str, ...]
    git_branch: str | None
    custom_environment_ids: tuple[str, ...]
    updated_at: int


@dataclass(frozen=True)
class StagingTarget:
    """Which env vars reach staging: Preview (optionally one branch) or a custom environment."""

    label: str
    branch: str | None = None
    custom_environment_id: str | None = None

    def applies(self, env: EnvVarMeta) -> bool:
        """Whether `env` is set for staging."""
        if self.custom_environment_id is not None:
            return self.custom_environment_id in env.custom_environment_ids
        if "preview" not in env.targets:
            return False
        return env.git_branch is None or (self.branch is not None and env.git_branch == self.branch)


def _meta(raw: Any) -> EnvVarMeta | None:
    """The metadata of one env var item (its value is not read)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
        return None
    target = raw.get("target") or []
    targets = (target,) if isinstance(target, str) else tuple(str(t) for t in target)
    custom = raw.get("customEnvironmentIds") or []
    updated = raw.get("updatedAt") or raw.get("createdAt") or 0
    return EnvVarMeta(
        key=raw["key"],
        targets=targets,
        git_branch=raw.get("gitBranch") or None,
        custom_environment_ids=tuple(str(c) for c in custom),
        updated_at=int(updated) if isinstance(updated, int | float) else 0,
    )


def _team(ctx: StepContext) -> dict[str, str]:
    team = ctx.settings.VERCEL_TEAM_ID
    return {"teamId": team} if team else {}


def _json(response: httpx.Response, what: str) -> Any:
    # Not `json_body`: its error quotes the body, and an env list body may hold values.
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(PROVIDER, f"answered {what} with malformed JSON") from exc


async def list_env_meta(
    client: httpx.AsyncClient, project: str, params: dict[str, str]
) -> list[EnvVarMeta]:
    """Every env var of `project` (all pages), values dropped."""
    found: list[EnvVarMeta] = []
    query = dict(params)
    seen_cursors: set[Any] = set()
    for _ in range(MAX_PAGES):
        response = await send(
            client, "GET", f"/v10/projects/{project}/env",
            provider=PROVIDER, auth_hint=AUTH_HINT, params=query,
        )
        body = _json(response, "the env var list")
        items = body.get("envs") if isinstance(body, dict) else None
        if isinstance(body, dict) and items is None and "key" in body:
            items = [body]  # the spec's single-variable answer
        if not isinstance(items, list):
            raise ProviderError(PROVIDER, "answered the env var list without `envs`")
        found.extend(m for m in (_meta(item) for item in items) if m is not None)
        pagination = body.get("pagination") if isinstance(body, dict) else None
        del body, items  # values must not outlive the page
        next_cursor = pagination.get("next") if isinstance(pagination, dict) else None
        if next_cursor is None or next_cursor in seen_cursors:
            return found
        seen_cursors.add(next_cursor)
        # Vercel's list pagination: `until` = the previous page's `pagination.next`.
        query = {**params, "until": str(next_cursor)}
    raise ProviderError(PROVIDER, f"the env var list has more than {MAX_PAGES} pages")


async def resolve_target(
    client: httpx.AsyncClient, project: str, target: str, params: dict[str, str]
) -> StagingTarget:
    """VERCEL_TARGET as a StagingTarget; ValueError when no such custom environment exists."""
    if target == "preview":
        return StagingTarget(label="Preview (all branches)")
    if target.startswith("preview:"):
        branch = target.split(":", 1)[1].strip()
        if not branch:
            raise ValueError("VERCEL_TARGET `preview:` needs a branch name after the colon")
        return StagingTarget(label=f"Preview for branch {branch}", branch=branch)
    response = await send(
        client, "GET", f"/v9/projects/{project}/custom-environments",
        provider=PROVIDER, auth_hint=AUTH_HINT, params=params,
    )
    body = _json(response, "the custom environment list")
    environments = body.get("environments") if isinstance(body, dict) else None
    if not isinstance(environments, list):
        raise ProviderError(PROVIDER, "answered the custom environment list without `environments`")
    known = [e for e in environments if isinstance(e, dict)]
    for env in known:
        if target in (env.get("id"), env.get("slug")):
            return StagingTarget(
                label=f"custom environment {env.get('slug') or env.get('id')}",
                custom_environment_id=str(env.get("id")),
            )
    names = ", ".join(str(e.get("slug") or e.get("id")) for e in known) or "none"
    raise ValueError(
        f"VERCEL_TARGET {target!r} is not `preview`, `preview:<branch>` or a custom environment "
        f"of the project (custom environments: {names})"
    )


def _when(ms: int) -> str:
    if not ms:
        return "unknown"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _staging_copy(envs: list[EnvVarMeta], key: str, target: StagingTarget) -> EnvVarMeta | None:
    """The copy of `key` staging uses: a branch-specific one wins over an all-branches one."""
    copies = [e for e in envs if e.key == key and target.applies(e)]
    copies.sort(key=lambda e: (e.git_branch is not None, e.updated_at), reverse=True)
    return copies[0] if copies else None


def _production_updated(envs: list[EnvVarMeta], key: str) -> int:
    return max((e.updated_at for e in envs if e.key == key and "production" in e.targets), default=0)


async def secrets_present(ctx: StepContext) -> StepResult:
    """Every REQUIRED_SECRETS key exists for staging; warn where production's copy is newer."""
    settings = ctx.settings
    project = str(settings.VERCEL_PROJECT_ID)
    params = _team(ctx)
    try:
        async with make_client(
            settings.VERCEL_API_URL,
            token=settings.secret("VERCEL_TOKEN"),
            timeout=settings.HTTP_TIMEOUT_SECONDS,
        ) as client:
            target = await resolve_target(client, project, settings.VERCEL_TARGET.strip(), params)
            envs = await list_env_meta(client, project, params)
    except ValueError as exc:
        return StepResult.fail(f"Cannot tell which Vercel env vars are staging's: {exc}.")
    except ProviderError as exc:
        return StepResult.fail(f"Could not list the Vercel project's env vars: {exc}.")
    rows: list[list[str]] = []
    missing: list[str] = []
    outdated: list[str] = []
    for key in settings.REQUIRED_SECRETS:
        copy = _staging_copy(envs, key, target)
        if copy is None:
            missing.append(key)
            rows.append([key, "no", "-", "missing"])
            continue
        verdict = "ok"
        if _production_updated(envs, key) > copy.updated_at:
            outdated.append(key)
            verdict = "production updated after staging"
        rows.append([key, "yes", _when(copy.updated_at), verdict])
    details = f"Staging target: {target.label}\n" + table(
        ["key", "present", "last updated", "verdict"], rows
    )
    data = {"missing": missing, "outdated": outdated, "target": target.label}
    total = len(settings.REQUIRED_SECRETS)
    if missing:
        return StepResult.fail(
            f"Staging ({target.label}) is missing {len(missing)} of {total} required env vars: "
            f"{', '.join(missing)}.",
            details=details, data=data,
        )
    if outdated:
        return StepResult.warn(
            f"Production updated after staging for {', '.join(outdated)}; "
            "check staging has the latest keys.",
            details=details, data=data,
        )
    return StepResult.ok(
        f"All {total} required env vars are set for staging ({target.label}).",
        details=details, data=data,
    )


STEP = StepDef(
    name="secrets_present",
    title="Staging secrets are present",
    describe="Vercel's staging target has every REQUIRED_SECRETS env var (names only, never "
             "values), and none is older than production's copy.",
    requires=("VERCEL_TOKEN", "VERCEL_PROJECT_ID"),
    run=secrets_present,
)
