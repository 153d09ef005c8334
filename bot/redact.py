"""One redactor for everything the bot posts, stores or prints.

It masks the values of secret settings and common token shapes: Slack `xox…`/`xapp-…`,
OpenAI-style `sk-…`, PostHog `phx_…`/`phc_…`, Supabase `sbp_…`, GitHub `ghp_…`/`github_pat_…`,
Vercel-style bearer headers, JWTs, and passwords inside URLs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "[redacted]"

TOKEN_PATTERNS: list[re.Pattern[str]] = [
    re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{8,}"),
    re.compile(r"\bxapp-[A-Za-z0-9-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
    re.compile(r"\bph[xc]_[A-Za-z0-9]{16,}"),
    re.compile(r"\bsbp_[A-Za-z0-9]{16,}"),
    re.compile(r"\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{20,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # libpq keyword strings and the like: password=..., passwd: ..., "password": "..."
    re.compile(r"""(?i)(\b(?:password|passwd|pwd|secret|api[_-]?key|token)["']?\s*[=:]\s*["']?)[^\s"'&;,]+"""),
]
# scheme://user:password@host -> scheme://user:[redacted]@host
# The password runs to the last `@` before the host, so a password containing `@` is masked whole.
URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)([^\s/]+)(@[^@\s/]+)")


class Redactor:
    """Masks known secret values and token shapes in text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secret values (one- to three-character values would mask words)."""
        for value in secrets:
            if value and len(value) >= 4 and value not in self._secrets:
                self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        return self.text(text)

    def text(self, text: str) -> str:
        """`text` with every secret masked."""
        if not text:
            return text
        text = URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
        for pattern in TOKEN_PATTERNS:
            if pattern.groups:
                text = pattern.sub(lambda m: f"{m.group(1)}{MASK}", text)
            else:
                text = pattern.sub(MASK, text)
        for value in self._secrets:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def data(self, value: Any) -> Any:
        """`value` (str, list, dict, nested) with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor; `bot.app` registers the settings' secrets with it."""
    return _default
