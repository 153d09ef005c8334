"""Run sandbox aiohttp applications on loopback, with scripted faults.

Every emulator in `sandbox` is an `aiohttp.web.Application`. `serve()` starts one on
127.0.0.1 on a free port inside the running event loop and yields its base URL;
`Faults` lets a test make the next N matching requests answer 401, 429 (with
`Retry-After`), 500, malformed JSON, or hang past the client's timeout.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAULTS_KEY: web.AppKey[Faults] = web.AppKey("faults", object)  # type: ignore[arg-type]
CALLS_KEY: web.AppKey[list[dict[str, Any]]] = web.AppKey("calls", list)


@dataclass
class Fault:
    """One scripted misbehaviour for requests whose `METHOD path` matches `pattern`."""

    pattern: str
    status: int = 500
    times: int = 1
    retry_after: int | None = None
    delay: float = 0.0
    body: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return re.search(self.pattern, f"{method} {path}") is not None


@dataclass
class Faults:
    """The faults an emulator still has to play, consumed in order."""

    pending: list[Fault] = field(default_factory=list)

    def add(
        self,
        pattern: str,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
        body: str | None = None,
    ) -> Fault:
        """Script a fault: `status` 0 with `delay` makes the request hang, `body` replaces JSON."""
        fault = Fault(pattern, status, times, retry_after, delay, body)
        self.pending.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self.pending:
            if fault.times > 0 and fault.matches(method, path):
                fault.times -= 1
                if fault.times == 0:
                    self.pending.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.pending.clear()


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every call, then play a scripted fault if one matches."""
    calls = request.app.get(CALLS_KEY)
    if calls is not None:
        body = await request.read()
        calls.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "body": body.decode("utf-8", "replace"),
                "headers": dict(request.headers),
            }
        )
    faults = request.app.get(FAULTS_KEY)
    fault = faults.take(request.method, request.path) if faults else None
    if fault is None:
        return await handler(request)
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status == 0:
        return await handler(request)
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.body is not None:
        return web.Response(
            status=fault.status, text=fault.body, headers=headers, content_type="application/json"
        )
    return web.json_response(
        {"error": {"code": f"sandbox_fault_{fault.status}", "message": "scripted fault"}},
        status=fault.status,
        headers=headers,
    )


def new_app() -> web.Application:
    """An application with fault injection and call recording installed."""
    app = web.Application(middlewares=[faults_middleware])
    app[FAULTS_KEY] = Faults()
    app[CALLS_KEY] = []
    return app


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` on loopback (a free port by default) and yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound_port = sockets[0].getsockname()[1] if sockets else port
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        await runner.cleanup()
