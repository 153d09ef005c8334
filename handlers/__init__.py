"""Slack listeners. `register(app, runtime)` wires every listener module onto the Bolt app."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp

if TYPE_CHECKING:
    from bot.app import Runtime

MODULES = ("handlers.commands", "handlers.actions", "handlers.rollback")


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the safety middleware, then the listeners of each module in MODULES that exists."""
    from handlers import safety

    safety.install(app, runtime)
    for name in MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app, runtime)
