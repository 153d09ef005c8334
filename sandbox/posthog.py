"""Local emulator of PostHog's query API and event ingestion.

`POST /api/projects/{project_id}/query/` runs a small, honest subset of HogQL over the
in-memory events table and answers in PostHog's `HogQLQueryResponse` shape (`results`,
`columns`, `types`, `hogql`, `is_cached`, ...). Supported:

    SELECT <items> FROM events [WHERE <cond> [AND <cond>]...] [GROUP BY event]
           [ORDER BY <column> [ASC|DESC]] [LIMIT n]

items: `event`, `distinct_id`, `timestamp`, `properties.<name>`, `count()`, `count(*)`,
`max(timestamp)`, `min(timestamp)`, each optionally `AS alias`. Conditions: `<field> = 'v'`,
`!=`, `<field> IN ('a', 'b')`, `<field> [NOT] LIKE 'p%'`, and `timestamp <op>
toDateTime('...')` or `timestamp <op> now() - INTERVAL n UNIT`. Anything else gets PostHog's
400 `validation_error` shape. As in ClickHouse, an aggregate over no rows without GROUP BY
still yields one row: `count()` 0 and `max(timestamp)` `1970-01-01T00:00:00Z`.

Ingestion: `POST /capture/`, `/e/`, `/i/v0/e/` and `/batch/` (the PostHog Python library's
endpoint; gzip bodies are decoded by aiohttp) append to `state.events` when `api_key` matches.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from sandbox.server import new_app

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DATETIME_TYPE = "DateTime64(6, 'UTC')"


@dataclass
class Event:
    """One captured event."""

    event: str
    timestamp: datetime
    distinct_id: str = "anonymous"
    properties: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            self.timestamp = self.timestamp.replace(tzinfo=UTC)


@dataclass
class PostHogState:
    """In-memory PostHog project: keys, the events table, and the queries it was sent."""

    personal_api_key: str = "phx_sandbox_personal_key"
    project_api_key: str = "phc_sandbox_project_key"
    project_id: int = 1
    events: list[Event] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    clock: Callable[[], float] = time.time

    def now(self) -> datetime:
        """The emulator clock as an aware UTC datetime."""
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def add_event(
        self,
        event: str,
        timestamp: datetime | None = None,
        distinct_id: str = "anonymous",
        **properties: Any,
    ) -> Event:
        """Append an event (timestamp defaults to the clock)."""
        item = Event(event, timestamp or self.now(), distinct_id, dict(properties))
        self.events.append(item)
        return item


class QueryError(ValueError):
    """A query outside the supported HogQL subset."""


STATE_KEY: web.AppKey[PostHogState] = web.AppKey("posthog_state", PostHogState)

_FIELD = r"(?:event|distinct_id|timestamp|properties\.\$?[A-Za-z_][\w]*)"
_STRING = r"'(?:[^'\\]|\\.)*'"
_QUERY_RE = re.compile(
    r"^\s*SELECT\s+(?P<select>.+?)\s+FROM\s+events"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+GROUP\s+BY\s+(?P<group>event))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>[\w().$*]+)(?:\s+(?P<dir>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_ITEM_RE = re.compile(
    rf"^(?P<expr>{_FIELD}|count\(\s*\*?\s*\)|(?:max|min)\(\s*timestamp\s*\))"
    r"(?:\s+AS\s+(?P<alias>\w+))?$",
    re.IGNORECASE,
)
_CMP_RE = re.compile(rf"^(?P<field>{_FIELD})\s*(?P<op>=|!=|<>)\s*(?P<value>{_STRING})$", re.I)
_IN_RE = re.compile(
    rf"^(?P<field>{_FIELD})\s+(?P<neg>NOT\s+)?IN\s*\((?P<values>\s*{_STRING}(?:\s*,\s*{_STRING})*\s*)\)$",
    re.IGNORECASE,
)
_LIKE_RE = re.compile(rf"^(?P<field>{_FIELD})\s+(?P<neg>NOT\s+)?(?P<op>I?LIKE)\s+(?P<value>{_STRING})$", re.I)
_TS_ABS_RE = re.compile(rf"^timestamp\s*(?P<op>>=|<=|>|<)\s*toDateTime\(\s*(?P<value>{_STRING})\s*\)$", re.I)
_TS_REL_RE = re.compile(
    r"^timestamp\s*(?P<op>>=|<=|>|<)\s*now\(\)\s*-\s*INTERVAL\s+(?P<n>\d+)\s+"
    r"(?P<unit>SECOND|MINUTE|HOUR|DAY|WEEK)S?$",
    re.IGNORECASE,
)
_AND_RE = re.compile(r"\s+AND\s+", re.IGNORECASE)
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}

Row = list[Any]
Predicate = Callable[[Event], bool]


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def _split_and(where: str) -> list[str]:
    """Split a WHERE clause on top-level AND, respecting quotes and parentheses."""
    parts: list[str] = []
    depth, quoted, start, i = 0, False, 0, 0
    while i < len(where):
        ch = where[i]
        if ch == "'" and (i == 0 or where[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
        elif not quoted and depth == 0 and ch.isspace():
            match = _AND_RE.match(where, i)
            if match is not None:
                parts.append(where[start:i].strip())
                i = start = match.end()
                continue
        i += 1
    parts.append(where[start:].strip())
    return [p for p in parts if p]


def _value(event: Event, name: str) -> Any:
    lowered = name.lower()
    if lowered == "event":
        return event.event
    if lowered == "distinct_id":
        return event.distinct_id
    if lowered == "timestamp":
        return event.timestamp
    return event.properties.get(name.split(".", 1)[1])


def _parse_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(f"Cannot parse DateTime from '{text}'") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _compare_time(op: str, left: datetime, right: datetime) -> bool:
    return {
        ">=": left >= right,
        ">": left > right,
        "<=": left <= right,
        "<": left < right,
    }[op]


def _like(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    # As in ClickHouse, `\%`, `\_` and `\\` in a LIKE pattern match those characters literally.
    parts = re.findall(r"\\.|.", pattern, re.DOTALL)
    regex = "".join(
        re.escape(p[1]) if len(p) == 2 else ".*" if p == "%" else "." if p == "_" else re.escape(p)
        for p in parts
    )
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    return re.compile(f"^{regex}$", flags)


def _predicate(condition: str, now: datetime) -> Predicate:
    if match := _CMP_RE.match(condition):
        name, wanted = match["field"], _unquote(match["value"])
        if name.lower() == "timestamp":
            raise QueryError("Compare timestamp with toDateTime('...') or now() - INTERVAL")
        negate = match["op"] != "="
        return lambda e: (str(_value(e, name)) == wanted) != negate
    if match := _IN_RE.match(condition):
        name = match["field"]
        values = {_unquote(v) for v in re.findall(_STRING, match["values"])}
        negate = bool(match["neg"])
        return lambda e: (str(_value(e, name)) in values) != negate
    if match := _LIKE_RE.match(condition):
        name, negate = match["field"], bool(match["neg"])
        regex = _like(_unquote(match["value"]), match["op"].upper() == "ILIKE")
        return lambda e: (regex.match(str(_value(e, name) or "")) is not None) != negate
    if match := _TS_ABS_RE.match(condition):
        op, bound = match["op"], _parse_time(_unquote(match["value"]))
        return lambda e: _compare_time(op, e.timestamp, bound)
    if match := _TS_REL_RE.match(condition):
        seconds = int(match["n"]) * _UNITS[match["unit"].lower()]
        op, rel_bound = match["op"], now - timedelta(seconds=seconds)
        return lambda e: _compare_time(op, e.timestamp, rel_bound)
    raise QueryError(f"Unsupported condition: {condition}")


def _select_items(select: str) -> list[tuple[str, str]]:
    items = []
    for raw in (part.strip() for part in select.split(",")):
        match = _ITEM_RE.match(raw)
        if match is None:
            raise QueryError(f"Unsupported expression in SELECT: {raw}")
        expr = re.sub(r"\s+", "", match["expr"])
        lowered = expr.lower()
        if lowered in ("count(*)", "count()"):
            expr = "count()"
        elif lowered.startswith(("max(", "min(")):
            expr = lowered
        items.append((expr, match["alias"] or expr))
    return items


def _is_aggregate(expr: str) -> bool:
    return expr in ("count()", "max(timestamp)", "min(timestamp)")


def _aggregate(expr: str, rows: list[Event]) -> Any:
    if expr == "count()":
        return len(rows)
    stamps = [e.timestamp for e in rows]
    if not stamps:
        return EPOCH
    return max(stamps) if expr == "max(timestamp)" else min(stamps)


def _type_of(expr: str) -> str:
    if expr == "count()":
        return "UInt64"
    if expr in ("timestamp", "max(timestamp)", "min(timestamp)"):
        return DATETIME_TYPE
    if expr.startswith("properties."):
        return "Nullable(String)"
    return "String"


def _serialize(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def run_query(state: PostHogState, query: str) -> dict[str, Any]:
    """Execute a supported HogQL query against `state.events`."""
    match = _QUERY_RE.match(query)
    if match is None:
        raise QueryError("Only SELECT ... FROM events queries of the supported shape are allowed")
    items = _select_items(match["select"])
    now = state.now()
    predicates = [_predicate(c, now) for c in _split_and(match["where"] or "")]
    rows = [e for e in state.events if all(p(e) for p in predicates)]
    aggregates = [_is_aggregate(expr) for expr, _ in items]
    grouped = match["group"] is not None
    if grouped:
        if any(not agg and expr != "event" for (expr, _), agg in zip(items, aggregates, strict=True)):
            raise QueryError("Expression not in GROUP BY and not an aggregate")
        groups: dict[str, list[Event]] = {}
        for event in rows:
            groups.setdefault(event.event, []).append(event)
        table: list[Row] = [
            [name if expr == "event" else _aggregate(expr, members) for expr, _ in items]
            for name, members in sorted(groups.items())
        ]
    elif any(aggregates):
        if not all(aggregates):
            raise QueryError("Aggregate mixed with plain columns needs GROUP BY")
        table = [[_aggregate(expr, rows) for expr, _ in items]]
    else:
        table = [[_value(e, expr) for expr, _ in items] for e in rows]
    table = _order_and_limit(table, items, match)
    columns = [alias for _, alias in items]
    return {
        "results": [[_serialize(v) for v in row] for row in table],
        "columns": columns,
        "types": [[alias, _type_of(expr)] for expr, alias in items],
        "hogql": query.strip().rstrip(";"),
        "clickhouse": None,
        "is_cached": False,
        "cache_key": None,
        "last_refresh": _serialize(now),
        "timezone": "UTC",
        "hasMore": False,
        "limit": int(match["limit"]) if match["limit"] else 100,
        "offset": 0,
        "timings": [],
        "modifiers": {},
        "error": None,
        "query_status": None,
    }


def _order_and_limit(table: list[Row], items: list[tuple[str, str]], match: re.Match[str]) -> list[Row]:
    order = match["order"]
    if order:
        keys = [i for i, (expr, alias) in enumerate(items) if order.lower() in (expr.lower(), alias.lower())]
        if not keys:
            raise QueryError(f"ORDER BY {order} must name a selected column")
        key = keys[0]
        descending = (match["dir"] or "").upper() == "DESC"
        table.sort(key=lambda row: (row[key] is None, row[key]), reverse=descending)
    if match["limit"]:
        table = table[: int(match["limit"])]
    return table


def _auth_error(code: str, detail: str, status: int = 401) -> web.Response:
    return web.json_response(
        {"type": "authentication_error", "code": code, "detail": detail, "attr": None},
        status=status,
    )


def _validation_error(detail: str, code: str = "invalid_input") -> web.Response:
    return web.json_response(
        {"type": "validation_error", "code": code, "detail": detail, "attr": None}, status=400
    )


async def query_endpoint(request: web.Request) -> web.Response:
    """`POST /api/projects/{project_id}/query/` with a `HogQLQuery`."""
    state = request.app[STATE_KEY]
    header = request.headers.get("Authorization", "")
    if not header:
        return _auth_error("not_authenticated", "Authentication credentials were not provided.")
    if header != f"Bearer {state.personal_api_key}":
        return _auth_error(
            "authentication_failed", "Personal API key found in request Authorization header is invalid."
        )
    if request.match_info["project_id"] not in (str(state.project_id), "@current"):
        return _auth_error("permission_denied", "You don't have access to the project.", 403)
    try:
        body = await request.json()
    except ValueError:
        return web.json_response(
            {"type": "invalid_request", "code": "parse_error", "detail": "JSON parse error", "attr": None},
            status=400,
        )
    query = body.get("query") if isinstance(body, dict) else None
    if not isinstance(query, dict) or query.get("kind") != "HogQLQuery":
        return _validation_error("The query kind must be HogQLQuery in this sandbox.", "invalid_input")
    text = query.get("query")
    if not isinstance(text, str) or not text.strip():
        return _validation_error("Field 'query' is required.", "invalid_input")
    state.queries.append(text)
    try:
        result = run_query(state, text)
    except QueryError as exc:
        return _validation_error(str(exc), "query_validation_error")
    result["query"] = query
    return web.json_response(result)


def _to_event(state: PostHogState, raw: dict[str, Any]) -> Event:
    properties = dict(raw.get("properties") or {})
    distinct_id = str(raw.get("distinct_id") or properties.pop("distinct_id", "anonymous"))
    stamp = raw.get("timestamp")
    when = _parse_time(stamp) if isinstance(stamp, str) else state.now()
    return Event(str(raw.get("event", "")), when, distinct_id, properties)


async def capture_endpoint(request: web.Request) -> web.Response:
    """`POST /capture/`, `/e/`, `/i/v0/e/`, `/batch/`: append events when the key matches."""
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError:
        return web.json_response(
            {
                "type": "validation_error",
                "code": "invalid_payload",
                "detail": "Malformed request data",
                "attr": None,
            },
            status=400,
        )
    if not isinstance(body, dict):
        return _validation_error("Malformed request data", "invalid_payload")
    batch = body.get("batch")
    raw_events: list[Any] = batch if isinstance(batch, list) else [body]
    api_key = body.get("api_key") or next(
        (e.get("api_key") for e in raw_events if isinstance(e, dict) and e.get("api_key")), None
    )
    if api_key != state.project_api_key:
        return _auth_error(
            "invalid_api_key",
            "Project API key invalid. You can find your project API key in PostHog project settings.",
        )
    try:
        events = [_to_event(state, raw) for raw in raw_events if isinstance(raw, dict)]
    except QueryError as exc:
        return _validation_error(str(exc), "invalid_payload")
    state.events.extend(e for e in events if e.event)
    return web.json_response({"status": 1})


def create_posthog_app(state: PostHogState) -> web.Application:
    """An aiohttp app emulating PostHog's query API and ingestion over `state`."""
    app = new_app()
    app[STATE_KEY] = state
    app.router.add_post("/api/projects/{project_id}/query/", query_endpoint)
    app.router.add_post("/api/projects/{project_id}/query", query_endpoint)
    for path in ("/capture/", "/e/", "/i/v0/e/", "/batch/", "/capture", "/batch"):
        app.router.add_post(path, capture_endpoint)
    return app
