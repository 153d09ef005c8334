"""Rollback during incidents (guide section 4): plan, actions, controller, after-checks.

- `model`: what a person asks for (`Choices`), what each action would do (`Plan`), what it did
  (`ActionResult`, `RollbackReport`), and the pure helpers that read them off the release log.
- `plan`: works out the plan; `quick=True` reads the release log only (no network), for a
  Slack form that must open within three seconds.
- `deployment`, `schema`, `backup`, `cache`: one module per action.
- `checks`: re-runs the smoke and health steps after a deployment revert.
- `record`: keeps a rollback in the release log.
- `controller`: `Rollbacks`, which the Slack handler (`handlers/rollback.py`), the console
  (`bot/service.py`) and `release-bot rollback` (`bot/rollback_cli.py`) all call; it returns a
  `RollbackReport`, and an `Announcer` (`bot/chat/rollback.py`) tells the team.

This package imports nothing from `bot.chat`: the chat layer renders what it returns.
"""
