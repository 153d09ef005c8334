"""The `coach_stream` step: sign in as the staging test user, then stream an AI coach answer
and check that chunks arrive incrementally and `complete` carries citations.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from bot.chat.blocks import table
from bot.providers.http import ProviderError, error_message, send
from bot.runbook.model import StepResult
from bot.runbook.step import StepContext, StepDef
from bot.steps.staging_http import staging_client
from bot.wording import plural

MIN_STREAM_SPREAD = 0.005  # seconds between the first and the last chunk


async def coach_stream(ctx: StepContext) -> StepResult:
    """Sign in, then stream a coaching answer from `/api/marcus`."""
    settings = ctx.settings
    async with staging_client(ctx) as client:
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
                         fields={"Automated Checks": f"AI coach: streamed {plural(chunks, 'chunk')} "
                                                 f"with {plural(len(citations), 'citation')}"})


def _citation(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("title") or value.get("source") or value.get("id") or value)[:150]
    return str(value)[:150]


STEP = StepDef(
    name="coach_stream",
    title="AI coach streams with citations",
    requires=("STAGING_URL", "STAGING_TEST_USER_EMAIL", "STAGING_TEST_USER_PASSWORD"),
    timeout=180,
    describe="Sign in as the staging test user, POST /api/marcus, expect streamed chunks and "
             "citations.",
    run=coach_stream,
)
