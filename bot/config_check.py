"""Checks of setting values, not only presence, for `release-bot check-config`.

Each finding is a `Finding`: an error (the setting cannot work as given: an `xapp-` token where
the bot token belongs, a URL without a scheme, a workspace that does not exist, a name where a
Slack ID is needed) or a warning (it works but is risky: a secret shorter than 8 characters).
Secret values are never quoted in a finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from bot.config import Settings

SHORT_SECRET = 8
URL_SETTINGS = ("SLACK_API_URL", "STAGING_URL", "POSTHOG_HOST", "BOT_POSTHOG_HOST",
                "SUPABASE_API_URL", "VERCEL_API_URL", "GITHUB_API_URL", "ISSUE_TRACKER_URL")
# Secret URLs and the schemes they take.
SECRET_URLS = {"REDIS_URL": ("redis", "rediss"), "STAGING_REDIS_URL": ("redis", "rediss"),
               "SUPABASE_DB_URL": ("postgres", "postgresql"), "VERCEL_DEPLOY_HOOK_URL": ("https",)}
SLACK_PEOPLE = ("RELEASE_OPERATORS", "RELEASE_APPROVERS")
SLACK_CHANNELS = ("RELEASE_CHANNEL", "ENGINEERING_CHANNEL")
_USER_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")  # users (U/W) and user groups (S)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


@dataclass(frozen=True)
class Finding:
    """One problem with a setting's value."""

    setting: str
    message: str
    error: bool = True

    def line(self) -> str:
        return f"  {'error' if self.error else 'warn '}  {self.setting} {self.message}"


def check_values(settings: Settings) -> list[Finding]:
    """Every problem found in the values of `settings`, errors first."""
    found = [*_tokens(settings), *_urls(settings), *_paths(settings), *_slack_ids(settings),
             *_short_secrets(settings)]
    return sorted(found, key=lambda f: not f.error)


def _tokens(settings: Settings) -> list[Finding]:
    out = []
    bot, app = settings.secret("SLACK_BOT_TOKEN"), settings.secret("SLACK_APP_TOKEN")
    if bot.startswith("xapp-"):
        out.append(Finding("SLACK_BOT_TOKEN", "is an app-level token (xapp-…); the bot token "
                           "starts with xoxb- (OAuth & Permissions), the xapp- one belongs in "
                           "SLACK_APP_TOKEN"))
    elif bot and not bot.startswith("xoxb-"):
        out.append(Finding("SLACK_BOT_TOKEN", "does not start with xoxb-; use the Bot User OAuth "
                           "Token", error=bot.startswith(("xoxp-", "xoxe"))))
    if app and not app.startswith("xapp-"):
        out.append(Finding("SLACK_APP_TOKEN", "is not an app-level token (xapp-…); create one "
                           "with connections:write under Basic Information"))
    return out


def _urls(settings: Settings) -> list[Finding]:
    out = []
    for name in URL_SETTINGS:
        value = getattr(settings, name)
        if value and not _has_scheme(value, ("http", "https")):
            out.append(Finding(name, f"has no scheme: {value!r} (write "
                                     f"https://{value.split('://')[-1].lstrip('/')})"))
    for name, schemes in SECRET_URLS.items():
        value = settings.secret(name)
        if value and not _has_scheme(value, schemes):
            out.append(Finding(name, f"is not a {' or '.join(s + '://' for s in schemes)} URL "
                                     "(value not shown)"))
    return out


def _has_scheme(value: str, schemes: tuple[str, ...]) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme.lower() in schemes and bool(parts.netloc)


def _paths(settings: Settings) -> list[Finding]:
    out = []
    if settings.APP_WORKSPACE:
        workspace = Path(settings.APP_WORKSPACE).expanduser()
        if not workspace.is_dir():
            out.append(Finding("APP_WORKSPACE", f"points at {workspace}, which does not exist or "
                                                "is not a directory"))
        elif not (workspace / ".git").exists():
            out.append(Finding("APP_WORKSPACE", f"points at {workspace}, which is not a git "
                                                "checkout (no .git)"))
    if settings.RUNBOOK_PATH and not Path(settings.RUNBOOK_PATH).expanduser().is_file():
        out.append(Finding("RUNBOOK_PATH", f"points at {settings.RUNBOOK_PATH}, which does "
                                              "not exist"))
    folder = Path(settings.DATABASE_PATH).expanduser().parent
    if settings.DATABASE_PATH != ":memory:" and not folder.is_dir():
        out.append(Finding("DATABASE_PATH", f"is in a folder that does not exist: {folder}"))
    return out


def _slack_ids(settings: Settings) -> list[Finding]:
    out = []
    for name in SLACK_PEOPLE:
        names = [v for v in getattr(settings, name) if not _USER_ID.match(v)]
        if names:
            out.append(Finding(name, f"holds names, not Slack IDs: {', '.join(names)}; use "
                                     "member IDs like U0123ABCD (profile → ⋮ → Copy member ID) "
                                     "or user group IDs (S…)"))
    for name in SLACK_CHANNELS:
        value = getattr(settings, name)
        if value and not _CHANNEL_ID.match(value):
            out.append(Finding(name, f"holds a channel name ({value!r}); Slack needs the "
                                     "channel ID (C0123ABCD, from the channel's details)",
                               error=False))
    return out


def _short_secrets(settings: Settings) -> list[Finding]:
    out = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and 0 < len(value.get_secret_value()) < SHORT_SECRET:
            out.append(Finding(name, f"is shorter than {SHORT_SECRET} characters: easy to guess, "
                                     "and masked only where it stands as a whole word",
                               error=False))
    return out
