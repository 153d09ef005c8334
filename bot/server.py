"""HTTP mode: `POST /slack/events` into Bolt, `GET /healthz` for the platform's health checks.

On start the engine recovers releases from the release log (resuming those waiting on a
person) and the scheduler starts; on stop both wind down without touching stored state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.app import Runtime
from bot.scheduler import build_scheduler

log = logging.getLogger(__name__)


def create_web_app(app: AsyncApp, runtime: Runtime) -> web.Application:
    """The aiohttp application serving Slack's requests and the health check."""

    async def slack_events(request: web.Request) -> web.Response:
        bolt_response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def healthz(request: web.Request) -> web.Response:
        try:
            runtime.store.db.execute("select 1").fetchone()
        except Exception as exc:  # the platform wants a status, not a traceback
            return web.json_response({"ok": False, "error": type(exc).__name__}, status=503)
        active = runtime.store.active_release(runtime.settings.ENVIRONMENT)
        return web.json_response({"ok": True, "active_release": active.id if active else None})

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        scheduler = build_scheduler(runtime.store, runtime.reporter, runtime.lock)
        await runtime.engine.recover()
        scheduler.start()
        yield
        scheduler.shutdown(wait=False)
        await runtime.engine.shutdown()
        await runtime.reporter.flush()
        if runtime.telemetry is not None:
            runtime.telemetry.shutdown()

    web_app = web.Application(client_max_size=1024 * 1024)
    web_app.router.add_post("/slack/events", slack_events)
    web_app.router.add_get("/healthz", healthz)
    web_app.cleanup_ctx.append(lifecycle)
    return web_app
