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
    text = "x" * (LOG_LIMIT - 3) + "hunter22" + "y" * 10_000
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
