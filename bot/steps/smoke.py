"""The `smoke` step: the guide's "Smoke test the app", against STAGING_URL.

The dashboard renders (200, HTML, a marker), and staging serves this release's build: Vercel's
alias of the staging domain points at the deployment the deploy step recorded, and the commit
the app reports (SMOKE_VERSION_PATH, SMOKE_VERSION_HEADER) is the release's SHA.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bot.chat.blocks import table
from bot.providers import vercel
from bot.providers.http import ProviderError, send
from bot.runbook.model import Link, StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.staging_http import staging_client

SHA_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")


# Where a version endpoint's JSON may carry the commit (also under `data`, the app's envelope).
COMMIT_KEYS = ("commit", "sha", "commitSha", "commit_sha", "gitSha", "git_sha", "gitCommitSha",
               "git_commit_sha", "VERCEL_GIT_COMMIT_SHA")


async def smoke(ctx: StepContext) -> StepResult:
    """Load the dashboard, check it renders, and check which build is serving it."""
    path = ctx.option("path", ctx.settings.SMOKE_PATH)
    marker = ctx.option("marker", ctx.settings.SMOKE_MARKER)
    url = f"{ctx.settings.STAGING_URL}{path}"
    started = time.monotonic()
    async with staging_client(ctx) as client:
        try:
            response = await send(client, "GET", path, provider="staging", attempts=2,
                                  ok_statuses=tuple(range(300, 600)))
        except ProviderError as exc:
            return StepResult.fail(f"{url} did not answer: {exc}", links=[Link(label="page", url=url)])
        elapsed = (time.monotonic() - started) * 1000
        kind = response.headers.get("content-type", "")
        body = response.text
        facts = table(["check", "found"], [["status", str(response.status_code)],
                                            ["content-type", kind or "—"],
                                            ["size", f"{len(body)} bytes"],
                                            ["time", f"{elapsed:.0f} ms"]])
        links = [Link(label="page", url=url)]
        if response.status_code != 200:
            return StepResult.fail(f"{url} answered {response.status_code}", details=facts,
                                   links=links, output_tail=body[:500])
        if "html" not in kind.lower() or not body.strip():
            return StepResult.fail(f"{url} did not return an HTML page ({kind or 'no content type'}, "
                                   f"{len(body)} bytes)", details=facts, links=links)
        if marker and marker not in body:
            return StepResult.fail(f"{url} rendered without the marker {marker!r}", details=facts,
                                   links=links)
        build = await _serving_build(ctx, client, response)
    found = f" with {marker!r}" if marker else ""
    rendered = f"{url} rendered{found} in {elapsed:.0f} ms"
    details = facts + "\n*Which build is serving:*\n" + build.table()
    data = {"status": response.status_code, "ms": round(elapsed), **build.data()}
    manual = f"Smoke: {path} rendered (200)"
    if build.wrong:
        return StepResult.fail(f"{rendered}, but serves the wrong build: " + "; ".join(build.wrong),
                               details=details, links=links, data=data)
    if build.errors:
        why = "; ".join(build.errors)
        if build.expecting:
            return StepResult.fail(f"{rendered}, but which build is serving could not be proven: "
                                   f"{why}", details=details, links=links, data=data)
        return StepResult.warn(f"{rendered}; which build is serving could not be read: {why}",
                               details=details, links=links, data=data, fields={"Automated Checks": manual})
    if not build.verified:
        seen = f" (it serves {build.serving_text()})" if build.serving_deployment or\
            build.serving_sha else ""
        return StepResult.warn(f"{rendered}, but could not verify which build is serving: "
                               + "; ".join(build.unverified) + seen, details=details, links=links,
                               data=data, fields={"Automated Checks": manual})
    serving = build.serving_text()
    if not build.expecting:
        return StepResult.ok(f"{rendered}; serving {serving} (release #{ctx.release.id} is no "
                             "longer running, so not compared with its build)",
                             details=details, links=links, data=data,
                             fields={"Automated Checks": manual})
    return StepResult.ok(f"{rendered}; serving {serving}, this release's build ("
                         + ", ".join(build.verified) + ")", details=details, links=links,
                         data=data, fields={"Automated Checks": f"{manual}, build verified ({serving})"})


def _same_commit(expected: str, reported: str) -> bool:
    """Whether `reported` (full or at least 7 hex digits) names the commit `expected`."""
    a, b = expected.strip().lower(), reported.strip().lower()
    return len(b) >= 7 and len(a) >= 7 and (a.startswith(b) or b.startswith(a))


def _short(sha: str | None) -> str:
    return sha[:7] if sha else "?"


@dataclass
class _Build:
    """What smoke found out about the serving build, source by source."""

    expected_deployment: str | None
    expected_sha: str | None
    expecting: bool  # compare with this release's build (False once the release has ended)
    serving_deployment: str | None = None
    serving_sha: str | None = None

    def __post_init__(self) -> None:
        self.rows: list[list[str]] = []
        self.verified: list[str] = []  # sources that answered and agreed (or were shown)
        self.wrong: list[str] = []  # sources naming another build
        self.errors: list[str] = []  # configured sources that gave no answer
        self.unverified: list[str] = []  # why a comparison could not be made

    def row(self, source: str, expected: str, serving: str, verdict: str) -> None:
        self.rows.append([source, expected, serving, verdict])

    def table(self) -> str:
        if not self.rows:
            return "no source: " + "; ".join(self.unverified)
        return table(["source", "expected", "serving", "verdict"], self.rows)

    def serving_text(self) -> str:
        if self.serving_deployment:
            return f"{self.serving_deployment} @ {_short(self.serving_sha)}"
        return f"commit {_short(self.serving_sha)}"

    def data(self) -> dict[str, Any]:
        return {"serving_deployment": self.serving_deployment, "serving_sha": self.serving_sha,
                "expected_deployment": self.expected_deployment, "expected_sha": self.expected_sha,
                "verified_by": self.verified if self.expecting and not self.wrong else [],
                "build_problems": self.wrong + self.errors}

    def commit(self, source: str, reported: str) -> None:
        """Judge a commit reported by the app itself."""
        self.serving_sha = self.serving_sha or reported
        if not self.expecting:
            self.row(source, "—", reported[:12], "shown")
            self.verified.append(source)
        elif not self.expected_sha:
            self.row(source, "—", reported[:12], "not compared")
            self.unverified.append(f"the release has no Git SHA to compare with {source}")
        elif _same_commit(self.expected_sha, reported):
            self.row(source, self.expected_sha[:12], reported[:12], "same")
            self.verified.append(source)
        else:
            self.row(source, self.expected_sha[:12], reported[:12], "DIFFERENT")
            self.serving_sha = reported
            self.wrong.append(f"{source} reports commit {reported[:12]}, not this release's "
                              f"{self.expected_sha[:12]}")

    def failed(self, source: str, expected: str, problem: str) -> None:
        self.row(source, expected, "—", "no answer")
        self.errors.append(problem)


def _expected_build(ctx: StepContext) -> _Build:
    """This release's deployment and SHA, or the runbook options `expect_deployment` /
    `expect_sha`. Once the release has ended (the rollback's re-check runs smoke on a finished
    release), there is nothing of this release to expect unless the options say so."""
    release = ctx.release
    steps = release.data.get("steps") or {}
    deploy = steps.get("deploy") or {}
    merge = steps.get("merge") or {}
    dep_option, sha_option = ctx.option("expect_deployment"), ctx.option("expect_sha")
    if dep_option or sha_option:
        return _Build(str(dep_option) if dep_option else None,
                      str(sha_option) if sha_option else None, True)
    if not release.status.active:
        return _Build(None, None, False)
    dep_id = deploy.get("deployment_id") if isinstance(deploy, dict) else None
    sha = (deploy.get("sha") if isinstance(deploy, dict) else None) or (
        merge.get("sha") if isinstance(merge, dict) else None) or release.git_sha
    return _Build(str(dep_id) if dep_id else None, str(sha) if sha else None, True)


async def _serving_build(ctx: StepContext, client: httpx.AsyncClient,
                         page: httpx.Response) -> _Build:
    """Ask every configured source which build serves staging, and compare with this release's."""
    settings = ctx.settings
    build = _expected_build(ctx)
    domain = settings.staging_domain
    sources = 0
    if settings.secret("VERCEL_TOKEN") and domain:
        sources += 1
        await _check_alias(ctx, build, domain)
    version_path = str(ctx.option("version_path", settings.SMOKE_VERSION_PATH) or "")
    if version_path:
        sources += 1
        await _check_version_path(client, build, version_path)
    header = str(ctx.option("version_header", settings.SMOKE_VERSION_HEADER) or "")
    if header:
        sources += 1
        value = page.headers.get(header, "").strip()
        source = f"header {header}"
        if not value:
            build.failed(source, _short(build.expected_sha), f"the page carried no {header} header")
        elif not SHA_RE.match(value):
            build.failed(source, _short(build.expected_sha),
                         f"the {header} header is not a commit SHA ({value[:40]!r})")
        else:
            build.commit(source, value)
    if not sources:
        build.unverified.append("set VERCEL_TOKEN (Vercel's alias of STAGING_DOMAIN) or "
                                "SMOKE_VERSION_PATH / SMOKE_VERSION_HEADER (the app's commit)")
    return build


async def _check_alias(ctx: StepContext, build: _Build, domain: str) -> None:
    source = f"Vercel alias {domain}"
    expected = build.expected_deployment or "—"
    try:
        async with vercel.vercel_client(ctx.settings) as vc:
            alias = await vercel.get_alias(vc, domain)
    except ProviderError as exc:
        build.failed(source, expected, f"could not ask Vercel which deployment {domain} serves: {exc}")
        return
    dep_id = vercel.alias_deployment_id(alias) if alias else None
    if alias is None or dep_id is None:
        build.failed(source, expected, f"{domain} is not an alias on Vercel, so no deployment of "
                     "this project is known to serve it")
        return
    sha = vercel.alias_deployment_sha(alias)
    build.serving_deployment, build.serving_sha = dep_id, sha or build.serving_sha
    shown = f"{dep_id} ({_short(sha)})"
    if not build.expecting:
        build.row(source, "—", shown, "shown")
        build.verified.append(source)
    elif not build.expected_deployment:
        build.row(source, "—", shown, "not compared")
        build.unverified.append(f"the release recorded no deployment to compare with {source}")
    elif dep_id == build.expected_deployment:
        build.row(source, expected, shown, "same")
        build.verified.append(source)
    else:
        build.row(source, f"{expected} ({_short(build.expected_sha)})", shown, "DIFFERENT")
        build.wrong.append(f"{domain} serves {shown}, not this release's {expected} "
                           f"({_short(build.expected_sha)})")


def _find_commit(value: Any, depth: int = 0) -> str | None:
    """A commit SHA under one of COMMIT_KEYS (or `data`, or a nested {"sha": ...})."""
    if isinstance(value, str):
        return value.strip() if SHA_RE.match(value.strip()) else None
    if not isinstance(value, dict) or depth > 2:
        return None
    for key in COMMIT_KEYS:
        if key in value:
            found = _find_commit(value[key], depth + 1)
            if found:
                return found
    return _find_commit(value.get("data"), depth + 1) if "data" in value else None


async def _check_version_path(client: httpx.AsyncClient, build: _Build, path: str) -> None:
    expected = _short(build.expected_sha)
    try:
        response = await send(client, "GET", path, provider="staging version", attempts=2,
                              ok_statuses=tuple(range(300, 600)),
                              headers={"Accept": "application/json, text/plain"})
    except ProviderError as exc:
        build.failed(path, expected, f"{path} did not answer: {exc}")
        return
    if response.status_code != 200:
        build.failed(path, expected, f"{path} answered {response.status_code}")
        return
    try:
        reported = _find_commit(response.json())
    except ValueError:
        reported = _find_commit(response.text.strip())
    if not reported:
        build.failed(path, expected, f"{path} answered no commit (looked for "
                     f"{', '.join(COMMIT_KEYS[:3])}, ... or a bare SHA)")
        return
    build.commit(path, reported)


STEP = StepDef(
    name="smoke",
    title="Smoke test (dashboard renders, this build serves)",
    requires=("STAGING_URL",),
    timeout=120,
    describe="GET STAGING_URL + SMOKE_PATH: 200 with an HTML page carrying SMOKE_MARKER; staging "
             "serves this release's build (Vercel alias of STAGING_DOMAIN, SMOKE_VERSION_PATH or "
             "SMOKE_VERSION_HEADER).",
    run=smoke,
)
