"""Settings: the one reader of the environment (and of an optional `.env`).

Every setting the bot knows is declared here, with its default and what it is for; README's
settings table is kept in step with this class by a test. Secrets are `SecretStr`, so they
print as `**********` and `bot.redact` masks their values everywhere else.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CsvList = Annotated[list[str], NoDecode]

DEFAULT_REQUIRED_SECRETS = [
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "TOGETHER_API_KEY",
    "POSTHOG_API_KEY",
    "RESEND_API_KEY",
    "REDIS_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "NEXT_PUBLIC_SUPABASE_URL",
    "NEXT_PUBLIC_SUPABASE_ANON_KEY",
]
DEFAULT_TELEMETRY_EVENTS = ["i_chat_completed", "i_request_failed", "i_provider_health_changed"]
DEFAULT_BUILD_LOG_PATTERNS = [
    r"(?i)postgrest.*\b(connected|connection (established|ok|succeeded|successful)|ready|healthy)\b",
    r"(?i)gotrue.*\b(connected|connection (established|ok|succeeded|successful)|ready|healthy)\b",
]
DEFAULT_BUILD_LOG_ERROR_PATTERNS = [r"(?i)^\s*(error|fatal)\b", r"(?i)\bbuild failed\b"]
DEFAULT_MANUAL_TEST_CHECKLIST = [
    "Dashboard renders",
    "AI coach answers with citations",
    "Offline mode (PWA) works",
    "Sign in and sign out",
]
DEFAULT_MONITORING_LINKS = [
    "Vercel deployment|{inspector_url}",
    "PostHog events|{posthog_host}/project/{posthog_project_id}/events",
    "Health endpoint|{staging_url}/api/health",
]


class Settings(BaseSettings):
    """All settings, read from the environment and `.env`; field names are the env names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        populate_by_name=True,
    )

    # --- Slack -----------------------------------------------------------------------------
    SLACK_BOT_TOKEN: SecretStr | None = Field(None, description="Bot token (xoxb-...).")
    SLACK_SIGNING_SECRET: SecretStr | None = Field(
        None, description="Signing secret that verifies requests from Slack (HTTP mode)."
    )
    SLACK_APP_TOKEN: SecretStr | None = Field(
        None, description="App-level token (xapp-...) with connections:write, for Socket Mode."
    )
    SLACK_API_URL: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (GovSlack and tests change it)."
    )
    RELEASE_CHANNEL: str | None = Field(
        None, description="Channel ID for release threads; default: where the command ran."
    )
    ENGINEERING_CHANNEL: str | None = Field(
        None, description="Channel ID where rollbacks are announced; default: the release channel."
    )
    RELEASE_OPERATORS: CsvList = Field(
        default_factory=list,
        description="Slack user IDs allowed to start, cancel, retry and roll back; empty: anyone.",
    )
    RELEASE_APPROVERS: CsvList = Field(
        default_factory=list,
        description="Slack user IDs (U…) and user group IDs (S…) allowed to approve gates "
                    "(migrations); empty: anyone.",
    )

    # --- Storage and runtime -----------------------------------------------------------------
    DATABASE_PATH: str = Field("release-log.db", description="SQLite file of the release log.")
    LITESTREAM_REPLICA_URL: str | None = Field(
        None, description="Litestream replica of the release log (s3://, gs://, abs://, sftp://, "
        "file:///path); serve and socket then replicate every write and restore a missing log.",
    )
    REDIS_URL: SecretStr | None = Field(
        None, description="Optional Redis for the bot's own environment lock (not the app's)."
    )
    RUNBOOK_PATH: str | None = Field(
        None, description="YAML runbook replacing the default one (see runbook.example.yml)."
    )
    ENVIRONMENT: str = Field("staging", description="Name of the environment released to.")
    DEFAULT_REF: str = Field("main", description="Ref `/release start` ships when none is given.")
    PORT: int = Field(3000, description="HTTP port of `release-bot serve`.")
    LOG_LEVEL: str = Field("INFO", description="Python logging level.")
    BOT_POSTHOG_API_KEY: SecretStr | None = Field(
        None, description="Project API key for the bot's own usage events; empty: none sent."
    )
    BOT_POSTHOG_HOST: str = Field(
        "https://us.i.posthog.com", description="Ingestion host for the bot's own events."
    )

    # --- The app and staging -----------------------------------------------------------------
    APP_WORKSPACE: str | None = Field(
        None, description="A git checkout of the app's repository (tests, lint, migrations)."
    )
    STAGING_URL: str | None = Field(
        None, description="Base URL of staging, e.g. https://staging.pocketphilosopher.app."
    )
    STAGING_TEST_USER_EMAIL: str | None = Field(
        None, description="Staging test user for the AI coach stream check."
    )
    STAGING_TEST_USER_PASSWORD: SecretStr | None = Field(
        None, description="Password of the staging test user."
    )
    HTTP_TIMEOUT_SECONDS: float = Field(15.0, description="Timeout of each HTTP request.")
    COMMAND_TIMEOUT_SECONDS: float = Field(
        900.0, description="Timeout of npm test, lint, install and Playwright runs."
    )
    NPM_CI_ARGS: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra arguments for `npm ci`, space separated; --ignore-scripts when an "
        "install script needs the network.",
    )
    SMOKE_PATH: str = Field("/", description="Path the smoke test loads.")
    SMOKE_MARKER: str = Field(
        "", description="Text the smoke page must contain; empty: any non-empty HTML page."
    )
    SMOKE_VERSION_PATH: str = Field(
        "",
        description="Path answering the serving build's commit (JSON with a commit/sha field, or "
        "the SHA as text), compared with the release's SHA by the smoke test; empty: not asked.",
    )
    SMOKE_VERSION_HEADER: str = Field(
        "",
        description="Response header of the smoke page carrying the serving commit (e.g. "
        "x-commit-sha), compared with the release's SHA; empty: not read.",
    )
    COACH_MESSAGE: str = Field(
        "What would Marcus say about a release night?",
        description="Message sent to the AI coach in the stream check.",
    )

    # --- PostHog (telemetry checks) -------------------------------------------------------------
    POSTHOG_HOST: str = Field("https://us.posthog.com", description="PostHog app host (EU: eu).")
    POSTHOG_PROJECT_ID: str | None = Field(None, description="PostHog project ID.")
    POSTHOG_PERSONAL_API_KEY: SecretStr | None = Field(
        None, description="Personal API key (phx_...) with query:read."
    )
    TELEMETRY_EVENTS: CsvList = Field(
        default_factory=lambda: list(DEFAULT_TELEMETRY_EVENTS),
        description="Events that must be fresh before a release.",
    )
    TELEMETRY_MAX_AGE_MINUTES: float = Field(60, description="Maximum age of the newest event.")
    STAGING_TELEMETRY_WAIT_SECONDS: float = Field(
        300, description="How long to wait for staging's first i_chat_completed after deploy."
    )
    STAGING_TELEMETRY_DISTINCT_ID_PREFIX: str | None = Field(
        None, description="Staging events have distinct IDs with this prefix."
    )
    STAGING_TELEMETRY_PROPERTY: str = Field(
        "environment=staging", description="Staging events carry this property (name=value)."
    )

    # --- Supabase ------------------------------------------------------------------------------
    SUPABASE_CLI: str = Field("supabase", description="Supabase CLI command (npm `supabase`).")
    SUPABASE_DB_URL: SecretStr | None = Field(
        None, description="Staging database URL for the CLI (wins over the project ref)."
    )
    SUPABASE_PROJECT_REF: str | None = Field(None, description="Staging project ref.")
    SUPABASE_DB_PASSWORD: SecretStr | None = Field(
        None, description="Database password the CLI uses with a linked project ref."
    )
    SUPABASE_ACCESS_TOKEN: SecretStr | None = Field(
        None, description="Management API token (sbp_...)."
    )
    SUPABASE_API_URL: str = Field("https://api.supabase.com", description="Management API URL.")
    SCHEMA_ROLLBACK_COMMAND: str | None = Field(
        None, description="Team's own schema rollback command (replaces `migration down`)."
    )
    RESTORE_TIMEOUT_SECONDS: float = Field(
        900, description="How long to wait for the database after a backup restore."
    )

    # --- Vercel --------------------------------------------------------------------------------
    VERCEL_API_URL: str = Field("https://api.vercel.com", description="Vercel REST API URL.")
    VERCEL_TOKEN: SecretStr | None = Field(None, description="Vercel access token.")
    VERCEL_PROJECT_ID: str | None = Field(None, description="Vercel project ID or name.")
    VERCEL_TEAM_ID: str | None = Field(None, description="Vercel team ID, when the project has one.")
    VERCEL_TARGET: str = Field(
        "preview",
        description="Staging target: `preview`, `preview:<branch>`, or a custom environment id/slug.",
    )
    VERCEL_DEPLOY_HOOK_URL: SecretStr | None = Field(
        None, description="Deploy hook to trigger instead of creating the deployment directly."
    )
    REQUIRED_SECRETS: CsvList = Field(
        default_factory=lambda: list(DEFAULT_REQUIRED_SECRETS),
        description="Environment variables staging must have.",
    )
    DEPLOY_TIMEOUT_SECONDS: float = Field(900, description="How long a build may take.")
    DEPLOY_POLL_SECONDS: float = Field(5, description="Interval between deployment polls.")
    BUILD_LOG_SUCCESS_PATTERNS: CsvList = Field(
        default_factory=lambda: list(DEFAULT_BUILD_LOG_PATTERNS),
        description="Regexes each of which some build line must match (comma separated).",
    )
    BUILD_LOG_ERROR_PATTERNS: CsvList = Field(
        default_factory=lambda: list(DEFAULT_BUILD_LOG_ERROR_PATTERNS),
        description="Regexes no build line may match.",
    )
    STAGING_DOMAIN: str | None = Field(
        None, description="Staging alias moved on rollback; default: host of STAGING_URL."
    )

    # --- GitHub --------------------------------------------------------------------------------
    GITHUB_API_URL: str = Field("https://api.github.com", description="GitHub REST API URL.")
    GITHUB_TOKEN: SecretStr | None = Field(None, description="Token with contents:write.")
    GITHUB_REPOSITORY: str | None = Field(None, description="owner/name of the app's repository.")
    STAGING_BRANCH: str = Field("main", description="Branch the release ref is merged into.")

    # --- Validation ------------------------------------------------------------------------------
    PLAYWRIGHT_SPECS: CsvList = Field(
        default_factory=lambda: ["e2e/specs/pwa-offline.spec.ts"],
        description="Playwright specs run against staging.",
    )
    PLAYWRIGHT_CHROMIUM_PATH: str | None = Field(
        None, description="Chromium for Playwright (passed to the app's config)."
    )
    STAGING_REDIS_URL: SecretStr | None = Field(None, description="The app's staging Redis.")
    STAGING_REDIS_MIN_CLIENTS: int = Field(1, description="Fewest expected connected clients.")
    STAGING_REDIS_MAX_CLIENTS: int = Field(200, description="Most expected connected clients.")
    MONITORING_LINKS: CsvList = Field(
        default_factory=lambda: list(DEFAULT_MONITORING_LINKS),
        description="`label|url template` entries for Post-Deploy Monitoring Links.",
    )
    ISSUE_TRACKER_URL: str | None = Field(
        None, description="Ticket link template, e.g. https://linear.app/acme/issue/{id}."
    )

    # --- After the deploy ----------------------------------------------------------------------
    WATCH_MINUTES: float = Field(
        30, ge=0, description="Minutes the post-deploy watch compares staging with its baseline "
        "after a successful release; 0 turns the watch off."
    )
    WATCH_INTERVAL_SECONDS: float = Field(
        60, gt=0, description="Seconds between two checks of the post-deploy watch."
    )
    WATCH_FAILURE_RATIO: float = Field(
        2.0, gt=0, description="The watch alerts when i_request_failed per 5 minutes exceeds this "
        "multiple of the hour before the release."
    )
    WATCH_MIN_FAILURES: int = Field(
        5, ge=1, description="Fewest i_request_failed events in 5 minutes before the rate can alert."
    )
    MANUAL_TEST_CHECKLIST: CsvList = Field(
        default_factory=lambda: list(DEFAULT_MANUAL_TEST_CHECKLIST),
        description="Checkboxes of the Manual Tests form shown after a successful release.",
    )
    MANUAL_TESTS_REMIND_MINUTES: float = Field(
        60, ge=0, description="Remind the release's starter once when Manual Tests is still "
        "unanswered after this many minutes; 0: no reminder."
    )

    # --- Knowledge base ---------------------------------------------------------------------------
    KB_REPOSITORY: SecretStr | None = Field(
        None, description="Git URL or path of the knowledge base each finished release and rollback "
        "is committed to as markdown; empty: none written.",
    )
    KB_PATH: str = Field("releases/", description="Folder inside KB_REPOSITORY for release files.")
    KB_BRANCH: str | None = Field(
        None, description="Branch of KB_REPOSITORY to push to; default: the repository's default."
    )
    KB_CHECKOUT: str | None = Field(
        None, description="The bot's local clone of KB_REPOSITORY; default: kb-checkout beside "
        "DATABASE_PATH.",
    )

    @field_validator(
        "RELEASE_OPERATORS",
        "RELEASE_APPROVERS",
        "REQUIRED_SECRETS",
        "TELEMETRY_EVENTS",
        "PLAYWRIGHT_SPECS",
        "MONITORING_LINKS",
        "MANUAL_TEST_CHECKLIST",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("BUILD_LOG_SUCCESS_PATTERNS", "BUILD_LOG_ERROR_PATTERNS", mode="before")
    @classmethod
    def _split_patterns(cls, value: Any) -> Any:
        # Regexes may contain commas, so these lists are separated by newlines or `;;`.
        if isinstance(value, str):
            parts = value.replace(";;", "\n").splitlines()
            return [item.strip() for item in parts if item.strip()]
        return value

    @field_validator("NPM_CI_ARGS", mode="before")
    @classmethod
    def _split_words(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.split()
        return value

    @field_validator("KB_PATH")
    @classmethod
    def _relative_folder(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/")
        if value.startswith(("/", "\\")) or ".." in parts:
            raise ValueError("must be a folder inside KB_REPOSITORY, such as releases/")
        return value

    @field_validator("SLACK_API_URL")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value.rstrip("/") + "/"

    @field_validator(
        "STAGING_URL", "POSTHOG_HOST", "SUPABASE_API_URL", "VERCEL_API_URL", "GITHUB_API_URL"
    )
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    # --- helpers -------------------------------------------------------------------------------
    def secret_values(self) -> list[str]:
        """Every secret value that is set, for the redactor."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values

    def missing(self, names: tuple[str, ...] | list[str]) -> list[str]:
        """The names among `names` that are unset or empty."""
        out = []
        for name in names:
            value = getattr(self, name, None)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value in (None, "", []):
                out.append(name)
        return out

    def secret(self, name: str) -> str:
        """The plain value of a secret setting ('' when unset)."""
        value = getattr(self, name)
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        return str(value or "")

    @property
    def staging_domain(self) -> str | None:
        if self.STAGING_DOMAIN:
            return self.STAGING_DOMAIN
        if self.STAGING_URL:
            return urlsplit(self.STAGING_URL).hostname
        return None


def describe_setting(name: str) -> str:
    """The description of a setting, for error messages."""
    field = Settings.model_fields.get(name)
    return (field.description or "") if field else ""


class MissingSetting(Exception):
    """A command needs a setting that is not set."""

    def __init__(self, name: str, purpose: str | None = None) -> None:
        self.name = name
        self.purpose = purpose or describe_setting(name)
        super().__init__(f"{name} is not set: {self.purpose}")


def isolated_settings(**values: Any) -> Settings:
    """Settings from `values` alone: no environment, no `.env` (the demo and tests use this)."""

    class _Isolated(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "env_file": None})

        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, *args: Any,
                                       **kwargs: Any) -> tuple[Any, ...]:
            return (init_settings,)

    return _Isolated(**values)
