"""`leave_as_found`: what a run wrote under tool-output directories goes; nothing else is touched."""

from __future__ import annotations

from pathlib import Path

from bot.providers.workspace_files import leave_as_found, untracked_files
from sandbox.workspace import Workspace, create_workspace, run_git


def _ws(tmp_path: Path) -> Workspace:
    return create_workspace(tmp_path / "ws")


def _write(path: Path, text: str = "x\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def test_new_tool_output_is_removed_and_everything_else_is_kept(tmp_path: Path) -> None:
    app = _ws(tmp_path).app
    _write(app / "coverage" / "mine.txt", "a person's notes\n")  # there before the run
    async with leave_as_found(app) as guard:
        _write(app / "test-results" / ".last-run.json", "{}")
        _write(app / "coverage" / "lcov-report" / "index.html")
        _write(app / "scratch.txt", "someone's work\n")
        (app / "package.json").write_text("{}\n")  # a tracked file changed
    assert guard.removed == ["coverage/lcov-report/index.html", "test-results/.last-run.json"]
    assert guard.kept == ["scratch.txt"]
    assert not (app / "test-results").exists() and not (app / "coverage" / "lcov-report").exists()
    assert (app / "coverage" / "mine.txt").read_text() == "a person's notes\n"
    assert (app / "scratch.txt").read_text() == "someone's work\n"
    assert (app / "package.json").read_text() == "{}\n"
    assert "scratch.txt" in guard.note() and "test-results/.last-run.json" in guard.note()


async def test_a_symlinked_output_directory_is_unlinked_never_followed(tmp_path: Path) -> None:
    app = _ws(tmp_path).app
    elsewhere = tmp_path / "elsewhere"
    _write(elsewhere / "keep.txt", "outside the checkout\n")
    async with leave_as_found(app) as guard:
        (app / "test-results").symlink_to(elsewhere, target_is_directory=True)
    assert guard.removed == ["test-results"]
    assert not (app / "test-results").is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "outside the checkout\n"


async def test_a_run_that_leaves_nothing_has_no_note(tmp_path: Path) -> None:
    app = _ws(tmp_path).app
    async with leave_as_found(app) as guard:
        pass
    assert (guard.removed, guard.kept, guard.note()) == ([], [], "")
    assert run_git(app, "status", "--porcelain") == ""


async def test_a_folder_that_is_not_a_checkout_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    assert await untracked_files(folder) is None
    async with leave_as_found(folder) as guard:
        _write(folder / "test-results" / "x.json")
    assert guard.removed == [] and (folder / "test-results" / "x.json").exists()
