"""The guide's "Smoke test the app" and "Inspect health endpoints", against STAGING_URL.

- `smoke`: the dashboard renders (200, HTML, a marker), and staging serves this release's build:
  Vercel's alias of the staging domain points at the deployment the deploy step recorded, and the
  commit the app reports (SMOKE_VERSION_PATH, SMOKE_VERSION_HEADER) is the release's SHA.
- `health`: `/api/health` and its dependency verdicts as a table.
- `coach_stream`: sign in as the staging test user, then stream an AI coach answer and check
  that chunks arrive incrementally and `complete` carries citations.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from bot.chat.blocks import table
from bot.providers import vercel
from bot.providers.http import ProviderError, error_message, json_body, make_client, send
from bot.runbook.model import Link, StepResult
from bot.runbook.registry import StepContext, step
from bot.wording import plural

MIN_STREAM_SPREAD = 0.005  # seconds between the first and the last chunk
SHA_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")
# Where a version endpoint's JSON may carry the commit (also under `data`, the app's envelope).
COMMIT_KEYS = ("commit", "sha", "commitSha", "commit_sha", "gitSha", "git_sha", "gitCommitSha",
               "git_commit_sha", "VERCEL_GIT_COMMIT_SHA")


def _client(ctx: StepContext) -> httpx.AsyncClient:
    assert ctx.settings.STAGING_URL
    return make_client(ctx.settings.STAGING_URL, timeout=ctx.settings.HTTP_TIMEOUT_SECONDS,
                       headers={"Accept": "text/html,application/json"})


@step("smoke", title="Smoke test (dashboard renders, this build serves)", phase="validate",
      requires=("STAGING_URL",), timeout=120,
      describe="GET STAGING_URL + SMOKE_PATH: 200 with an HTML page carrying SMOKE_MARKER; staging "
               "serves this release's build (Vercel alias of STAGING_DOMAIN, SMOKE_VERSION_PATH or "
               "SMOKE_VERSION_HEADER).")
async def smoke(ctx: StepContext) -> StepResult:
    """Load the dashboard, check it renders, and check which build is serving it."""
    path = ctx.option("path", ctx.settings.SMOKE_PATH)
    marker = ctx.option("marker", ctx.settings.SMOKE_MARKER)
    url = f"{ctx.settings.STAGING_URL}{path}"
    started = time.monotonic()
    async with _client(ctx) as client:
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
                               details=details, links=links, data=data, fields={"Manual Tests": manual})
    if not build.verified:
        seen = f" (it serves {build.serving_text()})" if build.serving_deployment or \
            build.serving_sha else ""
        return StepResult.warn(f"{rendered}, but could not verify which build is serving: "
                               + "; ".join(build.unverified) + seen, details=details, links=links,
                               data=data, fields={"Manual Tests": manual})
    serving = build.serving_text()
    if not build.expecting:
        return StepResult.ok(f"{rendered}; serving {serving} (release #{ctx.release.id} is no "
                             "longer running, so not compared with its build)",
                             details=details, links=links, data=data,
                             fields={"Manual Tests": manual})
    return StepResult.ok(f"{rendered}; serving {serving}, this release's build ("
                         + ", ".join(build.verified) + ")", details=details, links=links,
                         data=data, fields={"Manual Tests": f"{manual}, build verified ({serving})"})


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


def _health_rows(payload: dict[str, Any]) -> tuple[list[list[str]], list[str], list[str]]:
    """Table rows, failures and warnings from the health payload's `dependencies`."""
    rows: list[list[str]] = []
    failures: list[str] = []
    warnings: list[str] = []
    deps = payload.get("dependencies") or {}
    supabase = deps.get("supabase") or {}
    sb_status = str(supabase.get("status", "missing"))
    rows.append(["supabase", sb_status, _ms(supabase.get("latencyMs")),
                 str(supabase.get("message") or "")])
    if sb_status != "ok":
        failures.append(f"Supabase is {sb_status}" + (f" ({supabase['message']})"
                                                      if supabase.get("message") else ""))
    analytics = deps.get("analytics") or {}
    if analytics:
        a_status = str(analytics.get("status", "missing"))
        rows.append(["analytics", a_status, _ms(analytics.get("latencyMs")),
                     str(analytics.get("message") or "")])
        if a_status not in ("ok", "configured"):
            warnings.append(f"analytics is {a_status}")
    providers = deps.get("aiProviders") or {}
    configuration = providers.get("configuration") or {}
    stats = providers.get("stats") or {}
    for name in sorted(set(configuration) | set(stats)):
        configured = str(configuration.get(name, "—"))
        stat = stats.get(name) or {}
        p_status = str(stat.get("status", configured))
        rows.append([f"ai:{name}", f"{p_status} ({configured})" if stat else configured,
                     _ms(stat.get("latencyMs")), str(stat.get("message") or stat.get("error") or "")])
        if configured != "configured":
            warnings.append(f"{name} is {configured}")
        elif stat and p_status not in ("ok", "healthy", "up"):
            warnings.append(f"{name} is {p_status}")
    return rows, failures, warnings


def _ms(value: Any) -> str:
    return f"{value} ms" if isinstance(value, (int, float)) else "—"


@step("health", title="Health endpoint (/api/health)", phase="validate", requires=("STAGING_URL",),
      timeout=120, describe="GET STAGING_URL/api/health: Supabase ok, status ok; providers reported.")
async def health(ctx: StepContext) -> StepResult:
    """Read `/api/health`: fail unless Supabase and the status are ok; warn on providers."""
    url = f"{ctx.settings.STAGING_URL}/api/health"
    links = [Link(label="/api/health", url=url)]
    async with _client(ctx) as client:
        try:
            response = await send(client, "GET", "/api/health", provider="staging health",
                                  ok_statuses=(503,))
            body = json_body(response, "staging health")
        except ProviderError as exc:
            return StepResult.fail(str(exc), links=links)
    if not isinstance(body, dict):
        return StepResult.fail(f"/api/health answered {response.status_code} with an unexpected body",
                               links=links, output_tail=response.text[:500])
    payload = body.get("data") if body.get("success") else body.get("details")
    if not isinstance(payload, dict):
        error = body.get("error") or "no health payload"
        return StepResult.fail(f"/api/health answered {response.status_code}: {error}", links=links)
    rows, failures, warnings = _health_rows(payload)
    status = str(payload.get("status", "missing"))
    details = table(["dependency", "status", "latency", "message"], rows)
    details += f"\nOverall status: *{status}* (HTTP {response.status_code})"
    data = {"status": status, "http_status": response.status_code, "failures": failures,
            "warnings": warnings}
    if response.status_code == 503 or not body.get("success"):
        failures.insert(0, f"HTTP {response.status_code}: {body.get('error') or 'unhealthy'}")
    if status != "ok" and not failures:
        failures.append(f"status is {status}")
    if failures:
        return StepResult.fail("; ".join(failures), details=details, links=links, data=data)
    fields = {"Manual Tests": "Health: /api/health ok"}
    if warnings:
        return StepResult.warn("Healthy, but " + "; ".join(warnings), details=details, links=links,
                               data=data, fields=fields)
    return StepResult.ok(f"Healthy: Supabase ok, {len(rows) - 1} other checks ok", details=details,
                         links=links, data=data, fields=fields)


@step("coach_stream", title="AI coach streams with citations", phase="validate",
      requires=("STAGING_URL", "STAGING_TEST_USER_EMAIL", "STAGING_TEST_USER_PASSWORD"), timeout=180,
      describe="Sign in as the staging test user, POST /api/marcus, expect streamed chunks and "
               "citations.")
async def coach_stream(ctx: StepContext) -> StepResult:
    """Sign in, then stream a coaching answer from `/api/marcus`."""
    settings = ctx.settings
    async with _client(ctx) as client:
        try:
            auth = await send(client, "POST", "/api/auth", provider="staging auth",
                              ok_statuses=(400, 422),
                              json={"action": "signIn", "email": settings.STAGING_TEST_USER_EMAIL,
                                    "password": settings.secret("STAGING_TEST_USER_PASSWORD")})
        except ProviderError as exc:
            return StepResult.fail(f"Sign-in failed: {exc}")
        if auth.status_code != 200:
            return StepResult.fail(f"Sign-in as {settings.STAGING_TEST_USER_EMAIL} was refused "
                                   f"({auth.status_code}: {error_message(auth)})")
        if not client.cookies:
            return StepResult.fail("Sign-in answered 200 but set no session cookie")
        return await _stream(ctx, client)


async def _stream(ctx: StepContext, client: httpx.AsyncClient) -> StepResult:
    message = ctx.option("message", ctx.settings.COACH_MESSAGE)
    body = {"message": message, "persona": "marcus", "mode": "coaching"}
    started = time.monotonic()
    first_chunk: float | None = None
    arrivals: list[float] = []
    reads: list[int] = []  # which network read each chunk came in
    text: list[str] = []
    complete: dict[str, Any] | None = None
    events: list[str] = []
    try:
        async with aconnect_sse(client, "POST", "/api/marcus", json=body,
                                headers={"Accept": "text/event-stream"}) as source:
            response = source.response
            counter = _CountingStream(response.stream)
            response.stream = counter
            if response.status_code != 200:
                await response.aread()
                return StepResult.fail(f"/api/marcus answered {response.status_code}: "
                                       f"{error_message(response)}")
            async for event in source.aiter_sse():
                events.append(event.event)
                data = _event_data(event.data)
                if event.event == "chunk":
                    now = time.monotonic()
                    first_chunk = first_chunk if first_chunk is not None else now - started
                    arrivals.append(now)
                    reads.append(counter.reads)
                    text.append(str(data.get("delta", "")))
                elif event.event == "complete":
                    complete = data
                    break
                elif event.event == "error":
                    return StepResult.fail(f"The coach stream sent an error: "
                                           f"{data.get('message') or data.get('error') or event.data}",
                                           data={"events": events})
    except httpx.TimeoutException:
        return StepResult.fail(f"The coach stream stalled (no data for "
                               f"{ctx.settings.HTTP_TIMEOUT_SECONDS:g}s) after events {events}")
    except httpx.HTTPError as exc:
        return StepResult.fail(f"The coach stream broke off: {type(exc).__name__}: {exc}")
    return _judge_stream(first_chunk, arrivals, text, complete, events, started,
                         len(set(reads)))


def _event_data(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {"raw": raw}
    return value if isinstance(value, dict) else {"value": value}


class _CountingStream(httpx.AsyncByteStream):
    """The response body, counting the network reads it takes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.inner:
            self.reads += 1
            yield part

    async def aclose(self) -> None:
        await self.inner.aclose()


def _judge_stream(first_chunk: float | None, arrivals: list[float], text: list[str],
                  complete: dict[str, Any] | None, events: list[str], started: float,
                  reads: int) -> StepResult:
    chunks = len(arrivals)
    total = time.monotonic() - started
    if chunks == 0:
        return StepResult.fail(f"The coach answered without streaming any chunk (events: {events})")
    if complete is None:
        return StepResult.fail(f"The stream ended after {plural(chunks, 'chunk')} without a `complete` "
                               "event")
    citations = complete.get("citations") or []
    spread = arrivals[-1] - arrivals[0] if chunks > 1 else 0.0
    # A buffered answer comes in one network read (or a few, microseconds apart) and parses into
    # several chunks at once; a streamed one arrives over separate reads, milliseconds apart.
    # Counting reads keeps a busy machine, which may pause between parsed chunks, from passing a
    # buffered answer.
    incremental = chunks > 1 and reads > 1 and spread >= MIN_STREAM_SPREAD
    rows = [["first chunk", f"{(first_chunk or 0) * 1000:.0f} ms"], ["chunks", str(chunks)],
            ["chunk spread", f"{spread * 1000:.0f} ms"], ["reads with chunks", str(reads)],
            ["total", f"{total * 1000:.0f} ms"],
            ["tokens", str(complete.get("tokens", "—"))], ["citations", str(len(citations))]]
    cites = "\n".join(f"• {_citation(c)}" for c in citations[:8])
    preview = "".join(text)[:300]
    details = table(["measure", "value"], rows) + (f"\nCitations:\n{cites}" if cites else "")
    details += f"\n> {preview}" if preview else ""
    data = {"first_chunk_ms": round((first_chunk or 0) * 1000), "chunks": chunks, "reads": reads,
            "citations": len(citations), "tokens": complete.get("tokens")}
    if not incremental:
        return StepResult.fail(f"The answer arrived in one piece ({plural(chunks, 'chunk')} in "
                               f"{plural(reads, 'read')} within {spread * 1000:.1f} ms), not "
                               "streamed",
                               details=details, data=data)
    if not citations:
        return StepResult.fail(f"Streamed {plural(chunks, 'chunk')} but `complete` carried no "
                               "citations",
                               details=details, data=data)
    streamed = f"{plural(chunks, 'chunk')}, first after {data['first_chunk_ms']} ms, "
    return StepResult.ok(f"Streamed {streamed}{plural(len(citations), 'citation')}",
                         details=details, data=data,
                         fields={"Manual Tests": f"AI coach: streamed {plural(chunks, 'chunk')} "
                                                 f"with {plural(len(citations), 'citation')}"})


def _citation(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("title") or value.get("source") or value.get("id") or value)[:150]
    return str(value)[:150]
