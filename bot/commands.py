"""Parse `/release …` text into a Command, or a ParseError carrying the usage. Pure: no I/O.

Grammar:
    /release [help]
    /release start [ref] [--dry-run] [--notes "text"]
    /release status [release-id]
    /release cancel [release-id] [reason...]
    /release rollback [release-id] [reason...]
    /release log [N]
    /release show release-id
    /release doctor
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from bot.redact import escape

USAGE = """\
*Usage*
• `/release start [ref] [--dry-run] [--notes "text"]`: ship a branch, tag or SHA to staging \
(`--dry-run` shows the plan and changes nothing)
• `/release status [id]`: the running release, or the last one
• `/release cancel [id] [reason]`: stop the running release
• `/release rollback [id] [reason]`: revert a release (opens a form)
• `/release log [N]`: the last N releases (default 10), with links to their threads
• `/release show id`: one release as the release log table
• `/release doctor`: try every configured credential (operators; answered to you alone)
• `/release help`: this message"""

SUBCOMMANDS = ("start", "status", "cancel", "rollback", "help", "log", "show", "doctor")
LOG_DEFAULT, LOG_MAX = 10, 30
REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/@+~^-]{1,200}(?<![./])$")
MAX_TEXT = 2000
# Text shlex would split exactly as `str.split()` does: ASCII with no quote, no backslash and no
# whitespace but what both split on (str.split also splits on \x0b, \x0c and \x1c-\x1f).
PLAIN = re.compile(r"[^'\"\\\x0b\x0c\x1c-\x1f\x80-\U0010ffff]*")


@dataclass(frozen=True)
class Command:
    """A parsed `/release` command."""

    name: str
    ref: str | None = None
    dry_run: bool = False
    notes: str = ""
    release_id: int | None = None
    reason: str = ""
    tickets: list[str] = field(default_factory=list)
    limit: int = 0  # `log N`


@dataclass(frozen=True)
class ParseError:
    """Text that is not a valid command; `message` says why and shows the usage."""

    message: str


def _error(why: str) -> ParseError:
    return ParseError(f":warning: {why}\n{USAGE}")


def parse_command(text: str | None) -> Command | ParseError:
    """Parse the text after `/release`."""
    text = (text or "").strip()
    if len(text) > MAX_TEXT:
        return _error(f"That command is too long ({len(text)} characters).")
    if not text:
        return Command("help")
    try:
        words = text.split() if PLAIN.fullmatch(text) else shlex.split(text)
    except ValueError as exc:
        return _error(f"I could not read that command ({exc}).")
    if not words:
        return Command("help")
    name, args = words[0].lower(), words[1:]
    if name not in SUBCOMMANDS:
        return _error(f"Unknown subcommand `{_show(words[0])}`.")
    if name in ("help", "doctor"):
        return Command(name) if not args else _error(f"`{name}` takes no arguments.")
    if name == "start":
        return _parse_start(args)
    if name == "status":
        return _parse_id_only(name, args)
    if name in ("log", "show"):
        return _parse_log(name, args)
    return _parse_id_reason(name, args)


def _show(word: str) -> str:
    """A word the person typed, safe to echo: no backticks, no Slack markup, at most 40 chars."""
    return escape(word.replace("`", "'")[:40])


def _parse_start(args: list[str]) -> Command | ParseError:
    ref = None
    dry_run = False
    notes = ""
    i = 0
    while i < len(args):
        word = args[i]
        if word in ("--dry-run", "-n"):
            dry_run = True
        elif word == "--notes" or word.startswith("--notes="):
            if "=" in word:
                notes = word.split("=", 1)[1]
            elif i + 1 < len(args):
                i += 1
                notes = args[i]
            else:
                return _error("`--notes` needs a text, e.g. `--notes \"new onboarding\"`.")
        elif word.startswith("-"):
            return _error(f"Unknown option `{_show(word)}` for `start`.")
        elif ref is None:
            if not REF.match(word):
                return _error(f"`{_show(word)}` is not a valid branch, tag or SHA.")
            ref = word
        else:
            return _error(f"`start` takes one ref; got also `{_show(word)}`.")
        i += 1
    return Command("start", ref=ref, dry_run=dry_run, notes=notes.strip())


def _release_id(word: str) -> int | None:
    word = word.removeprefix("#")
    return int(word) if word.isdigit() and len(word) < 12 else None


def _parse_id_only(name: str, args: list[str]) -> Command | ParseError:
    if not args:
        return Command(name)
    if len(args) > 1:
        return _error(f"`{name}` takes at most a release id.")
    release_id = _release_id(args[0])
    if release_id is None:
        return _error(f"`{_show(args[0])}` is not a release id (a number like `42`).")
    return Command(name, release_id=release_id)


def _parse_log(name: str, args: list[str]) -> Command | ParseError:
    """`log [N]` (1..LOG_MAX) and `show ID`."""
    if len(args) > 1:
        return _error(f"`{name}` takes at most one number.")
    if name == "show":
        found = _release_id(args[0]) if args else None
        if found is None:
            shown = f"`{_show(args[0])}` is not a release id" if args else "`show` needs a release id"
            return _error(f"{shown} (a number like `42`).")
        return Command(name, release_id=found)
    if not args:
        return Command(name, limit=LOG_DEFAULT)
    word = args[0]
    if not word.isdigit() or not 1 <= int(word[:4]) <= LOG_MAX or len(word) > 4:
        return _error(f"`{_show(word)}` is not a number of releases from 1 to {LOG_MAX}.")
    return Command(name, limit=int(word))


def _parse_id_reason(name: str, args: list[str]) -> Command | ParseError:
    for word in args:
        if word.startswith("--"):
            return _error(f"Unknown option `{_show(word)}` for `{name}`.")
    release_id = _release_id(args[0]) if args else None
    rest = args[1:] if release_id is not None else args
    return Command(name, release_id=release_id, reason=" ".join(rest).strip())
