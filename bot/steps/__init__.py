"""The runbook's steps: `bot/steps/<name>.py` for each step name of `bot/runbook/default.yml`,
each declaring `STEP = StepDef(...)`; `bot.steps.registry.STEPS` lists them all. The other
modules hold what several steps share (`workspace`, `migration_files`, `staging_http`,
`posthog_events`)."""
