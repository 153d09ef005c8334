"""Wiring: settings -> store, engine, reporter, service, scheduler, and the Bolt app.

`build_runtime()` assembles what every front end shares; `build_bolt_app()` adds Slack's
listeners (handlers/) on top. The console chat and the demo use the runtime without Bolt.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.chat.port import Chat
from bot.chat.reporter import PARENT_UPDATE_SECONDS, ChatReporter
from bot.chat.rollback import RollbackAnnouncer
from bot.chat.slack import SlackChat, make_web_client
from bot.chat.slack_groups import members_of
from bot.config import MissingSetting, Settings
from bot.kb import KnowledgeBase
from bot.locks import RedisLock, SqliteLock
from bot.redact import Redactor, default_redactor
from bot.refs import resolve_sha
from bot.rollback.controller import Rollbacks
from bot.runbook.engine import Engine
from bot.runbook.loader import load_runbook
from bot.runbook.ports import ShaLookup
from bot.runbook.step import StepDef
from bot.runtime import Runtime
from bot.service import ReleaseService
from bot.steps.registry import STEPS
from bot.store import Store
from bot.telemetry import BotTelemetry, Reporters

log = logging.getLogger(__name__)


def build_redactor(settings: Settings) -> Redactor:
    """The process-wide redactor, taught the values of every secret setting."""
    redactor = default_redactor()
    redactor.add(settings.secret_values())
    return redactor


def build_runtime(settings: Settings, chat: Chat, *, store: Store | None = None,
                  update_interval: float = PARENT_UPDATE_SECONDS,
                  steps: dict[str, StepDef] | None = None) -> Runtime:
    """Assemble store, engine, reporter and service around `chat`; `steps` is the catalog the
    runbook names (every step of `bot.steps.registry` unless given)."""
    redactor = build_redactor(settings)
    registry = STEPS if steps is None else steps
    runbook = load_runbook(settings.RUNBOOK_PATH, registry)
    store = store or Store(settings.DATABASE_PATH)
    lock = build_lock(settings)
    reporter = ChatReporter(chat, redactor, default_channel=settings.RELEASE_CHANNEL,
                            interval=update_interval, rollback_enabled=True)
    telemetry = BotTelemetry.from_settings(settings)
    listeners = after_deploy_listeners(settings, store, chat, redactor, registry)
    knowledge = KnowledgeBase.from_settings(settings, store, redactor)
    extra = [r for r in (*listeners, telemetry, knowledge) if r]
    engine = Engine(settings=settings, store=store,
                    reporter=Reporters(reporter, *extra) if extra else reporter,
                    runbook=runbook, registry=registry, redactor=redactor,
                    lock=lock or SqliteLock(store), find_sha=sha_lookup(settings, redactor))
    rollbacks = build_rollbacks(settings, store, engine, chat, redactor)
    service = ReleaseService(settings, engine, store, chat, rollback=rollbacks)
    return Runtime(settings=settings, store=store, engine=engine, reporter=reporter,
                   service=service, chat=chat, redactor=redactor, rollbacks=rollbacks, lock=lock,
                   telemetry=telemetry, listeners=listeners)


def build_rollbacks(settings: Settings, store: Store, engine: Engine, chat: Chat,
                    redactor: Redactor) -> Rollbacks:
    """The rollback controller, announcing through `chat`."""
    return Rollbacks(settings, store, engine, RollbackAnnouncer(chat, settings, redactor), redactor)


def build_lock(settings: Settings) -> RedisLock | None:
    """Redis's lock when REDIS_URL is set (None otherwise: the release log's lock serves)."""
    if settings.REDIS_URL is None:
        return None
    import redis.asyncio as aioredis

    return RedisLock(aioredis.from_url(settings.secret("REDIS_URL")))


def sha_lookup(settings: Settings, redactor: Redactor) -> ShaLookup:
    """The engine's SHA lookup: the workspace's origin, else GitHub (bot.refs)."""
    async def find_sha(ref: str) -> str | None:
        return await resolve_sha(settings, ref, redactor)

    return find_sha


def after_deploy_listeners(settings: Settings, store: Store, chat: Chat, redactor: Redactor,
                           steps: dict[str, StepDef]) -> list[Any]:
    """The engine's listeners after the chat: lead times, the post-deploy watch, Manual Tests."""
    from bot.lead_time import LeadTimes
    from bot.manual_tests import ManualTests
    from bot.watch import Watcher

    return [LeadTimes(settings, store), Watcher(settings, store, chat, redactor, steps),
            ManualTests(settings, store, chat, redactor)]


def build_bolt_app(settings: Settings, *, socket_mode: bool = False,
                   runtime: Runtime | None = None) -> tuple[AsyncApp, Runtime]:
    """The Bolt app with every listener registered, and its runtime."""
    if settings.SLACK_BOT_TOKEN is None:
        raise MissingSetting("SLACK_BOT_TOKEN")
    if not socket_mode and settings.SLACK_SIGNING_SECRET is None:
        raise MissingSetting("SLACK_SIGNING_SECRET")
    client = make_web_client(settings)
    if runtime is None:
        runtime = build_runtime(settings, SlackChat(client))
    runtime.engine.group_members = members_of(client)  # user groups in RELEASE_APPROVERS
    app = AsyncApp(
        client=client,
        signing_secret=settings.secret("SLACK_SIGNING_SECRET") or None,
        # bot/server.py checks every request's signature on its raw bytes before Bolt sees it
        # (bot/slack_request.py, stricter than Bolt's); Socket Mode needs none
        request_verification_enabled=False,
        process_before_response=False,
    )
    from handlers import register

    register(app, runtime)
    return app, runtime
