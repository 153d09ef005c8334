"""One redactor for everything the bot posts, stores or prints, and Slack escaping of user text.

It masks the values of secret settings first, then common token shapes: Slack `xox…`/`xapp-…`
and webhook URLs, OpenAI-style `sk-…`, PostHog `phx_…`/`phc_…`, Supabase `sbp_…`/`sb_secret_…`,
Resend `re_…`, GitHub `ghp_…`/`github_pat_…`, bearer/basic/token authorization headers, JWTs,
`password=`-style assignments (`access_token=`, `client_secret=`, `PGPASSWORD=`, `*_API_KEY=`)
and passwords inside URLs.

A known secret value is masked only where it stands as a whole token: `123456` is masked in
`pin 123456` but not inside `1123456`, `dpl_123456abc` or the timestamp `…:36.123456`. Structured
data (`Redactor.data`) keeps its shape: keys, numbers and identifiers (ids, SHAs, timestamps,
Slack button values, `action_id`/`block_id`/`private_metadata`) are never touched; only the
human-readable strings are redacted, so JSON stays parseable and a button can still be answered.

Every pattern runs in time linear in the text (no pattern can backtrack over the whole input),
and `bound()` cuts text that is about to be logged to a fixed size before it is redacted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

MASK = "[redacted]"
# The longest text redacted for a log line; anything longer is cut (with a note of the size).
LOG_LIMIT = 4000
# Secrets longer than this are not expected; a cut leaves this much extra text to redact, so a
# secret straddling the cut is masked before the final cut.
_MARGIN = 512
# The bot redacts the same short texts over and over (a status message's labels, a button's
# text): up to this many answers for texts up to this long are remembered until a secret is added.
_CACHE_ENTRIES = 2048
_CACHE_TEXT = 8192

# Token shapes that start at a word boundary, one alternative each; they run as one pattern, so
# a text is scanned once for all of them rather than once per shape.
_TOKEN_SHAPES = (
    r"xox[abposre]-[A-Za-z0-9-]{8,}",
    r"xapp-[A-Za-z0-9-]{8,}",
    r"sk-[A-Za-z0-9_-]{16,}",
    r"ph[xc]_[A-Za-z0-9]{16,}",
    r"sbp_[A-Za-z0-9]{16,}",
    r"sb_secret_[A-Za-z0-9_-]{8,}",
    r"re_[A-Za-z0-9]{6,}_[A-Za-z0-9]{8,}",
    r"(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{20,}",
    r"github_pat_[A-Za-z0-9_]{20,}",
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
)
# Each pattern with the words one of which a text must hold (in any case) for it to match at
# all: a text without any skips that pattern (a scan of the text in C, not of the regex).
TOKEN_PATTERNS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(r"\b(?:" + "|".join(_TOKEN_SHAPES) + ")"), ()),
    (re.compile(r"https://hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+"),
     ()),
    (re.compile(r"(?i)(\b(?:bearer|basic|token)[ \t]+)[A-Za-z0-9._~+/=-]{8,}"),
     ("bearer", "basic", "token")),
    # libpq keyword strings, env assignments and JSON: password=..., PGPASSWORD=...,
    # "password": "...", access_token=..., client_secret=..., POSTHOG_API_KEY=...
    (re.compile(r"""(?i)(\b(?:[a-z0-9]+_)*(?:pg)?(?:password|passwd|pwd|secret|api[_-]?key|token)"""
                r"""["']?[ \t]*[=:][ \t]*["']?)[^\s"'&;,]+"""),
     ("pass", "pwd", "secret", "key", "token")),
]
_JOINERS = ".-"
# Keys whose values are identifiers, never redacted (with everything under them), compared in
# lower case with spaces and hyphens as `_`: Slack's ids and button payloads, stored ids, SHAs,
# timestamps and states.
ID_KEYS = frozenset({
    "id", "ids", "ts", "sha", "key", "hash", "value", "action_id", "block_id", "callback_id",
    "private_metadata", "trigger_id", "external_id", "channel", "user", "team", "type", "style",
    "outcome", "state", "status", "environment",
})
ID_SUFFIXES = ("_id", "_ids", "_ts", "_sha", "_at", "_date")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_MAX_SCHEME = 32


def mask_url_passwords(text: str) -> str:
    """`scheme://user:password@host` -> `scheme://user:[redacted]@host`, in linear time."""
    return _mask(text, list(_url_password_spans(text)))


def _url_password_spans(text: str) -> Iterable[tuple[int, int]]:
    """Where passwords sit inside URLs. The password runs to the last `@` before the host, so a
    password containing `@` is masked whole. Each `://` is looked at once, and the scan after it
    stops at the next `/` or space, so the whole search is linear in the text."""
    start = text.find("://")
    while start != -1:
        span = _url_password_span(text, start)
        if span is not None:
            yield span
        start = text.find("://", start + 3)


def _occurrences(text: str, value: str) -> Iterable[tuple[int, int]]:
    """Where `value` stands in `text` as a whole token (see `_stands_alone`)."""
    at = text.find(value)
    while at != -1:
        end = at + len(value)
        if _stands_alone(text, at, end):
            yield at, end
            at = text.find(value, end)
        else:
            at = text.find(value, at + 1)


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _joined(text: str, joiner: int, beyond: int) -> bool:
    """Whether `text[joiner]` joins the match to more of the same token: a word character, or
    `.`/`-` with a word character beyond it (`1712345678.123456`, `app-123456-x`)."""
    if not 0 <= joiner < len(text):
        return False
    char = text[joiner]
    if _word(char):
        return True
    return char in _JOINERS and 0 <= beyond < len(text) and _word(text[beyond])


def _stands_alone(text: str, begin: int, end: int) -> bool:
    """Whether `text[begin:end]` is a whole token: an edge that is a word character is not
    continued by another one (an edge that is punctuation is a boundary of its own)."""
    if _word(text[begin]) and _joined(text, begin - 1, begin - 2):
        return False
    return not (_word(text[end - 1]) and _joined(text, end, end + 1))


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each run of overlapping or touching spans replaced by one MASK."""
    out: list[str] = []
    done = 0
    for begin, end in sorted(s for s in spans if s[1] > s[0]):
        if begin > done or not out:
            out.append(text[done:begin])
            out.append(MASK)
        done = max(done, end)
    out.append(text[done:])
    return "".join(out)


def _url_password_span(text: str, sep: int) -> tuple[int, int] | None:
    begin = sep
    while begin > 0 and sep - begin < _MAX_SCHEME and text[begin - 1] in _SCHEME_CHARS:
        begin -= 1
    if begin == sep or not text[begin].isalpha():
        return None
    i = sep + 3
    n = len(text)
    while i < n and text[i] not in "/:@" and not text[i].isspace():
        i += 1
    if i >= n or text[i] != ":":
        return None
    pw_start = i + 1
    end = pw_start
    while end < n and text[end] != "/" and not text[end].isspace():
        end += 1
    at = text.rfind("@", pw_start, end)
    if at <= pw_start or at + 1 >= end:
        return None
    return pw_start, at


def bound(text: str, limit: int = LOG_LIMIT) -> str:
    """`text` cut to about `limit` characters, saying how long it was (for log lines)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters not shown]"


def escape(text: str) -> str:
    """Text from people made inert for Slack mrkdwn: no mentions, no links, no `<!channel>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Redactor:
    """Masks known secret values and token shapes in text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self._known: dict[str, str] = {}
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secret values (one- to three-character values would mask words)."""
        for value in secrets:
            if value and len(value) >= 4 and value not in self._secrets:
                self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)
        self._known.clear()  # an answer given before may now hold a secret

    def __call__(self, text: str) -> str:
        return self.text(text)

    def text(self, text: str) -> str:
        """`text` with every secret masked: known values and token shapes, found on the original
        text and masked once each (a secret inside a token, or a token inside a secret, is
        masked whole)."""
        if not text:
            return text
        if len(text) > _CACHE_TEXT:
            return self._redacted(text)
        known = self._known.get(text)
        if known is None:
            if len(self._known) >= _CACHE_ENTRIES:
                self._known.clear()
            known = self._known[text] = self._redacted(text)
        return known

    def _redacted(self, text: str) -> str:
        spans = [span for value in self._secrets for span in _occurrences(text, value)]
        spans.extend(_url_password_spans(text))
        lowered = text.lower()
        for pattern, needs in TOKEN_PATTERNS:
            if needs and not any(word in lowered for word in needs):
                continue
            group = 1 if pattern.groups else 0
            spans.extend((m.end(group) if group else m.start(), m.end())
                         for m in pattern.finditer(text))
        return _mask(text, spans) if spans else text

    def log_text(self, text: str, limit: int = LOG_LIMIT) -> str:
        """`text` bounded to `limit` characters and redacted (for log lines and the terminal)."""
        if len(text) <= limit:
            return self.text(text)
        head = self.text(text[:limit + _MARGIN])
        return f"{head[:limit]}… [{len(text) - limit} more characters not shown]"

    def data(self, value: Any) -> Any:
        """`value` (str, list, dict, nested) with its human-readable strings redacted; keys,
        numbers and the values of identifier keys (`is_id_key`) stay as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: v if is_id_key(k) else self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value


def is_id_key(key: object) -> bool:
    """Whether a dict key names an identifier (`id`, `value`, `action_id`, `thread_ts`,
    `Git SHA`, `deploymentId`, `started_at`, ...), whose value redaction never changes."""
    return isinstance(key, str) and _names_an_id(key)


@functools.lru_cache(maxsize=4096)  # the same few keys (`type`, `text`, `block_id`) again and again
def _names_an_id(key: str) -> bool:
    if key.endswith(("Id", "Ids")):
        return True
    name = key.strip().lower().replace(" ", "_").replace("-", "_")
    return name in ID_KEYS or name.endswith(ID_SUFFIXES)


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor; `bot.app` registers the settings' secrets with it."""
    return _default
