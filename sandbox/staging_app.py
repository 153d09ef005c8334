"""A stand-in for the Pocket Philosopher staging deployment, for `release-bot demo` and tests.

`create_staging_app(state)` builds an aiohttp application (on `sandbox.server.new_app`, so
scripted faults and call recording come with it) that answers on the same wire shapes as the
real Next.js app's routes:

- `GET /` — the dashboard HTML (carries `state.dashboard_marker`, registers `/sw.js`).
- `GET /api/health` — `{"success": true, "data": {status, timestamp, dependencies}}`; when
  Supabase is down, 503 `{"success": false, "error": "Health check failed", "details": payload}`.
- `POST /api/auth` — `{"action": "signIn", email, password}` answers the Supabase session as
  `data` and sets the `sb-<ref>-auth-token` cookie the way `@supabase/ssr` does
  (`base64-` + base64url JSON, split into `.0`, `.1`, ... when longer than 3180 characters);
  `DELETE /api/auth` signs out.
- `POST /api/marcus` — the AI coach: 401 without a session cookie, otherwise a
  `text/event-stream` of `start`, `chunk`s (`{"delta", "tokens"}`), then `complete`
  (`{"conversation_id", "message_id", "citations", "tokens"}`) or `error` (`{"message"}`).
- `GET /api/version` — the build's commit, `{"success": true, "data": {"commit", "buildId"}}`
  (404 when the state knows no commit); every response also carries it in `x-commit-sha`, as an
  app exposing `VERCEL_GIT_COMMIT_SHA` would. `state.commit_source` (the demo wires it to the
  Vercel emulator's alias) says which commit the staging domain serves right now.
- PWA pieces for the `pwa-offline` Playwright spec: `/manifest.webmanifest`, `/sw.js` (caches
  `FONT_PATH` in the `pp-fonts` cache and serves `/offline` when the network is gone),
  `FONT_PATH`, and `/offline` (heading "You're offline").

Every behaviour reads the mutable `StagingState` at request time, so a test flips a field
(`state.supabase_ok = False`, `state.pwa_broken = True`, ...) and the next request fails.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.server import new_app

PROVIDER_IDS: tuple[str, ...] = ("openai", "anthropic", "together", "ollama")
FONT_PATH = "/fonts/pocket-serif.woff2"
FONT_CACHE = "pp-fonts"
COOKIE_CHUNK_SIZE = 3180
COOKIE_MAX_AGE = 400 * 24 * 60 * 60
COACH_UNAVAILABLE = "Your coach is unavailable right now. Please try again shortly."
INVALID_CREDENTIALS = "Invalid login credentials"
COMMIT_HEADER = "x-commit-sha"
_JWT_SECRET = b"sandbox-staging-jwt-secret"


def _default_providers() -> dict[str, bool]:
    return {"openai": True, "anthropic": True, "together": False, "ollama": False}


def _default_citations() -> list[dict[str, Any]]:
    return [
        {"id": "meditations-4-3", "title": "Meditations", "reference": "Book IV, 3"},
        {"id": "enchiridion-1", "title": "Enchiridion", "reference": "Chapter 1"},
    ]


@dataclass
class StagingState:
    """What the sandbox staging app answers; tests mutate it between requests."""

    dashboard_marker: str = "Pocket Philosopher"
    dashboard_status: int = 200
    dashboard_empty: bool = False
    build_id: str = "sandbox"
    supabase_ok: bool = True
    supabase_error: str = "fetch failed: connect ECONNREFUSED"
    supabase_latency_ms: int = 14
    supabase_ref: str = "ppstaging"
    analytics_enabled: bool = True
    providers: dict[str, bool] = field(default_factory=_default_providers)
    provider_status: dict[str, str] = field(default_factory=dict)
    provider_latency_ms: int = 180
    test_user_email: str = "qa@pocketphilosopher.app"
    test_user_password: str = "staging-smoke-2025"  # noqa: S105 (sandbox test user)
    test_user_id: str = "5f0c3a52-3c41-4c52-9a8e-7a2f9c1d0b11"
    sessions: set[str] = field(default_factory=set)
    citations: list[dict[str, Any]] = field(default_factory=_default_citations)
    chunk_count: int = 5
    chunk_delay: float = 0.02
    first_chunk_delay: float = 0.0
    fail_after_chunks: int | None = None
    pwa_broken: bool = False
    # Send the whole answer in one write, as a proxy that buffers the stream would.
    buffered_stream: bool = False
    # Called after each completed coach answer, as the real app captures `i_chat_completed`
    # to PostHog; the demo wires it to the PostHog emulator.
    on_chat_completed: Callable[[dict[str, Any]], None] | None = None
    # The Git commit this build reports (`/api/version`, the x-commit-sha header); None: unknown.
    commit: str | None = None
    # When set, asked on every request instead of `commit` (which build serves right now).
    commit_source: Callable[[], str | None] | None = None

    def serving_commit(self) -> str | None:
        """The commit the app reports now: `commit_source()` when set, else `commit`."""
        if self.commit_source is not None:
            return self.commit_source()
        return self.commit

    def any_provider_configured(self) -> bool:
        """True when at least one AI provider has credentials."""
        return any(self.providers.get(pid, False) for pid in PROVIDER_IDS)

    def provider_health(self, provider_id: str) -> str:
        """The registry status of one provider: healthy, degraded or unavailable."""
        if provider_id in self.provider_status:
            return self.provider_status[provider_id]
        return "healthy" if self.providers.get(provider_id, False) else "unavailable"


STATE_KEY: web.AppKey[StagingState] = web.AppKey("staging_state", StagingState)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _request_id() -> dict[str, str]:
    return {"X-Request-ID": str(uuid.uuid4())}


def api_success(data: Any, *, status: int = 200) -> web.Response:
    """The app's `{"success": true, "data": ...}` envelope."""
    return web.json_response({"success": True, "data": data}, status=status, headers=_request_id())


def api_error(message: str, *, status: int, details: Any = None) -> web.Response:
    """The app's `{"success": false, "error": ..., "details"?: ...}` envelope."""
    body: dict[str, Any] = {"success": False, "error": message}
    if details:
        body["details"] = details
    return web.json_response(body, status=status, headers=_request_id())


# --- dashboard and PWA ---------------------------------------------------------------------


def _dashboard_html(state: StagingState) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="pp-build" content="{state.build_id}">
<title>{state.dashboard_marker}</title>
<link rel="manifest" href="/manifest.webmanifest">
<style>
@font-face {{ font-family: "Pocket Serif"; src: url("{FONT_PATH}") format("woff2"); }}
body {{ font-family: "Pocket Serif", Georgia, serif; background: #0f172a; color: #e2e8f0; }}
</style>
</head>
<body>
<main>
<h1>{state.dashboard_marker}</h1>
<section aria-label="Today"><h2>Today's practices</h2><p>Morning intention, evening review.</p>
</section>
</main>
<script>
if ("serviceWorker" in navigator) {{
  window.addEventListener("load", function () {{ navigator.serviceWorker.register("/sw.js"); }});
}}
</script>
</body>
</html>
"""


OFFLINE_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Offline | Pocket Philosopher</title></head>
<body><main><h1>You're offline</h1>
<p>Your reflections are saved on this device and will sync when you reconnect.</p></main></body>
</html>
"""

SERVICE_WORKER_JS = """// Sandbox service worker.
// Fonts: cache-first in pp-fonts. Pages: network-first, /offline when the network is gone.
const FONT_CACHE = "pp-fonts";
const PAGE_CACHE = "pp-pages";
const OFFLINE_URL = "/offline";
const PRECACHE_FONTS = ["__FONT_PATH__"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    Promise.all([
      caches.open(FONT_CACHE).then((cache) => cache.addAll(PRECACHE_FONTS)),
      caches.open(PAGE_CACHE).then((cache) => cache.add(OFFLINE_URL)),
    ]).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

function isFont(request) {
  return request.destination === "font" || new URL(request.url).pathname.endsWith(".woff2");
}

async function fontFirst(request) {
  const cache = await caches.open(FONT_CACHE);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function pageNetworkFirst(request) {
  const cache = await caches.open(PAGE_CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (err) {
    return (await cache.match(request)) || (await cache.match(OFFLINE_URL)) || Response.error();
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  if (isFont(request)) {
    event.respondWith(fontFirst(request));
  } else if (request.mode === "navigate") {
    event.respondWith(pageNetworkFirst(request));
  }
});
""".replace("__FONT_PATH__", FONT_PATH)

BROKEN_SERVICE_WORKER_JS = """// Sandbox service worker, broken build.
// It installs but caches nothing and handles no fetch.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
"""

MANIFEST: dict[str, Any] = {
    "name": "Pocket Philosopher",
    "short_name": "Philosopher",
    "start_url": "/?source=pwa",
    "display": "standalone",
    "background_color": "#0f172a",
    "theme_color": "#0f172a",
    "description": "Daily philosophy practices, reflections and an AI coach.",
    "icons": [{"src": "/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"}],
}

ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
    '<rect width="64" height="64" rx="12" fill="#0f172a"/>'
    '<text x="32" y="42" font-size="28" text-anchor="middle" fill="#e2e8f0">PP</text></svg>'
)

# Starts with the WOFF2 signature; the browser may refuse to render it, which the spec ignores.
FONT_BYTES = b"wOF2" + b"\x00\x01\x00\x00" + bytes(range(256)) * 4


async def dashboard(request: web.Request) -> web.Response:
    """GET /: the dashboard page, or a 5xx / empty page when the state says so."""
    state = request.app[STATE_KEY]
    if state.dashboard_status >= 400:
        return web.Response(
            status=state.dashboard_status,
            text="<!doctype html><h1>Application error</h1>",
            content_type="text/html",
        )
    text = "" if state.dashboard_empty else _dashboard_html(state)
    return web.Response(status=state.dashboard_status, text=text, content_type="text/html")


async def version(request: web.Request) -> web.Response:
    """GET /api/version: the commit this build was made from (404 when unknown)."""
    state = request.app[STATE_KEY]
    commit = state.serving_commit()
    if not commit:
        return api_error("Not found", status=404)
    return api_success({"commit": commit, "buildId": state.build_id})


async def _commit_header(request: web.Request, response: web.StreamResponse) -> None:
    commit = request.app[STATE_KEY].serving_commit()
    if commit:
        response.headers[COMMIT_HEADER] = commit


async def offline_page(request: web.Request) -> web.Response:
    """GET /offline: the page the service worker falls back to."""
    return web.Response(text=OFFLINE_HTML, content_type="text/html")


async def service_worker(request: web.Request) -> web.Response:
    """GET /sw.js: the service worker (a do-nothing one when `state.pwa_broken`)."""
    state = request.app[STATE_KEY]
    body = BROKEN_SERVICE_WORKER_JS if state.pwa_broken else SERVICE_WORKER_JS
    return web.Response(
        text=body, content_type="application/javascript", headers={"Cache-Control": "no-cache"}
    )


async def manifest(request: web.Request) -> web.Response:
    """GET /manifest.webmanifest."""
    return web.Response(text=json.dumps(MANIFEST), content_type="application/manifest+json")


async def icon(request: web.Request) -> web.Response:
    """GET /icon.svg."""
    return web.Response(text=ICON_SVG, content_type="image/svg+xml")


async def font(request: web.Request) -> web.Response:
    """GET FONT_PATH: a small woff2-typed file for the font cache."""
    return web.Response(
        body=FONT_BYTES,
        content_type="font/woff2",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


# --- health --------------------------------------------------------------------------------


def _provider_stats(state: StagingState, now: str) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for pid in PROVIDER_IDS:
        status = state.provider_health(pid)
        ok = status == "healthy"
        stats[pid] = {
            "status": status,
            "lastCheckedAt": now,
            "latencyMs": state.provider_latency_ms if status != "unavailable" else 0,
            "successCount": 3 if ok else 0,
            "failureCount": 0 if ok else 1,
            "degradedCount": 1 if status == "degraded" else 0,
            "lastSuccessAt": now if ok else None,
            "lastFailureAt": None if ok else now,
            "error": None if ok else {"message": f"{pid} health check failed"},
        }
    return stats


def _selection(state: StagingState, now: str) -> dict[str, Any] | None:
    for pid in PROVIDER_IDS:
        if state.providers.get(pid, False):
            status = state.provider_health(pid)
            return {
                "providerId": pid,
                "providerStatus": status,
                "fallbackUsed": status != "healthy",
                "selectedAt": now,
            }
    return None


def health_payload(state: StagingState) -> dict[str, Any]:
    """The `data` (or `details`) object of /api/health for the current state."""
    now = _now_iso()
    return {
        "status": "ok" if state.supabase_ok else "degraded",
        "timestamp": now,
        "dependencies": {
            "supabase": {
                "status": "ok" if state.supabase_ok else "error",
                "latencyMs": state.supabase_latency_ms,
                "message": None if state.supabase_ok else state.supabase_error,
            },
            "analytics": {"status": "ok" if state.analytics_enabled else "disabled"},
            "aiProviders": {
                "configuration": {
                    pid: "configured" if state.providers.get(pid, False) else "missing"
                    for pid in PROVIDER_IDS
                },
                "selection": _selection(state, now),
                "stats": _provider_stats(state, now),
            },
        },
    }


async def health(request: web.Request) -> web.Response:
    """GET /api/health: 200 with the payload, or 503 with it as `details`."""
    state = request.app[STATE_KEY]
    payload = health_payload(state)
    if not state.supabase_ok:
        return api_error("Health check failed", status=503, details=payload)
    return api_success(payload)


# --- auth ----------------------------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _access_token(state: StagingState, expires_at: int) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {
        "aud": "authenticated",
        "exp": expires_at,
        "iat": expires_at - 3600,
        "sub": state.test_user_id,
        "email": state.test_user_email,
        "role": "authenticated",
        "session_id": str(uuid.uuid4()),
    }
    body = _b64url(json.dumps(claims).encode())
    signature = hmac.new(_JWT_SECRET, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(signature)}"


def _user(state: StagingState, now: str) -> dict[str, Any]:
    return {
        "id": state.test_user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": state.test_user_email,
        "email_confirmed_at": now,
        "last_sign_in_at": now,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "identities": [],
        "created_at": "2025-01-01T00:00:00.000Z",
        "updated_at": now,
        "is_anonymous": False,
    }


def cookie_name(state: StagingState) -> str:
    """The `@supabase/ssr` session cookie name for this project ref."""
    return f"sb-{state.supabase_ref}-auth-token"


def _session_cookies(state: StagingState, session: dict[str, Any]) -> dict[str, str]:
    value = "base64-" + _b64url(json.dumps(session, separators=(",", ":")).encode())
    name = cookie_name(state)
    if len(value) <= COOKIE_CHUNK_SIZE:
        return {name: value}
    parts = [value[i : i + COOKIE_CHUNK_SIZE] for i in range(0, len(value), COOKIE_CHUNK_SIZE)]
    return {f"{name}.{index}": part for index, part in enumerate(parts)}


def session_from_cookies(state: StagingState, cookies: Any) -> dict[str, Any] | None:
    """The session stored in the request's cookies, if it is one this app issued."""
    name = cookie_name(state)
    value = cookies.get(name)
    if value is None:
        parts = []
        index = 0
        while f"{name}.{index}" in cookies:
            parts.append(cookies[f"{name}.{index}"])
            index += 1
        value = "".join(parts) or None
    if not value or not value.startswith("base64-"):
        return None
    try:
        session = json.loads(_b64url_decode(value[len("base64-") :]))
    except ValueError:
        return None
    if not isinstance(session, dict) or session.get("access_token") not in state.sessions:
        return None
    if int(session.get("expires_at", 0)) < time.time():
        return None
    return session


def _field_errors(body: Any) -> dict[str, list[str]]:
    if not isinstance(body, dict):
        return {}
    errors: dict[str, list[str]] = {}
    action = body.get("action")
    if action not in ("signIn", "signUp", "anonymous"):
        errors["action"] = [
            "Invalid discriminator value. Expected 'signIn' | 'signUp' | 'anonymous'"
        ]
        return errors
    if action == "anonymous":
        return errors
    email = body.get("email")
    if not isinstance(email, str):
        errors["email"] = ["Required"]
    elif "@" not in email or "." not in email.rsplit("@", 1)[-1]:
        errors["email"] = ["Invalid email"]
    password = body.get("password")
    if not isinstance(password, str):
        errors["password"] = ["Required"]
    elif len(password) < 6:
        errors["password"] = ["String must contain at least 6 character(s)"]
    return errors


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


async def auth(request: web.Request) -> web.Response:
    """POST /api/auth: signIn (sets the session cookie), signUp and anonymous are refused."""
    state = request.app[STATE_KEY]
    body = await _json_body(request)
    errors = _field_errors(body)
    if body is None or errors:
        details = {
            "formErrors": [] if body is not None else ["Expected object"],
            "fieldErrors": errors,
        }
        return api_error("Invalid payload", status=400, details=details)
    if body["action"] == "anonymous":
        return api_error("Anonymous sign-ins are disabled", status=400)
    if body["action"] == "signUp":
        return api_error("Signups not allowed for this instance", status=400)
    if body["email"] != state.test_user_email or body["password"] != state.test_user_password:
        return api_error(INVALID_CREDENTIALS, status=400)

    now = _now_iso()
    expires_at = int(time.time()) + 3600
    token = _access_token(state, expires_at)
    state.sessions.add(token)
    user = _user(state, now)
    session = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": 3600,
        "expires_at": expires_at,
        "refresh_token": secrets.token_urlsafe(12),
        "user": user,
    }
    response = api_success({"user": user, "session": session})
    for name, value in _session_cookies(state, session).items():
        response.set_cookie(name, value, path="/", max_age=COOKIE_MAX_AGE, samesite="Lax")
    return response


async def sign_out(request: web.Request) -> web.Response:
    """DELETE /api/auth: forget the session and clear its cookie."""
    state = request.app[STATE_KEY]
    session = session_from_cookies(state, request.cookies)
    if session is not None:
        state.sessions.discard(session["access_token"])
    response = api_success({"success": True})
    for name in request.cookies:
        if name.startswith(cookie_name(state)):
            response.del_cookie(name, path="/")
    return response


# --- the AI coach --------------------------------------------------------------------------


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def coach_reply(persona: str, message: str, parts: int) -> list[str]:
    """A canned coach answer about `message`, cut into `parts` deltas."""
    name = persona.capitalize() or "Marcus"
    topic = " ".join(message.split())[:80] or "this moment"
    text = (
        f"{name} here. You shared about {topic}. "
        "Notice what is within your control and what is not. "
        "Choose one small deliberate act for today, and do it well. "
        "Tonight, write two sentences on how it went."
    )
    words = text.split(" ")
    parts = max(1, min(parts, len(words)))
    size = math.ceil(len(words) / parts)
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [chunk if index == 0 else " " + chunk for index, chunk in enumerate(chunks)]


async def marcus(request: web.Request) -> web.StreamResponse:
    """POST /api/marcus: the streamed coach reply, shaped as the real route's SSE events."""
    state = request.app[STATE_KEY]
    if session_from_cookies(state, request.cookies) is None:
        return api_error("Unauthorized", status=401)
    body = await _json_body(request)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        field_errors = {"message": ["Required" if message is None else "Invalid message"]}
        details = {"formErrors": [], "fieldErrors": field_errors}
        return api_error("Invalid payload", status=400, details=details)
    persona = body.get("persona") if isinstance(body.get("persona"), str) else "marcus"
    conversation_id = body.get("conversation_id") or str(uuid.uuid4())
    message_id = str(uuid.uuid4())

    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache, no-transform",
            "Connection": "keep-alive",
        }
    )
    await response.prepare(request)
    await response.write(
        _sse(
            "start",
            {"conversation_id": conversation_id, "message_id": message_id, "persona_id": persona},
        )
    )
    if not state.any_provider_configured():
        await response.write(_sse("error", {"message": COACH_UNAVAILABLE}))
        await response.write_eof()
        return response

    if state.first_chunk_delay:
        await asyncio.sleep(state.first_chunk_delay)
    aggregated = ""
    held: list[bytes] = []
    for index, delta in enumerate(coach_reply(persona, message, state.chunk_count)):
        if state.fail_after_chunks is not None and index >= state.fail_after_chunks:
            await response.write(_sse("error", {"message": COACH_UNAVAILABLE}))
            await response.write_eof()
            return response
        if index and state.chunk_delay:
            await asyncio.sleep(state.chunk_delay)
        aggregated += delta
        tokens = max(1, math.ceil(len(aggregated.strip()) / 4))
        if state.buffered_stream:
            held.append(_sse("chunk", {"delta": delta, "tokens": tokens}))
        else:
            await response.write(_sse("chunk", {"delta": delta, "tokens": tokens}))

    await response.write(
        b"".join(held)
        + _sse(
            "complete",
            {
                "conversation_id": conversation_id,
                "message_id": message_id,
                "citations": list(state.citations),
                "tokens": max(1, math.ceil(len(aggregated.strip()) / 4)),
            },
        )
    )
    await response.write_eof()
    if state.on_chat_completed is not None:
        state.on_chat_completed({"persona": persona, "user_id": state.test_user_id,
                                 "conversation_id": conversation_id})
    return response


def create_staging_app(state: StagingState | None = None) -> web.Application:
    """The sandbox staging app; pass a `StagingState` to keep a handle on its behaviour."""
    app = new_app()
    app[STATE_KEY] = state if state is not None else StagingState()
    app.on_response_prepare.append(_commit_header)
    app.router.add_get("/", dashboard)
    app.router.add_get("/offline", offline_page)
    app.router.add_get("/sw.js", service_worker)
    app.router.add_get("/manifest.webmanifest", manifest)
    app.router.add_get("/icon.svg", icon)
    app.router.add_get(FONT_PATH, font)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/version", version)
    app.router.add_post("/api/auth", auth)
    app.router.add_delete("/api/auth", sign_out)
    app.router.add_post("/api/marcus", marcus)
    return app
