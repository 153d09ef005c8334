"""Slack listeners: `register(app, runtime)` is the one place that reads the runtime; each
listener module's `register()` receives what it uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp

from bot.manual_tests import ManualTests
from bot.watch import Watcher
from handlers import actions, commands, home, manual_tests, rollback, safety

if TYPE_CHECKING:
    from bot.runtime import Runtime


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the safety middleware, then every listener."""
    runtime.on_shutdown.append(safety.install(app, runtime.settings, runtime.redactor))
    form = rollback.RollbackForm(app.client, runtime.rollbacks, runtime.settings)
    commands.register(app, runtime.service, form)
    actions.register(app, runtime.engine, runtime.service)
    rollback.register(app, form, runtime.service.may_operate, runtime.chat)
    manual = next((x for x in runtime.listeners if isinstance(x, ManualTests)), None)
    if manual is not None:
        manual_tests.register(app, manual, runtime.store, runtime.settings)
    watcher = next((x for x in runtime.listeners if isinstance(x, Watcher)), None)
    home.register(app, runtime.store, runtime.settings.ENVIRONMENT, watcher, runtime.chat,
                  runtime.redactor)
