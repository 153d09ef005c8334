"""The redactor masks secret values and token shapes everywhere."""

from __future__ import annotations

from bot.redact import MASK, Redactor
from tests.helpers import make_settings


def test_token_shapes_are_masked() -> None:
    redact = Redactor()
    samples = [
        "xoxb-123456789012-abcdefghijkl",
        "xapp-1-A0123-4567-abcdef",
        "sk-proj-abcdefghijklmnopqrstuv",
        "phx_abcdefghijklmnopqrstuvwxyz0123",
        "sbp_0123456789abcdef0123456789abcdef",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnopq",
    ]
    for token in samples:
        out = redact(f"before {token} after")
        assert token not in out and MASK in out, token
        assert out.startswith("before ") and out.endswith(" after")


def test_passwords_inside_urls_and_bearer_headers() -> None:
    redact = Redactor()
    assert redact("postgresql://postgres:hunter22@db:5432/x") == f"postgresql://postgres:{MASK}@db:5432/x"
    assert redact("redis://:s3cret@cache:6379/0") == f"redis://:{MASK}@cache:6379/0"
    assert redact("Authorization: Bearer abc.def-ghi_jkl") == f"Authorization: Bearer {MASK}"
    assert redact("https://example.com/path") == "https://example.com/path"


def test_secret_setting_values_are_masked_even_without_a_known_shape() -> None:
    settings = make_settings(VERCEL_TOKEN="plain-vercel-token-value",
                             STAGING_TEST_USER_PASSWORD="correct horse")
    redact = Redactor(settings.secret_values())
    out = redact("token plain-vercel-token-value and password correct horse")
    assert "plain-vercel-token-value" not in out and "correct horse" not in out


def test_nested_data_is_redacted() -> None:
    redact = Redactor(["supersecret"])
    data = {"a": ["x supersecret", {"b": "xoxp-1234567890-abcdef"}], "n": 3}
    assert redact.data(data) == {"a": [f"x {MASK}", {"b": MASK}], "n": 3}


def test_more_shapes_found_in_review() -> None:
    redact = Redactor(["abcd"])
    assert redact("postgres://u:p@ss@host:5432/db") == f"postgres://u:{MASK}@host:5432/db"
    assert redact("host=db password=hunter2 user=x") == f"host=db password={MASK} user=x"
    assert redact('{"password": "s3cr3t"}') == f'{{"password": "{MASK}"}}'
    assert redact("xoxe-1-abcdefghijkl") == MASK
    assert redact("pin abcd here") == f"pin {MASK} here"  # four characters are enough
    assert redact("mail qa@pocketphilosopher.app, https://x.test/a@b") == \
        "mail qa@pocketphilosopher.app, https://x.test/a@b"
    assert redact('"tokens": 58') == '"tokens": 58'


def test_redaction_is_linear_on_hostile_text() -> None:
    """Texts built to make a backtracking pattern quadratic are redacted in one pass each: a
    1 MB body of each shape finishes (the old URL pattern took minutes on 80 KB)."""
    import threading

    redact = Redactor(["hunter22"])
    shapes = ["a" * 1_000_000, "a:" * 500_000, "x://" * 250_000, "://a:" * 200_000,
              "a://b:" + "c@" * 500_000, "password=" * 100_000, "Bearer " * 140_000]
    done: list[int] = []

    def work() -> None:
        for shape in shapes:
            assert len(redact(shape)) > 0
            done.append(len(shape))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(120)  # a bound that only a quadratic pass can reach, even on a loaded machine
    assert len(done) == len(shapes)


def test_log_text_is_bounded_and_still_masks_a_secret_at_the_cut() -> None:
    from bot.redact import LOG_LIMIT

    redact = Redactor(["hunter22"])
    text = "x" * (LOG_LIMIT - 4) + " hunter22 " + "y" * 10_000
    out = redact.log_text(text)
    assert "hunter22" not in out and "hun" not in out[LOG_LIMIT - 4:LOG_LIMIT + 1]
    assert len(out) < LOG_LIMIT + 100 and "more characters not shown" in out


def test_escape_makes_user_text_inert() -> None:
    from bot.redact import escape

    text = "<!channel> <!here> <@U123> <https://evil.example|click> a & b"
    out = escape(text)
    assert "<" not in out and ">" not in out
    assert out == ("&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; "
                   "&lt;https://evil.example|click&gt; a &amp; b")


def test_shapes_named_in_issue_9() -> None:
    """Each token shape the review found missing is masked, and its surroundings are kept."""
    redact = Redactor()
    cases = {
        "GET /cb?access_token=ya29abcdef123456&x=1": f"GET /cb?access_token={MASK}&x=1",
        "client_secret=s3cr3tvalue1 next": f"client_secret={MASK} next",
        "PGPASSWORD=hunter22 psql -h db": f"PGPASSWORD={MASK} psql -h db",
        "OPENAI_API_KEY=abc123 TOGETHER_API_KEY=def456": f"OPENAI_API_KEY={MASK} TOGETHER_API_KEY={MASK}",
        "RESEND_API_KEY: abc123xyz": f"RESEND_API_KEY: {MASK}",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==": f"Authorization: Basic {MASK}",
        "Authorization: token abcdefgh12345678": f"Authorization: token {MASK}",
        "key sb_secret_abcdefgh12345678 end": f"key {MASK} end",
        "sent with re_AbCdEf12_0123456789abcdef": f"sent with {MASK}",
        "hook https://hooks.slack.com/services/T0001/B0001/abcdefABCDEF012345 ok": f"hook {MASK} ok",
    }
    for text, expected in cases.items():
        assert redact(text) == expected, text


def test_known_values_before_shapes_and_only_as_whole_tokens() -> None:
    redact = Redactor(["123456", "correct horse battery"])
    assert redact('{"password": "correct horse battery"}') == f'{{"password": "{MASK}"}}'
    assert redact("pin 123456, then") == f"pin {MASK}, then"
    assert redact("the password is 123456.") == f"the password is {MASK}."
    untouched = ["1123456", "1234567", "dpl_123456abc", "2026-12-06T03:02:36.123456+00:00",
                 "1712345678.123456", "app-123456-x.vercel.app", "a1b2c3123456ffee", "v1.123456"]
    for text in untouched:
        assert redact(text) == text


def test_structured_data_keeps_ids_numbers_and_button_values() -> None:
    """A gate's button stays answerable and numbers stay numbers when the secret is 123456."""
    redact = Redactor(["123456"])
    button = {"type": "button", "text": {"type": "plain_text", "text": "Apply 123456"},
              "action_id": "gate:123456", "value": "123456|migrations_gate|apply",
              "url": "https://x.test/?p=123456"}
    view = {"type": "modal", "private_metadata": '{"release_id": 123456}',
            "blocks": [{"type": "actions", "block_id": "123456", "elements": [button]}]}
    data = {"duration_ms": 123456, "thread_ts": "1700000000.123456", "Git SHA": "123456",
            "deploymentId": "123456", "started_at": "2026-01-01T00:00:00.123456", "view": view}
    out = redact.data(data)
    element = out["view"]["blocks"][0]["elements"][0]
    assert element["text"]["text"] == f"Apply {MASK}"
    assert element["url"] == f"https://x.test/?p={MASK}"
    assert {k: element[k] for k in ("action_id", "value")} == \
        {k: button[k] for k in ("action_id", "value")}
    assert out["view"]["private_metadata"] == view["private_metadata"]
    assert out["view"]["blocks"][0]["block_id"] == "123456"
    assert {k: v for k, v in out.items() if k != "view"} == {k: v for k, v in data.items() if k != "view"}


def test_a_secret_added_later_is_masked_in_a_text_redacted_before() -> None:
    """Answers are remembered for speed; a new secret makes the redactor forget them."""
    redactor = Redactor()
    text = "connect with hunter2hunter2 now"
    assert redactor(text) == text
    redactor.add(["hunter2hunter2"])
    assert redactor(text) == f"connect with {MASK} now"
    assert redactor(text) == f"connect with {MASK} now"  # and the remembered answer agrees
    long = "x " * 2000 + "hunter2hunter2"  # too long to remember: redacted each time
    assert redactor(long).endswith(MASK)
