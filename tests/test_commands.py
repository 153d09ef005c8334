"""Command parsing, including property-based checks that no text crashes the parser."""

from __future__ import annotations

import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import PLAIN, USAGE, Command, ParseError, parse_command


def test_bare_and_help_give_help() -> None:
    assert parse_command("") == Command("help")
    assert parse_command("   ") == Command("help")
    assert parse_command("help") == Command("help")
    assert parse_command(None) == Command("help")


def test_start_with_ref_dry_run_and_notes() -> None:
    assert parse_command("start") == Command("start")
    assert parse_command("start release/1.2.0") == Command("start", ref="release/1.2.0")
    assert parse_command("start v1.2.0 --dry-run") == Command("start", ref="v1.2.0", dry_run=True)
    assert parse_command('start abc1234 --notes "new onboarding"') == Command(
        "start", ref="abc1234", notes="new onboarding")
    assert parse_command("START main -n") == Command("start", ref="main", dry_run=True)


def test_status_cancel_rollback_take_ids_and_reasons() -> None:
    assert parse_command("status 12") == Command("status", release_id=12)
    assert parse_command("status #12") == Command("status", release_id=12)
    assert parse_command("cancel") == Command("cancel")
    assert parse_command("cancel 3 wrong branch") == Command("cancel", release_id=3, reason="wrong branch")
    assert parse_command("rollback 500s on /api/marcus") == Command("rollback", reason="500s on /api/marcus")
    assert parse_command("rollback 7 errors spiking") == Command("rollback", release_id=7,
                                                                 reason="errors spiking")


def test_each_bad_input_gets_a_specific_reason_and_the_usage() -> None:
    cases = {
        "ship it": "Unknown subcommand `ship`",
        "start main --force": "Unknown option `--force`",
        "start main other": "takes one ref",
        "start ../../etc/passwd": "not a valid branch",
        "start -rf": "Unknown option `-rf`",
        "start main --notes": "`--notes` needs a text",
        "status abc": "is not a release id",
        "status 1 2": "at most a release id",
        "help me": "takes no arguments",
        'start "unclosed': "could not read",
        "cancel --now": "Unknown option `--now`",
        "x" * 3000: "too long",
    }
    for text, reason in cases.items():
        parsed = parse_command(text)
        assert isinstance(parsed, ParseError), text
        assert reason in parsed.message, (text, parsed.message)
        assert USAGE in parsed.message


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_no_text_crashes_the_parser(text: str) -> None:
    parsed = parse_command(text)
    assert isinstance(parsed, (Command, ParseError))
    if isinstance(parsed, ParseError):
        assert parsed.message.startswith(":warning:") and "/release start" in parsed.message


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["start", "status", "cancel", "rollback", "--dry-run", "--notes",
                                 "main", "v1.2", "#3", "12", "'", '"', "--x", "-n", "..", "help"]),
                max_size=6))
def test_command_shaped_noise_never_crashes(words: list[str]) -> None:
    parsed = parse_command(" ".join(words))
    assert isinstance(parsed, (Command, ParseError))
    if isinstance(parsed, Command) and parsed.ref is not None:
        assert not parsed.ref.startswith("-") and ".." not in parsed.ref


SPLITTING = "ab -_./#1\t\n\r\x0b\x0c\x1c\x1f'\"\\\xa0\u2003é"  # words, separators, quotes, odd spaces


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(SPLITTING)), max_size=16))
def test_the_plain_text_shortcut_splits_exactly_as_shlex(text: str) -> None:
    """Plain command text skips shlex (`PLAIN`): only where `str.split()` gives what shlex gives."""
    if PLAIN.fullmatch(text):
        assert text.split() == shlex.split(text)
    if any(c in text for c in "'\"\\\x0b\x0c\x1c\x1f\xa0\u2003é"):
        assert not PLAIN.fullmatch(text)
