"""Local emulator of the Slack Web API methods the release bot calls, plus `response_url`s.

`POST|GET /api/{method}` accepts what slack_sdk sends: JSON or form-encoded bodies and query
strings, token as `Authorization: Bearer` or a `token` argument. Like Slack it answers HTTP 200
with `{"ok": false, "error": ...}` for `not_authed`, `invalid_auth`, `invalid_arguments`,
`channel_not_found`, `unknown_method` and the like. Required arguments come from Slack's
OpenAPI description when `SlackState.spec_path` names it (read at runtime, never copied),
else from `BUILTIN_REQUIRED`. `POST /response/{id}` records `response_url` payloads.

Methods: chat.postMessage, chat.update, chat.postEphemeral, chat.getPermalink, views.open,
views.push, views.update, views.publish, auth.test, conversations.info, conversations.members,
users.info, usergroups.users.list, and apps.connections.open (with the app-level token). A channel
with `is_member: False` answers posts `not_in_channel`, an archived one `is_archived`; a token in
`revoked_tokens` is answered `token_revoked`. Every answer to a valid token carries Slack's
`x-oauth-scopes` header (`SlackState.scopes`); the conversations methods answer `missing_scope`
(with `needed` and `provided`) without a read scope, as Slack documents.

Only the tests and the benchmarks talk to Slack's Web API, so this emulator lives in `tests/`
(as bolt-python keeps its fake Slack in `tests/mock_web_api_server/`), not in `sandbox/`:
the demo's chat is the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.server import new_app

BUILTIN_REQUIRED: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("channel",),
    "chat.update": ("channel", "ts"),
    "chat.postEphemeral": ("channel", "user"),
    "chat.getPermalink": ("channel", "message_ts"),
    "views.open": ("trigger_id", "view"),
    "views.push": ("trigger_id", "view"),
    "views.update": ("view",),
    "views.publish": ("user_id", "view"),
    "conversations.info": ("channel",),
    "users.info": ("user",),
    "auth.test": (),
    "apps.connections.open": (),
    "usergroups.users.list": ("usergroup",),
    "conversations.members": ("channel",),
}
# Methods that need one of these scopes (Slack's OpenAPI `security` lists them as alternatives).
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "conversations.info": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "conversations.members": ("channels:read", "groups:read", "im:read", "mpim:read"),
}
DEFAULT_SCOPES = ("commands", "chat:write", "channels:read", "groups:read", "users:read")
JSON_ARGS = ("blocks", "attachments", "view", "metadata")


@lru_cache(maxsize=4)
def required_from_spec(path: str) -> dict[str, tuple[str, ...]]:
    """Required arguments per method, read from a Slack Web API OpenAPI 2 file."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    required: dict[str, tuple[str, ...]] = {}
    for route, operations in spec.get("paths", {}).items():
        names: list[str] = []
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param.get("required") and param.get("name") != "token" and param["name"] not in names:
                    names.append(param["name"])
        required[route.lstrip("/")] = tuple(names)
    return required


@dataclass
class SlackState:
    """In-memory Slack workspace: channels, users, messages, views and recorded calls."""

    token: str = "xoxb-sandbox-token"
    team_id: str = "T0SANDBOX"
    team: str = "Sandbox"
    team_domain: str = "sandbox"
    bot_user_id: str = "U0RELEASEBOT"
    bot_id: str = "B0RELEASEBOT"
    channels: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"C0RELEASES": {"name": "releases", "is_member": True}}
    )
    users: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"U0ALICE": {"name": "alice", "real_name": "Alice Admin"}}
    )
    accept_any_channel: bool = False
    app_token: str = "xapp-1-sandbox-app-token"
    revoked_tokens: set[str] = field(default_factory=set)
    usergroups: dict[str, list[str]] = field(default_factory=dict)  # group ID -> user IDs
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    spec_path: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    home_views: dict[str, str] = field(default_factory=dict)  # user id -> id of their Home view
    expired_triggers: set[str] = field(default_factory=set)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    response_url_limit: int = 5
    ts_base: int = 1_700_000_000

    def __post_init__(self) -> None:
        self._seq = 0

    def next_ts(self) -> str:
        """A message timestamp, strictly increasing: `1700000000.000100`, `...000200`, ..."""
        self._seq += 1
        micros = self.ts_base * 1_000_000 + self._seq * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def next_id(self, prefix: str) -> str:
        """A Slack-style id (`V0000001`)."""
        self._seq += 1
        return f"{prefix}{self._seq:07d}"

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The arguments of every call to `method`, in order."""
        return [args for name, args in self.calls if name == method]

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        """Top-level messages and replies posted to `channel`."""
        return self.messages.get(self.resolve_channel(channel) or channel, [])

    def find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message at `ts` in `channel`."""
        return next((m for m in self.channel_messages(channel) if m["ts"] == ts), None)

    def thread_replies(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Replies in the thread under `ts` (not the parent), oldest first."""
        return [m for m in self.channel_messages(channel) if m.get("thread_ts") == ts and m["ts"] != ts]

    def resolve_channel(self, channel: str) -> str | None:
        """A channel id from an id, `#name` or name; None when unknown."""
        if channel in self.channels:
            return channel
        name = channel.lstrip("#")
        found = next((cid for cid, info in self.channels.items() if info.get("name") == name), None)
        if found is None and self.accept_any_channel and channel:
            self.channels[channel] = {"name": name, "is_member": True}
            return channel
        return found

    def required_args(self, method: str) -> tuple[str, ...]:
        """Required arguments of `method`: from the spec file when given, else built in."""
        if self.spec_path and Path(self.spec_path).is_file():
            from_spec = required_from_spec(self.spec_path)
            if method in from_spec:
                return from_spec[method]
        return BUILTIN_REQUIRED.get(method, ())


STATE_KEY: web.AppKey[SlackState] = web.AppKey("slack_state", SlackState)
MethodHandler = Callable[[SlackState, dict[str, Any]], Awaitable[dict[str, Any]]]


def _fail(error: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": error, **extra}


async def _read_args(request: web.Request) -> dict[str, Any] | None:
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                return None
            if not isinstance(body, dict):
                return None
            args.update(body)
        else:
            args.update(dict(await request.post()))
    for key in JSON_ARGS:
        value = args.get(key)
        if isinstance(value, str) and value[:1] in "[{":
            try:
                args[key] = json.loads(value)
            except ValueError:
                return None
    return args


def _message(state: SlackState, channel: str, ts: str, args: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "message",
        "user": state.bot_user_id,
        "bot_id": state.bot_id,
        "ts": ts,
        "text": args.get("text", ""),
        "team": state.team_id,
        "channel": channel,
    }
    for key in ("blocks", "attachments", "thread_ts", "metadata"):
        if args.get(key) is not None:
            message[key] = args[key]
    return message


async def post_message(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """chat.postMessage."""
    channel = state.resolve_channel(str(args["channel"]))
    if channel is None:
        return _fail("channel_not_found")
    if not state.channels[channel].get("is_member", True):
        return _fail("not_in_channel")
    if state.channels[channel].get("is_archived"):
        return _fail("is_archived")
    if not (args.get("text") or args.get("blocks") or args.get("attachments")):
        return _fail("no_text")
    thread_ts = args.get("thread_ts")
    if thread_ts and state.find_message(channel, str(thread_ts)) is None:
        return _fail("thread_not_found")
    ts = state.next_ts()
    message = _message(state, channel, ts, args)
    state.messages.setdefault(channel, []).append(message)
    shown = {k: v for k, v in message.items() if k != "channel"}
    return {"ok": True, "channel": channel, "ts": ts, "message": shown}


async def update_message(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """chat.update."""
    channel = state.resolve_channel(str(args["channel"]))
    if channel is None:
        return _fail("channel_not_found")
    message = state.find_message(channel, str(args["ts"]))
    if message is None:
        return _fail("message_not_found")
    for key in ("text", "blocks", "attachments", "metadata"):
        if key in args:
            message[key] = args[key]
    message["edited"] = {"user": state.bot_user_id, "ts": state.next_ts()}
    shown = {k: v for k, v in message.items() if k != "channel"}
    return {"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"], "message": shown}


async def post_ephemeral(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """chat.postEphemeral."""
    channel = state.resolve_channel(str(args["channel"]))
    if channel is None:
        return _fail("channel_not_found")
    if args["user"] not in state.users:
        return _fail("user_not_in_channel")
    ts = state.next_ts()
    state.ephemerals.append({**_message(state, channel, ts, args), "to_user": args["user"]})
    return {"ok": True, "message_ts": ts}


async def get_permalink(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """chat.getPermalink."""
    channel = state.resolve_channel(str(args["channel"]))
    if channel is None:
        return _fail("channel_not_found")
    ts = str(args["message_ts"])
    if state.find_message(channel, ts) is None:
        return _fail("message_not_found")
    link = f"https://{state.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
    return {"ok": True, "channel": channel, "permalink": link}


def _view_json(state: SlackState, view: dict[str, Any], view_id: str, root: str | None) -> dict[str, Any]:
    return {
        "id": view_id,
        "team_id": state.team_id,
        "type": view.get("type", "modal"),
        "title": view.get("title"),
        "submit": view.get("submit"),
        "close": view.get("close"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "external_id": view.get("external_id", ""),
        "state": {"values": {}},
        "hash": state.next_ts(),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "root_view_id": root or view_id,
        "previous_view_id": None,
        "app_id": "A0SANDBOX",
        "bot_id": state.bot_id,
    }


async def open_view(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """views.open and views.push."""
    if args["trigger_id"] in state.expired_triggers:
        return _fail("expired_trigger_id")
    view = args["view"]
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return _fail("invalid_arguments", response_metadata={"messages": ["[ERROR] invalid view"]})
    view_id = state.next_id("V")
    state.views[view_id] = _view_json(state, view, view_id, None)
    return {"ok": True, "view": state.views[view_id]}


async def update_view(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """views.update by `view_id` or `external_id`, honouring `hash`."""
    view_id = args.get("view_id")
    if not view_id and args.get("external_id"):
        external = args["external_id"]
        view_id = next((v for v, body in state.views.items() if body["external_id"] == external), None)
    if not view_id or view_id not in state.views:
        return _fail("not_found")
    current = state.views[view_id]
    if args.get("hash") and args["hash"] != current["hash"]:
        return _fail("hash_conflict")
    view = args.get("view")
    if not isinstance(view, dict):
        return _fail("invalid_arguments", response_metadata={"messages": ["[ERROR] missing view"]})
    state.views[view_id] = _view_json(state, view, view_id, current["root_view_id"])
    return {"ok": True, "view": state.views[view_id]}


MAX_HOME_BLOCKS = 100


async def publish_view(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """views.publish: a `home` view for one user, replacing theirs; honours `hash`."""
    user = str(args["user_id"])
    if user not in state.users:
        return _fail("user_not_found")
    view = args["view"]
    if not isinstance(view, dict) or view.get("type") != "home":
        return _fail("invalid_arguments", response_metadata={"messages": ["[ERROR] must be a home view"]})
    if not isinstance(view.get("blocks"), list) or len(view["blocks"]) > MAX_HOME_BLOCKS:
        return _fail("invalid_arguments",
                     response_metadata={"messages": ["[ERROR] blocks must be a list of at most 100"]})
    current = state.home_views.get(user)
    if args.get("hash") and current and args["hash"] != state.views[current]["hash"]:
        return _fail("hash_conflict")
    view_id = current or state.next_id("V")
    state.views[view_id] = _view_json(state, view, view_id, None)
    state.home_views[user] = view_id
    return {"ok": True, "view": state.views[view_id]}


async def auth_test(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """auth.test."""
    return {
        "ok": True,
        "url": f"https://{state.team_domain}.slack.com/",
        "team": state.team,
        "user": "release-bot",
        "team_id": state.team_id,
        "user_id": state.bot_user_id,
        "bot_id": state.bot_id,
        "is_enterprise_install": False,
    }


async def conversation_info(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """conversations.info."""
    channel = state.resolve_channel(str(args.get("channel", "")))
    if channel is None:
        return _fail("channel_not_found")
    info = state.channels[channel]
    return {
        "ok": True,
        "channel": {
            "id": channel,
            "name": info.get("name", channel),
            "is_channel": True,
            "is_private": bool(info.get("is_private", False)),
            "is_archived": bool(info.get("is_archived", False)),
            "is_member": bool(info.get("is_member", True)),
            "created": state.ts_base,
        },
    }


async def conversation_members(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """conversations.members: the bot (when a member) and the channel's listed `members`."""
    channel = state.resolve_channel(str(args.get("channel", "")))
    if channel is None:
        return _fail("channel_not_found")
    info = state.channels[channel]
    members = list(info.get("members", []))
    if info.get("is_member", True) and state.bot_user_id not in members:
        members.insert(0, state.bot_user_id)
    return {"ok": True, "members": members, "response_metadata": {"next_cursor": ""}}


async def user_info(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """users.info."""
    user_id = str(args.get("user", ""))
    info = state.users.get(user_id)
    if info is None:
        return _fail("user_not_found")
    real_name = info.get("real_name", info.get("name", user_id))
    return {
        "ok": True,
        "user": {
            "id": user_id,
            "team_id": state.team_id,
            "name": info.get("name", user_id),
            "real_name": real_name,
            "tz": info.get("tz", "Europe/London"),
            "is_admin": bool(info.get("is_admin", False)),
            "is_bot": bool(info.get("is_bot", False)),
            "deleted": False,
            "profile": {"real_name": real_name, "display_name": info.get("name", user_id)},
        },
    }


async def usergroup_users(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """usergroups.users.list."""
    members = state.usergroups.get(str(args["usergroup"]))
    if members is None:
        return _fail("no_such_subteam")
    return {"ok": True, "users": list(members)}


async def connections_open(state: SlackState, args: dict[str, Any]) -> dict[str, Any]:
    """apps.connections.open (app-level token): a WebSocket URL this emulator does not serve."""
    return {"ok": True, "url": f"wss://wss-primary.slack.com/link/?ticket={state.next_id('T')}"}


APP_TOKEN_METHODS = {"apps.connections.open"}
METHODS: dict[str, MethodHandler] = {
    "apps.connections.open": connections_open,
    "usergroups.users.list": usergroup_users,
    "chat.postMessage": post_message,
    "chat.update": update_message,
    "chat.postEphemeral": post_ephemeral,
    "chat.getPermalink": get_permalink,
    "views.open": open_view,
    "views.push": open_view,
    "views.update": update_view,
    "views.publish": publish_view,
    "auth.test": auth_test,
    "conversations.info": conversation_info,
    "conversations.members": conversation_members,
    "users.info": user_info,
}


def _token_of(request: web.Request, args: dict[str, Any]) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ")
    token = args.pop("token", None)
    return str(token) if token else None


async def api_method(request: web.Request) -> web.Response:
    """`/api/{method}`: authenticate, validate required args, dispatch, record."""
    state = request.app[STATE_KEY]
    method = request.match_info["method"]
    args = await _read_args(request)
    if args is None:
        return web.json_response(_fail("invalid_json"))
    token = _token_of(request, args)
    args.pop("token", None)
    state.calls.append((method, dict(args)))
    if token is None:
        return web.json_response(_fail("not_authed"))
    if token in state.revoked_tokens:
        return web.json_response(_fail("token_revoked"))
    if method in APP_TOKEN_METHODS:
        if token != state.app_token:
            error = "not_allowed_token_type" if token == state.token else "invalid_auth"
            return web.json_response(_fail(error))
    elif token != state.token:
        return web.json_response(_fail("invalid_auth"))
    handler = METHODS.get(method)
    if handler is None:
        return web.json_response(_fail("unknown_method", req_method=method))
    headers = {"x-oauth-scopes": ",".join(state.scopes)}
    needed = METHOD_SCOPES.get(method, ())
    if needed and not set(needed) & set(state.scopes):
        return web.json_response(_fail("missing_scope", needed=needed[0],
                                       provided=",".join(state.scopes)), headers=headers)
    missing = [name for name in state.required_args(method) if args.get(name) in (None, "")]
    if missing:
        messages = [f"[ERROR] missing required field: {name}" for name in missing]
        return web.json_response(_fail("invalid_arguments", response_metadata={"messages": messages}),
                                 headers=headers)
    return web.json_response(await handler(state, args), headers=headers)


async def response_url(request: web.Request) -> web.Response:
    """`POST /response/{id}`: record a `response_url` payload (5 uses, like Slack)."""
    state = request.app[STATE_KEY]
    key = request.match_info["id"]
    try:
        payload = await request.json()
    except ValueError:
        return web.Response(status=400, text="invalid_payload")
    used = state.responses.setdefault(key, [])
    if len(used) >= state.response_url_limit:
        return web.Response(status=404, text="used_url")
    used.append(payload if isinstance(payload, dict) else {"payload": payload})
    return web.json_response({"ok": True})


def response_url_for(base_url: str, key: str) -> str:
    """The `response_url` a test hands the bot for payload `key`."""
    return f"{base_url.rstrip('/')}/response/{key}"


def create_slack_app(state: SlackState) -> web.Application:
    """An aiohttp app emulating the Slack Web API over `state`."""
    app = new_app()
    app[STATE_KEY] = state
    app.router.add_route("*", "/api/{method}", api_method)
    app.router.add_post("/response/{id}", response_url)
    return app
