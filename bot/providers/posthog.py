"""PostHog's query API: HogQL over the events table, with a personal API key.

`hogql()` posts a `HogQLQuery` to `POST /api/projects/{project_id}/query/` and returns the
columns and rows. The helpers build the two queries the telemetry steps need (newest timestamp
per event; count and newest of one event since a time, filtered to staging) as real HogQL, with
every value quoted as a HogQL string literal and event and property names validated first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.providers.http import ProviderError, json_body, send

PROVIDER = "PostHog"
AUTH_HINT = "the personal API key was rejected or lacks the query:read permission"
EVENT_NAME_RE = re.compile(r"^[A-Za-z0-9_$.:-]+$")
PROPERTY_NAME_RE = re.compile(r"^\$?[A-Za-z_]\w*$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class EventCount:
    """How many matching events there were, and the newest one's time (None when none)."""

    count: int
    newest: datetime | None


async def hogql(
    client: httpx.AsyncClient, project_id: str, query: str, *, refresh: str = "force_blocking"
) -> tuple[list[str], list[list[Any]]]:
    """Run a HogQL query; return (columns, rows) or raise ProviderError.

    `refresh="force_blocking"` makes PostHog compute fresh results instead of answering from its
    query cache, which a freshness check or a poll must not see.
    """
    response = await send(
        client,
        "POST",
        f"/api/projects/{project_id}/query/",
        provider=PROVIDER,
        auth_hint=AUTH_HINT,
        json={"query": {"kind": "HogQLQuery", "query": query}, "refresh": refresh},
    )
    body = json_body(response, PROVIDER)
    if not isinstance(body, dict):
        raise ProviderError(PROVIDER, "answered the query with something other than a JSON object")
    if body.get("error"):
        raise ProviderError(PROVIDER, f"the query failed: {body['error']}")
    columns, rows = body.get("columns"), body.get("results")
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise ProviderError(PROVIDER, "answered the query without `columns` and `results`")
    if not all(isinstance(row, list) for row in rows):
        raise ProviderError(PROVIDER, "answered the query with rows that are not lists")
    return [str(c) for c in columns], rows


def quote(value: str) -> str:
    """`value` as a HogQL string literal (backslashes and quotes escaped)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def like_prefix(prefix: str) -> str:
    """A LIKE pattern literal matching strings that start with `prefix` (wildcards escaped)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return quote(escaped + "%")


def check_event_name(name: str) -> str:
    """`name` if it is a plain event name, else ValueError."""
    if not EVENT_NAME_RE.match(name):
        raise ValueError(f"event name {name!r} has characters outside A-Z a-z 0-9 _ $ . : -")
    return name


def check_property_name(name: str) -> str:
    """`name` if it can be written as `properties.<name>`, else ValueError."""
    if not PROPERTY_NAME_RE.match(name):
        raise ValueError(f"property name {name!r} must be letters, digits and _ (optionally $ first)")
    return name


def hogql_time(moment: datetime) -> str:
    """A `toDateTime('...')` expression for an aware datetime, in UTC."""
    utc = moment.astimezone(UTC).replace(microsecond=0, tzinfo=None)
    return f"toDateTime({quote(utc.isoformat() + 'Z')})"


def parse_time(value: Any) -> datetime | None:
    """A timestamp cell as an aware datetime; None for empty cells and ClickHouse's epoch zero."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError as exc:
        raise ProviderError(PROVIDER, f"answered a timestamp it could not parse: {value!r}") from exc
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None if parsed <= EPOCH else parsed


async def last_seen(
    client: httpx.AsyncClient, project_id: str, events: list[str], lookback_days: int = 30
) -> dict[str, datetime | None]:
    """The newest timestamp of each event within `lookback_days` (None when not seen)."""
    names = [check_event_name(e) for e in events]
    # Names are validated and every value goes through quote(), so these are not injectable.
    where = (
        f"event IN ({', '.join(quote(n) for n in names)})"
        f" AND timestamp > now() - INTERVAL {int(lookback_days)} DAY"
    )
    query = f"SELECT event, max(timestamp) AS last_seen FROM events WHERE {where} GROUP BY event"  # noqa: S608
    _, rows = await hogql(client, project_id, query)
    seen: dict[str, datetime | None] = {name: None for name in names}
    for row in rows:
        if len(row) < 2:
            raise ProviderError(PROVIDER, "answered the freshness query with short rows")
        if str(row[0]) in seen:
            seen[str(row[0])] = parse_time(row[1])
    return seen


async def count_since(
    client: httpx.AsyncClient,
    project_id: str,
    event: str,
    since: datetime,
    *,
    distinct_id_prefix: str | None = None,
    property_filter: tuple[str, str] | None = None,
) -> EventCount:
    """Count `event` since `since`, filtered by distinct-id prefix or by one property value."""
    conditions = [f"event = {quote(check_event_name(event))}", f"timestamp >= {hogql_time(since)}"]
    if distinct_id_prefix:
        conditions.append(f"distinct_id LIKE {like_prefix(distinct_id_prefix)}")
    elif property_filter is not None:
        name, value = property_filter
        conditions.append(f"properties.{check_property_name(name)} = {quote(value)}")
    where = " AND ".join(conditions)
    query = f"SELECT count() AS n, max(timestamp) AS newest FROM events WHERE {where}"  # noqa: S608
    _, rows = await hogql(client, project_id, query)
    if not rows or len(rows[0]) < 2:
        return EventCount(0, None)
    try:
        count = int(rows[0][0])
    except (TypeError, ValueError) as exc:
        raise ProviderError(PROVIDER, f"answered a count that is not a number: {rows[0][0]!r}") from exc
    return EventCount(count, parse_time(rows[0][1]) if count else None)
