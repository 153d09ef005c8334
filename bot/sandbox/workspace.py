"""A throwaway copy of the Pocket Philosopher repository for the bot to release from.

`create_workspace(root)` lays out, under `root`:

- `origin-src/` — a working copy holding the sample app (`bot/sandbox/app_template`), where the
  helpers author commits (a release branch, a failing test, a lint error, a new migration);
- `origin.git/` — a bare repository standing in for GitHub; every helper pushes to it;
- `app/` — a clone of `origin.git`: this is `APP_WORKSPACE`, where the bot runs `git fetch`,
  checks out the release ref detached, and runs `npm run test`, `npm run lint`, the Supabase CLI
  and Playwright.

The sample's `npm run test` and `npm run lint` use plain Node (20+) and no npm packages.
`@playwright/test` is the only devDependency, and it is *not* installed here: there is no
`package-lock.json` and the workspace must never see `npm ci` (it deletes `node_modules` and
would reach for the registry). Instead the caller passes `node_modules=` a directory that already
holds `@playwright/test` (for instance the repository's `.tools/node_modules`, filled by
`scripts/install-tools.sh`), and `app/node_modules` becomes a symlink to it (git ignores it).

Git runs with argument lists (never a shell), a fixed identity, and no global or system config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent / "app_template"
DEFAULT_BRANCH = "main"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Sandbox Developer",
    "GIT_AUTHOR_EMAIL": "dev@pocketphilosopher.test",
    "GIT_COMMITTER_NAME": "Sandbox Developer",
    "GIT_COMMITTER_EMAIL": "dev@pocketphilosopher.test",
}
_TEMPLATE_IGNORE = shutil.ignore_patterns("node_modules", "test-results", "playwright-report", "__pycache__")

FAILING_TEST_PATH = "tests/release-regression.test.js"
FAILING_TEST = """"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");

const { currentStreak } = require("../src/streak");

test("a streak survives a missed day (regression)", () => {
  assert.equal(currentStreak(["2025-03-01", "2025-03-03"], "2025-03-03"), 2);
});
"""

LINT_ERROR_PATH = "src/quotes.js"
LINT_ERROR_SOURCE = """"use strict";

var quotes = ["The obstacle is the way."];

function quoteOfTheDay(day) {
  if (day == 0) {
    debugger;
  }
  return quotes[day % quotes.length];
}

module.exports = { quoteOfTheDay };
"""


def git_env() -> dict[str, str]:
    """The environment every sandbox git command runs with: fixed identity, no user config."""
    env = dict(os.environ)
    env.update(GIT_IDENTITY)
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    return env


def run_git(cwd: Path, *args: str) -> str:
    """Run `git args...` in `cwd` and return its stripped standard output."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


@dataclass(frozen=True)
class CommitSpec:
    """A commit to author on `branch`: `files` maps repo paths to new text (None deletes)."""

    branch: str
    files: Mapping[str, str | None]
    message: str
    base: str = DEFAULT_BRANCH


@dataclass(frozen=True)
class Commit:
    """A commit a helper pushed to the origin."""

    branch: str
    sha: str
    message: str
    paths: tuple[str, ...] = ()


@dataclass
class Workspace:
    """The three directories of a sandbox repository and helpers that author commits."""

    root: Path
    source: Path
    origin: Path
    app: Path
    commits: list[Commit] = field(default_factory=list)

    def git(self, *args: str, cwd: Path | None = None) -> str:
        """Run git in `cwd` (default: the authoring copy `source`)."""
        return run_git(cwd or self.source, *args)

    def sha(self, ref: str = DEFAULT_BRANCH) -> str:
        """The commit SHA `ref` points at in the origin."""
        return run_git(self.origin, "rev-parse", f"{ref}^{{commit}}")

    def branches(self) -> list[str]:
        """The branch names in the origin."""
        out = run_git(self.origin, "for-each-ref", "--format=%(refname:short)", "refs/heads")
        return sorted(out.splitlines())

    def commit(self, spec: CommitSpec) -> Commit:
        """Author `spec` in the source copy, push it to the origin, and return the commit."""
        self._switch(spec.branch, spec.base)
        try:
            for rel, text in spec.files.items():
                path = self.source / rel
                if text is None:
                    self.git("rm", "-q", "--", rel)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                self.git("add", "--", rel)
            self.git("commit", "-q", "--allow-empty", "-m", spec.message)
            self.git("push", "-q", "origin", f"HEAD:refs/heads/{spec.branch}")
            sha = self.git("rev-parse", "HEAD")
        finally:
            self.git("checkout", "-q", DEFAULT_BRANCH)
        made = Commit(spec.branch, sha, spec.message, tuple(spec.files))
        self.commits.append(made)
        return made

    def commit_on_branch(
        self,
        branch: str,
        files: Mapping[str, str | None],
        message: str,
        *,
        base: str = DEFAULT_BRANCH,
    ) -> Commit:
        """Commit `files` on `branch` (created from `base` when new) and push it."""
        return self.commit(CommitSpec(branch, files, message, base))

    def add_release_branch(self, version: str = "1.2.0", *, base: str = DEFAULT_BRANCH) -> Commit:
        """Create `release/<version>` with a harmless change (bumped version, a new note)."""
        package = self._read(base, "package.json")
        old_version = package.split('"version": "', 1)[1].split('"', 1)[0]
        bumped = package.replace(f'"version": "{old_version}"', f'"version": "{version}"', 1)
        notes = f"# Release {version}\n\n- Coach answers cite their sources.\n"
        return self.commit_on_branch(
            f"release/{version}",
            {"package.json": bumped, f"docs/releases/{version}.md": notes},
            f"Release {version}",
            base=base,
        )

    def break_tests(self, branch: str, *, base: str = DEFAULT_BRANCH) -> Commit:
        """Add a failing node test on `branch`, so `npm run test` exits non-zero there."""
        return self.commit_on_branch(
            branch, {FAILING_TEST_PATH: FAILING_TEST}, "Add streak regression test", base=base
        )

    def break_lint(self, branch: str, *, base: str = DEFAULT_BRANCH) -> Commit:
        """Add a source file with lint errors on `branch`, so `npm run lint` exits 1 there."""
        return self.commit_on_branch(
            branch, {LINT_ERROR_PATH: LINT_ERROR_SOURCE}, "Add quote of the day", base=base
        )

    def add_migration(
        self,
        branch: str,
        name: str,
        sql: str,
        *,
        version: str = "20250201000000",
        base: str = DEFAULT_BRANCH,
    ) -> Commit:
        """Add `supabase/migrations/<version>_<name>.sql` on `branch`; its path is in `paths`."""
        path = f"supabase/migrations/{version}_{name}.sql"
        return self.commit_on_branch(branch, {path: sql}, f"Add migration {name}", base=base)

    def migrations(self, ref: str = DEFAULT_BRANCH) -> list[str]:
        """The migration file names at `ref` in the origin, oldest first."""
        out = run_git(self.origin, "ls-tree", "--name-only", f"{ref}:supabase/migrations")
        return sorted(line for line in out.splitlines() if line.endswith(".sql"))

    def _read(self, ref: str, rel: str) -> str:
        return run_git(self.origin, "show", f"{ref}:{rel}") + "\n"

    def _switch(self, branch: str, base: str) -> None:
        if branch in self.branches():
            self.git("fetch", "-q", "origin", branch)
            self.git("checkout", "-q", "-B", branch, "FETCH_HEAD")
        else:
            self.git("fetch", "-q", "origin", base)
            self.git("checkout", "-q", "-B", branch, "FETCH_HEAD")


def create_workspace(
    root: Path,
    *,
    extra_commits: Sequence[CommitSpec] = (),
    node_modules: Path | None = None,
    template: Path = TEMPLATE_DIR,
) -> Workspace:
    """Lay out `root/origin-src`, `root/origin.git` and the clone `root/app` (APP_WORKSPACE).

    `extra_commits` are authored and pushed before the clone is made. `node_modules`, when
    given, is linked as `root/app/node_modules` (it should hold `@playwright/test`).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    source = root / "origin-src"
    origin = root / "origin.git"
    app = root / "app"
    shutil.copytree(template, source, ignore=_TEMPLATE_IGNORE)

    run_git(source, "init", "-q", "-b", DEFAULT_BRANCH)
    run_git(source, "add", "-A")
    run_git(source, "commit", "-q", "-m", "Pocket Philosopher sample app")
    run_git(root, "init", "-q", "--bare", "-b", DEFAULT_BRANCH, str(origin))
    run_git(source, "remote", "add", "origin", str(origin))
    run_git(source, "push", "-q", "origin", DEFAULT_BRANCH)

    workspace = Workspace(root=root, source=source, origin=origin, app=app)
    for spec in extra_commits:
        workspace.commit(spec)

    run_git(root, "clone", "-q", str(origin), str(app))
    if node_modules is not None:
        # Ignored even where the template's .gitignore was not packaged (dotfiles can be missed).
        exclude = app / ".git" / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a", encoding="utf-8") as handle:
            handle.write("node_modules\n")
        (app / "node_modules").symlink_to(Path(node_modules).resolve(), target_is_directory=True)
    return workspace
