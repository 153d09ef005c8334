"""A throwaway copy of the Pocket Philosopher repository for the bot to release from.

`create_workspace(root)` lays out, under `root`:

- `origin-src/` — a working copy holding the sample app (`sandbox/app_template`), where the
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

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
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

INSTALL_PACKAGE = "geo-tiles"
INSTALL_SCRIPT = """"use strict";
// Fetches map tiles at install time, as packages with prebuilt binaries do.
const host = "tiles.geo-tiles.invalid";
require("node:dns").lookup(host, (err) => {
  if (err) {
    const url = `https://${host}/tiles-1.0.0.tar.gz`;
    console.error(`Error: request to ${url} failed, reason: getaddrinfo ${err.code} ${host}`);
    process.exit(1);
  }
});
"""


def _package_tarball(name: str, files: Mapping[str, str]) -> bytes:
    """An npm package tarball (`package/...`) with a postinstall script, byte-for-byte stable."""
    manifest = {"name": name, "version": "1.0.0", "scripts": {"postinstall": "node download.js"}}
    contents = {"package.json": json.dumps(manifest, indent=2) + "\n", **files}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for rel, text in contents.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{rel}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


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
    """A commit to author on `branch`: `files` maps repo paths to new text or bytes (None deletes)."""

    branch: str
    files: Mapping[str, str | bytes | None]
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
                if isinstance(text, bytes):
                    path.write_bytes(text)
                else:
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
        files: Mapping[str, str | bytes | None],
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

    def add_install_script(self, branch: str, *, base: str = DEFAULT_BRANCH) -> Commit:
        """Add a dependency whose install script downloads a file from the network, with a lockfile.

        `npm ci` then fails there the way a package fetching a binary does without network (the
        host is under `.invalid`), and passes with `--ignore-scripts`. The dependency is a local
        tarball (no registry); the devDependency is dropped so the lockfile is complete. Run
        `npm ci` only in a workspace created without `node_modules=`: it deletes node_modules.
        """
        tarball = _package_tarball(INSTALL_PACKAGE, {"download.js": INSTALL_SCRIPT})
        package = json.loads(self._read(base, "package.json"))
        package.pop("devDependencies", None)
        spec = f"file:vendor/{INSTALL_PACKAGE}-1.0.0.tgz"
        package["dependencies"] = {INSTALL_PACKAGE: spec}
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
        lock = {
            "name": package["name"], "version": package["version"], "lockfileVersion": 3,
            "requires": True,
            "packages": {
                "": {"name": package["name"], "version": package["version"],
                     "dependencies": {INSTALL_PACKAGE: spec}},
                f"node_modules/{INSTALL_PACKAGE}": {"version": "1.0.0", "resolved": spec,
                                                    "integrity": integrity,
                                                    "hasInstallScript": True},
            },
        }
        files: dict[str, str | bytes | None] = {
            "package.json": json.dumps(package, indent=2) + "\n",
            "package-lock.json": json.dumps(lock, indent=2) + "\n",
            f"vendor/{INSTALL_PACKAGE}-1.0.0.tgz": tarball,
        }
        return self.commit_on_branch(branch, files, f"Add {INSTALL_PACKAGE}", base=base)

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
