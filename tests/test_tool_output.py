"""Parsers of real tool output: Jest, Vitest and node:test summaries, ESLint and `next lint`
listings, and `npm ci` install-script failures.

The fixtures are written here in the shapes the real tools print (checked against Jest 29 with
two projects, `next lint` of Next.js 15, ESLint 9 stylish, Node 20's test runner and npm 11),
with made-up file names, tests and messages.
"""

from __future__ import annotations

from bot.providers.eslint_output import LintProblem, parse_lint_output
from bot.providers.npm_output import install_script_failure
from bot.providers.test_output import FailingTest, parse_test_output

ESC = "\x1b"

JEST_ONE_FAILURE = """\
PASS client components/journal/__tests__/entry-card.test.tsx
FAIL server __tests__/journal-search.test.ts
  ● searchEntries › narrows entries to the chosen virtue before ranking them

    TypeError: builder.match is not a function

      41 |   let builder = client.from("entries").select("*");
      42 |   if (virtue) {
    > 43 |     builder = builder.match({ virtue });
         |                       ^
      44 |   }

      at searchEntries (lib/journal/search.ts:43:23)
      at Object.<anonymous> (__tests__/journal-search.test.ts:52:19)

  ● Console

    console.warn
      cache miss for entries

      at warn (lib/journal/cache.ts:9:11)

PASS server __tests__/streak-math.test.ts

Test Suites: 1 failed, 10 passed, 11 total
Tests:       1 failed, 41 passed, 42 total
Snapshots:   1 passed, 1 total
Time:        2.904 s
Ran all test suites in 2 projects.
"""


def _coloured(text: str) -> str:
    """What Jest prints with colour forced on: the same words wrapped in SGR codes."""
    badge = f"{ESC}[0m{ESC}[7m{ESC}[1m{ESC}[31m FAIL {ESC}[39m{ESC}[22m{ESC}[27m{ESC}[0m"
    return (text.replace("FAIL", badge)
            .replace("TypeError", f"{ESC}[31mTypeError")
            .replace("1 failed", f"{ESC}[1m{ESC}[31m1 failed{ESC}[39m{ESC}[22m"))


def test_jest_counts_come_from_its_summary_not_from_the_bullets() -> None:
    run = parse_test_output(JEST_ONE_FAILURE)
    assert (run.runner, run.failed, run.passed, run.total) == ("jest", 1, 41, 42)
    assert run.counts() == "1 failed, 41 passed, 42 total"
    assert run.failures == [FailingTest(
        "searchEntries › narrows entries to the chosen virtue before ranking them",
        "TypeError: builder.match is not a function")]


def test_jest_output_with_colour_codes_reads_the_same() -> None:
    coloured = parse_test_output(_coloured(JEST_ONE_FAILURE))
    assert coloured.counts() == "1 failed, 41 passed, 42 total"
    assert coloured.failures == parse_test_output(JEST_ONE_FAILURE).failures
    assert ESC not in coloured.failures[0].error


def test_jest_failures_repeated_in_the_closing_summary_count_once() -> None:
    repeated = JEST_ONE_FAILURE.replace(
        "Test Suites:", "Summary of all failing tests\nFAIL server __tests__/journal-search.test.ts\n"
        "  ● searchEntries › narrows entries to the chosen virtue before ranking them\n\n"
        "    TypeError: builder.match is not a function\n\nTest Suites:")
    assert len(parse_test_output(repeated).failures) == 1


def test_a_jest_suite_that_failed_to_run_is_named_by_its_file() -> None:
    out = ("FAIL server __tests__/billing.test.ts\n  ● Test suite failed to run\n\n"
           "    Cannot find module '@/lib/billing/plans' from '__tests__/billing.test.ts'\n\n"
           "Test Suites: 1 failed, 3 passed, 4 total\nTests:       12 passed, 12 total\n")
    run = parse_test_output(out)
    assert run.counts() == "1 test suite failed to run, 12 passed, 12 total"
    assert run.failures == [FailingTest(
        "server __tests__/billing.test.ts › Test suite failed to run",
        "Cannot find module '@/lib/billing/plans' from '__tests__/billing.test.ts'")]
    assert parse_test_output(_coloured(out)).failures == run.failures  # ` FAIL ` padded, coloured


def test_vitest_summary_and_failures() -> None:
    out = (" ❯ tests/streak.test.ts (3 tests | 1 failed) 12ms\n"
           "   × streak > resets after a missed day 5ms\n     → expected 1 to be 2\n\n"
           "⎯⎯⎯⎯⎯⎯⎯ Failed Tests 1 ⎯⎯⎯⎯⎯⎯⎯\n\n"
           " FAIL  tests/streak.test.ts > streak > resets after a missed day\n"
           "AssertionError: expected 1 to be 2 // Object.is equality\n\n"
           " Test Files  1 failed | 4 passed (5)\n      Tests  1 failed | 27 passed (28)\n")
    run = parse_test_output(out)
    assert (run.runner, run.counts()) == ("vitest", "1 failed, 27 passed, 28 total")
    assert run.failures == [FailingTest("tests/streak.test.ts > streak > resets after a missed day",
                                        "AssertionError: expected 1 to be 2 // Object.is equality")]


NODE_TAP = """\
TAP version 13
# Subtest: reflections
    # Subtest: keeps the newest first
    not ok 1 - keeps the newest first
      ---
      duration_ms: 1.2
      failureType: 'testCodeFailure'
      error: |-
        Expected values to be strictly equal:

        3 !== 1

      code: 'ERR_ASSERTION'
      name: 'AssertionError'
      ...
    1..1
not ok 1 - reflections
  ---
  type: 'suite'
  failureType: 'subtestsFailed'
  error: '1 subtest failed'
  ...
# Subtest: loads the quote list
not ok 2 - loads the quote list
  ---
  failureType: 'testCodeFailure'
  error: 'quotes.at is not a function'
  code: 'ERR_TEST_FAILURE'
  name: 'TypeError'
  ...
# Subtest: counts virtues
ok 3 - counts virtues
  ---
  duration_ms: 0.2
  ...
1..3
# tests 3
# suites 1
# pass 1
# fail 2
# cancelled 0
# skipped 0
# todo 0
"""


def test_node_tap_failures_without_their_parent_suite() -> None:
    run = parse_test_output(NODE_TAP)
    assert (run.runner, run.counts()) == ("node:test", "2 failed, 1 passed, 3 total")
    assert run.failures == [
        FailingTest("keeps the newest first", "AssertionError: Expected values to be strictly equal:"),
        FailingTest("loads the quote list", "TypeError: quotes.at is not a function"),
    ]


def test_node_spec_reporter_skips_suite_lines_and_the_repeat_at_the_end() -> None:
    out = ("▶ reflections\n  ✖ keeps the newest first (1.6ms)\n"
           "    AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n\n"
           "✖ reflections (2.1ms)\n✔ counts virtues (0.2ms)\n"
           "ℹ tests 2\nℹ pass 1\nℹ fail 1\n\n✖ failing tests:\n\n"
           "✖ keeps the newest first (1.6ms)\n"
           "  AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n")
    run = parse_test_output(out)
    assert run.counts() == "1 failed, 1 passed, 2 total"
    assert run.failures == [FailingTest(
        "keeps the newest first", "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:")]


def test_output_without_a_summary_has_no_counts() -> None:
    run = parse_test_output("sh: 1: jest: not found\n")
    assert not run.has_totals and run.counts() == "" and run.failures == []


def test_a_very_long_error_line_is_clipped_not_lost() -> None:
    out = JEST_ONE_FAILURE.replace("builder.match is not a function", "x" * 1000)
    error = parse_test_output(out).failures[0].error
    assert error.startswith("TypeError: xxx") and error.endswith("…") and len(error) == 300


NEXT_LINT = f"""\

> pocket-philosopher@0.1.0 lint
> next lint

`next lint` is deprecated and will be removed in Next.js 16.

{ESC}[36m./app/(journal)/entries/view.tsx{ESC}[39m
{ESC}[33m88{ESC}[39m:{ESC}[33m14{ESC}[39m  {ESC}[31m{ESC}[1mError{ESC}[22m{ESC}[39m: \
Unexpected any. Specify a different type.  \
{ESC}[90m{ESC}[1m@typescript-eslint/no-explicit-any{ESC}[22m{ESC}[39m

./lib/quotes/pick.ts
4:10  Warning: 'shuffle' is defined but never used.  @typescript-eslint/no-unused-vars
31:5  Warning: React Hook useEffect has a missing dependency: 'day'.  react-hooks/exhaustive-deps

info  - Need to disable some ESLint rules? Learn more here: https://nextjs.org/docs/app/api-reference/config/eslint#disabling-rules
"""


def test_next_lint_errors_and_warnings_with_file_line_and_rule() -> None:
    report = parse_lint_output(NEXT_LINT)
    assert (report.errors, report.warnings) == (1, 2)
    assert report.files == ["./app/(journal)/entries/view.tsx", "./lib/quotes/pick.ts"]
    assert report.problems[0] == LintProblem(
        "./app/(journal)/entries/view.tsx", 88, 14, "error",
        "Unexpected any. Specify a different type.", "@typescript-eslint/no-explicit-any")
    assert report.problems[2].rule == "react-hooks/exhaustive-deps"
    assert report.problems[2].message == "React Hook useEffect has a missing dependency: 'day'."


def test_plain_eslint_stylish_uses_its_own_summary() -> None:
    out = ("\n/work/app/src/streak.ts\n"
           "   3:1   error    Unexpected var, use let or const instead  no-var\n"
           "  12:20  warning  'today' is assigned a value but never used  no-unused-vars\n"
           "  40:1   error    Parsing error: Unexpected token )\n\n"
           "✖ 3 problems (2 errors, 1 warning)\n"
           "  1 error and 0 warnings potentially fixable with the `--fix` option.\n")
    report = parse_lint_output(out)
    assert (report.errors, report.warnings, report.files) == (2, 1, ["/work/app/src/streak.ts"])
    assert report.problems[0].as_text() == (
        "/work/app/src/streak.ts:3:1  error  no-var  Unexpected var, use let or const instead")
    assert report.problems[2].rule == "" and report.problems[2].message.startswith("Parsing error")


def test_one_problem_a_line_forms() -> None:
    inline = "src/quotes.js:7:5  error  Unexpected 'debugger' statement.  no-debugger\n"
    unix = "/app/src/a.js:3:1: Unexpected var, use let or const instead. [Error/no-var]\n"
    assert parse_lint_output(inline).problems == [
        LintProblem("src/quotes.js", 7, 5, "error", "Unexpected 'debugger' statement.", "no-debugger")]
    assert parse_lint_output(unix).problems == [
        LintProblem("/app/src/a.js", 3, 1, "error", "Unexpected var, use let or const instead.", "no-var")]


def test_lint_output_without_problems() -> None:
    report = parse_lint_output("> next lint\n\n✔ No ESLint warnings or errors\n")
    assert (report.errors, report.warnings, report.problems) == (0, 0, [])


NPM_CI_NETWORK = """\
npm warn deprecated inflight@1.0.6: This module is not supported
npm error code 1
npm error path /srv/app/node_modules/@maps/tiles
npm error command failed
npm error command sh -c node install/fetch-binary.js
npm error Fetching https://releases.maps.example/tiles-1.2.0-linux-x64.tar.gz
npm error file:///srv/app/node_modules/node-fetch/src/index.js:108
npm error 			reject(new FetchError(`request to ${request.url} failed`, 'system', error));
npm error
npm error FetchError: request to https://releases.maps.example/tiles.tar.gz failed, \
reason: getaddrinfo EAI_AGAIN releases.maps.example
npm error     at ClientRequest.<anonymous> (file:///srv/app/node_modules/node-fetch/src/index.js:108:11)
npm error A complete log of this run can be found in: /root/.npm/_logs/debug-0.log
"""


def test_npm_ci_install_script_failure_names_package_script_and_reason() -> None:
    failure = install_script_failure(NPM_CI_NETWORK)
    assert failure is not None
    assert (failure.package, failure.script, failure.network) == (
        "@maps/tiles", "node install/fetch-binary.js", True)
    assert failure.reason.startswith("FetchError: request to https://releases.maps.example")
    assert failure.reason.endswith("getaddrinfo EAI_AGAIN releases.maps.example")


def test_npm_ci_old_prefix_and_other_failures() -> None:
    old = ("npm ERR! code 1\nnpm ERR! path /app/node_modules/sharp\nnpm ERR! command failed\n"
           "npm ERR! command sh -c (node install/libvips && node install/dll-copy)\n"
           "npm ERR! Error: libvips is not available for linux-x64\n")
    failure = install_script_failure(old)
    assert failure is not None and failure.package == "sharp" and not failure.network
    assert failure.script == "(node install/libvips && node install/dll-copy)"
    assert failure.reason == "Error: libvips is not available for linux-x64"
    lock = ("npm error code EUSAGE\nnpm error `npm ci` can only install packages when your "
            "package.json and package-lock.json are in sync.\n")
    assert install_script_failure(lock) is None
