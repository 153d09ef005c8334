"""HTTP for providers: one client factory and one retry policy.

Every provider takes an `httpx.AsyncClient` whose base URL comes from settings. `send()` retries
timeouts, connection errors and 5xx a few times with backoff, honours `Retry-After` on 429, and
turns what is left into a `ProviderError` whose message says what happened in plain words.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from datetime import UTC, datetime
from typing import Any

import httpx

USER_AGENT = "release-bot/0.1 (+https://github.com/steven-d-pennington/pocket-philosopher)"


MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After fails the call and says so


class ProviderError(Exception):
    """A provider call failed in a way the step reports; `status` is the HTTP status if any."""

    def __init__(self, provider: str, message: str, status: int | None = None) -> None:
        self.provider = provider
        self.status = status
        super().__init__(f"{provider}: {message}")


def make_client(
    base_url: str,
    *,
    token: str | None = None,
    timeout: float = 15.0,
    headers: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient for one provider, with bearer auth when `token` is given."""
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    return httpx.AsyncClient(
        base_url=base_url,
        headers=all_headers,
        timeout=httpx.Timeout(timeout),
        transport=transport,
        follow_redirects=False,
    )


def retry_after_seconds(response: httpx.Response, default: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait from a `Retry-After` header (delta seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return default
    try:
        return min(max(float(value), 0.0), cap)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return default
        return min(max((parsed - datetime.now(UTC)).total_seconds(), 0.0), cap)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    attempts: int = 3,
    backoff: float = 0.5,
    auth_hint: str = "the token was rejected",
    ok_statuses: tuple[int, ...] = (),
    idempotent: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    """Send with retries; returns a 2xx (or `ok_statuses`) response or raises ProviderError.

    A request that is not `idempotent` (it creates something: a deployment, a restore) is not
    sent again after a timeout or a 5xx, since the first one may have been carried out; a 429 is
    still retried, as the server refused it before doing anything.
    """
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            last = f"timed out after {client.timeout.read or 0:g}s ({method} {url})"
        except httpx.TransportError as exc:
            last = f"could not connect ({type(exc).__name__}: {exc})"
        else:
            status = response.status_code
            if status < 300 or status in ok_statuses:
                return response
            limited = status == 403 and (
                "Retry-After" in response.headers or response.headers.get("x-ratelimit-remaining") == "0")
            if status in (401, 403) and not limited:
                raise ProviderError(provider, f"{status}: {auth_hint}", status)
            if status == 429 or limited:
                wait = retry_after_seconds(response, cap=3600)
                if wait > MAX_RETRY_AFTER:
                    raise ProviderError(provider, f"rate limited ({status}); the provider asks to wait "
                                        f"{wait:g}s, longer than the bot waits", status)
                last = f"rate limited ({status}, Retry-After {wait:g}s)"
                if attempt < attempts:
                    await asyncio.sleep(wait)
                    continue
                raise ProviderError(provider, last + f" after {attempts} attempts", status)
            if status >= 500:
                last = f"server error {status}"
            else:
                raise ProviderError(provider, f"{status}: {error_message(response)}", status)
        if not idempotent:
            raise ProviderError(provider, f"{last} (not retried: the request may have been carried out)")
        if attempt < attempts:
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
    raise ProviderError(provider, f"{last} (gave up after {attempts} attempts)")


def error_message(response: httpx.Response) -> str:
    """The most useful line of an error body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, ValueError):
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or err)
        for key in ("message", "detail", "error", "msg"):
            if body.get(key):
                return str(body[key])
    return str(body)[:200]


def json_body(response: httpx.Response, provider: str) -> Any:
    """The JSON body, or a ProviderError saying the answer was not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, ValueError) as exc:
        snippet = response.text[:80].replace("\n", " ")
        raise ProviderError(
            provider, f"answered {response.status_code} with malformed JSON: {snippet!r}"
        ) from exc


def json_object(body: Any, provider: str, what: str) -> dict[str, Any]:
    """`body` when it is a JSON object, else a ProviderError naming `what` was answered."""
    if not isinstance(body, dict):
        raise ProviderError(provider, f"answered {what} with something other than a JSON object")
    return body
