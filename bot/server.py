"""HTTP mode: `POST /slack/events` into Bolt, `GET /healthz` for the platform's health checks.

`/slack/events` is on the public internet. Before Bolt sees a request, `bot.slack_request.check`
verifies its signature on the raw bytes (401 otherwise) and that its body is one Slack could
send (400 otherwise); the replay guard then drops a request already acted on (200, nothing done).
No request body is ever logged. On start the engine recovers releases from the release log
(resuming those waiting on a person) and the scheduler starts; on stop both wind down without
touching stored state.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp

from bot.app import Runtime
from bot.config import MissingSetting
from bot.replay import RedisSeen, ReplayGuard, SqliteSeen
from bot.scheduler import start_scheduler
from bot.slack_request import Accepted, Verifier, bolt_request, check

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024


def settle_heap() -> None:
    """Once started, take every object alive (modules, settings, the app, the runbook) out of the
    garbage collector's view (`gc.freeze()`): they live as long as the process, and otherwise
    each full collection walks all of them again while acknowledgements wait (measured: a 50 to
    75 ms pause during a burst of 50 `/release help`; none once frozen)."""
    gc.collect()
    gc.freeze()


def replay_guard(runtime: Runtime) -> ReplayGuard:
    """Redis when the bot has one (shared by every process), the release log's SQLite otherwise."""
    sqlite = SqliteSeen.beside(runtime.store.db.conn)
    if runtime.lock is not None:
        return ReplayGuard(RedisSeen(runtime.lock.client), fallback=sqlite)
    return ReplayGuard(sqlite)


def create_web_app(app: AsyncApp, runtime: Runtime) -> web.Application:
    """The aiohttp application serving Slack's requests and the health check."""
    secret = runtime.settings.secret("SLACK_SIGNING_SECRET")
    if not secret:  # Bolt does not check signatures again (bot.app), so this one must
        raise MissingSetting("SLACK_SIGNING_SECRET")
    verifier = Verifier(secret)
    guard = replay_guard(runtime)

    async def slack_events(request: web.Request) -> web.Response:
        raw = await request.read()
        verdict = check(request.headers, raw, verifier)
        if not isinstance(verdict, Accepted):
            log.info("refused a request to /slack/events: %s (%d bytes)", verdict.reason, len(raw))
            return web.Response(status=verdict.status, text=verdict.reason)
        if not await guard.first_time(verdict.keys):
            log.info("dropped a repeated Slack request%s",
                     " (Slack's retry)" if verdict.retry else "")
            return web.Response(status=200, text="")
        try:
            bolt_response = await app.async_dispatch(
                bolt_request(verdict, request.query_string, request.headers))
        except Exception as exc:  # a listener bug must not leak a traceback to the caller
            log.error("Slack request failed: %s", type(exc).__name__)
            return web.Response(status=200, text="")
        return await to_aiohttp_response(bolt_response)

    async def healthz(request: web.Request) -> web.Response:
        try:
            runtime.store.db.execute("select 1").fetchone()
        except Exception as exc:  # the platform wants a status, not a traceback
            return web.json_response({"ok": False, "error": type(exc).__name__}, status=503)
        active = runtime.store.active_release(runtime.settings.ENVIRONMENT)
        return web.json_response({"ok": True, "active_release": active.id if active else None})

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await runtime.engine.recover()
        scheduler = start_scheduler(runtime)
        settle_heap()
        yield
        gc.unfreeze()  # an in-process server (the tests) gives its objects back to the collector
        scheduler.shutdown(wait=False)
        try:
            await guard.close()
        except Exception as exc:  # a full disk must not keep the engine and the chat from closing
            log.warning("replay guard: could not write its last keys: %s", type(exc).__name__)
        await runtime.close()

    async def no_server_header(_: web.Request, response: web.StreamResponse) -> None:
        response.headers.pop("Server", None)

    web_app = web.Application(client_max_size=MAX_BODY)
    web_app.router.add_post("/slack/events", slack_events)
    web_app.router.add_get("/healthz", healthz)
    web_app.on_response_prepare.append(no_server_header)
    web_app.cleanup_ctx.append(lifecycle)
    return web_app
