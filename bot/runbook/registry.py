"""Deprecated: what `bot.rollback` still imports until it takes the catalog like the engine.

Steps are declared in `bot/steps/<name>.py` and listed in `bot.steps.registry.STEPS`; the
shape of a step is `bot.runbook.step`. Remove this module once nothing imports it.
"""

from __future__ import annotations

from importlib import import_module

from bot.runbook.step import StepContext, StepDef

__all__ = ["REGISTRY", "StepContext", "StepDef", "load_steps"]

REGISTRY: dict[str, StepDef] = {}


def load_steps() -> dict[str, StepDef]:
    """The catalog of steps (`bot.steps.registry.STEPS`), also kept in `REGISTRY`."""
    # Looked up by name: the engine's package does not depend on the steps.
    REGISTRY.update(import_module("bot.steps.registry").STEPS)
    return REGISTRY
