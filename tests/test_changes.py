"""Tests for cc_executor.engine.changes: before/after snapshots of a working directory and their diff."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, cc_execute, open_store
from cc_executor.engine.changes import IGNORED_DIRS, FileChanges, Snapshot, diff_snapshots, take_snapshot
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def bump_mtime(path: Path) -> None:
    """Move mtime a full second on, so the change is visible whatever the filesystem's timestamp granularity."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def init_repo(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "commit.gpgsign", "false")


def commit_all(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "snapshot")


def no_changes(result: FileChanges) -> bool:
    return not (result.created or result.modified or result.deleted)


# --- plain directories ------------------------------------------------------------------------------------------


async def test_plain_dir_create_modify_delete(tmp_path: Path) -> None:
    write(tmp_path / "keep.txt", "same")
    write(tmp_path / "edit.txt", "old")
    write(tmp_path / "gone.txt", "bye")
    before = await take_snapshot(tmp_path)
    assert set(before.entries) == {"keep.txt", "edit.txt", "gone.txt"}
    assert before.truncated is False

    write(tmp_path / "edit.txt", "new content")
    write(tmp_path / "new.txt", "hello")
    (tmp_path / "gone.txt").unlink()
    after = await take_snapshot(tmp_path)

    assert diff_snapshots(before, after) == FileChanges(
        created=["new.txt"], modified=["edit.txt"], deleted=["gone.txt"], truncated=False
    )


async def test_unchanged_dir_diffs_empty(tmp_path: Path) -> None:
    write(tmp_path / "a.txt")
    write(tmp_path / "sub" / "b.txt")
    before = await take_snapshot(tmp_path)
    after = await take_snapshot(tmp_path)
    assert before.entries == after.entries
    assert no_changes(diff_snapshots(before, after))


async def test_same_size_rewrite_detected_by_mtime(tmp_path: Path) -> None:
    f = write(tmp_path / "f.txt", "aaaa")
    before = await take_snapshot(tmp_path)
    f.write_text("bbbb")
    bump_mtime(f)
    after = await take_snapshot(tmp_path)
    assert diff_snapshots(before, after).modified == ["f.txt"]


async def test_replace_by_rename_detected_even_with_same_size_and_mtime(tmp_path: Path) -> None:
    f = write(tmp_path / "f.txt", "aaaa")
    st = f.stat()
    before = await take_snapshot(tmp_path)
    tmp = write(tmp_path / "f.txt.tmp", "bbbb")
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, f)  # atomic save: new inode, same size, same mtime
    after = await take_snapshot(tmp_path)
    assert diff_snapshots(before, after).modified == ["f.txt"]


async def test_nested_dirs_use_posix_relative_paths(tmp_path: Path) -> None:
    write(tmp_path / "a" / "b" / "c" / "deep.txt")
    write(tmp_path / "a" / "top.txt")
    before = await take_snapshot(tmp_path)
    assert set(before.entries) == {"a/b/c/deep.txt", "a/top.txt"}

    write(tmp_path / "a" / "b" / "c" / "deep.txt", "changed!")
    write(tmp_path / "a" / "b" / "new" / "file.py")
    (tmp_path / "a" / "top.txt").unlink()
    after = await take_snapshot(tmp_path)

    result = diff_snapshots(before, after)
    assert result.created == ["a/b/new/file.py"]
    assert result.modified == ["a/b/c/deep.txt"]
    assert result.deleted == ["a/top.txt"]


async def test_directories_are_not_entries(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path / "full" / "f.txt")
    snap = await take_snapshot(tmp_path)
    assert set(snap.entries) == {"full/f.txt"}


async def test_ignored_dirs_not_reported(tmp_path: Path) -> None:
    write(tmp_path / "node_modules" / "pkg" / "index.js")
    write(tmp_path / "src" / "__pycache__" / "m.cpython-311.pyc")
    write(tmp_path / "src" / "m.py")
    before = await take_snapshot(tmp_path)
    assert set(before.entries) == {"src/m.py"}

    write(tmp_path / "node_modules" / "other" / "index.js")
    write(tmp_path / "node_modules" / "pkg" / "index.js", "changed")
    write(tmp_path / ".venv" / "bin" / "python")
    write(tmp_path / ".claude" / "settings.local.json")
    write(tmp_path / "src" / "new.py")
    after = await take_snapshot(tmp_path)

    assert diff_snapshots(before, after) == FileChanges(
        created=["src/new.py"], modified=[], deleted=[], truncated=False
    )


def test_ignored_dirs_constant() -> None:
    assert {"node_modules", ".git", ".venv", "__pycache__", ".claude"} <= IGNORED_DIRS


async def test_symlinks_recorded_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    target = write(outside / "target.txt", "v1")
    write(outside / "inner" / "x.txt")
    work = tmp_path / "work"
    work.mkdir()
    (work / "file_link").symlink_to(target)
    (work / "dir_link").symlink_to(outside, target_is_directory=True)
    before = await take_snapshot(work)
    assert set(before.entries) == {"file_link", "dir_link"}  # the linked directory is not descended into

    target.write_text("version two")  # editing the target does not modify the link itself
    bump_mtime(target)
    after = await take_snapshot(work)
    assert no_changes(diff_snapshots(before, after))

    (work / "file_link").unlink()
    (work / "file_link").symlink_to(outside / "inner" / "x.txt")  # retargeting does
    assert diff_snapshots(before, await take_snapshot(work)).modified == ["file_link"]


async def test_broken_symlink_is_an_entry_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "does-not-exist")
    write(tmp_path / "real.txt")
    snap = await take_snapshot(tmp_path)
    assert set(snap.entries) == {"dangling", "real.txt"}


async def test_file_vanishing_during_walk_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doomed = write(tmp_path / "sub" / "doomed.txt")
    write(tmp_path / "sub" / "stays.txt")
    real_lstat = os.lstat

    def lstat_after_delete(path: str | os.PathLike[str]) -> os.stat_result:
        if os.fspath(path) == os.fspath(doomed):
            os.unlink(path)  # listed by scandir, gone by the time we stat it
        return real_lstat(path)

    monkeypatch.setattr(os, "lstat", lstat_after_delete)
    snap = await take_snapshot(tmp_path)
    assert set(snap.entries) == {"sub/stays.txt"}
    assert not doomed.exists()


async def test_unreadable_entries_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "locked" / "secret.txt")
    write(tmp_path / "denied.txt")
    write(tmp_path / "ok.txt")
    real_scandir, real_lstat = os.scandir, os.lstat

    def scandir(path: str) -> object:
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    def lstat(path: str | os.PathLike[str]) -> os.stat_result:
        if os.fspath(path).endswith("denied.txt"):
            raise PermissionError(13, "Permission denied", path)
        return real_lstat(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "lstat", lstat)
    snap = await take_snapshot(tmp_path)
    assert set(snap.entries) == {"ok.txt"}


async def test_truncation_at_max_files(tmp_path: Path) -> None:
    for i in range(10):
        write(tmp_path / f"f{i:02}.txt")
    snap = await take_snapshot(tmp_path, max_files=4)
    assert snap.truncated is True
    assert len(snap.entries) == 4

    exact = await take_snapshot(tmp_path, max_files=10)  # exactly full is not truncated
    assert exact.truncated is False
    assert len(exact.entries) == 10

    assert diff_snapshots(snap, exact).truncated is True
    assert diff_snapshots(exact, snap).truncated is True
    assert diff_snapshots(exact, exact).truncated is False


async def test_max_files_zero_and_negative(tmp_path: Path) -> None:
    empty = await take_snapshot(tmp_path, max_files=0)
    assert empty.entries == {}
    assert empty.truncated is False
    write(tmp_path / "a.txt")
    one = await take_snapshot(tmp_path, max_files=0)
    assert one.entries == {}
    assert one.truncated is True
    with pytest.raises(ValueError, match="max_files"):
        await take_snapshot(tmp_path, max_files=-1)


async def test_large_tree_truncates_exactly(tmp_path: Path) -> None:
    for d in range(40):
        sub = tmp_path / f"d{d:02}"
        sub.mkdir()
        for i in range(500):
            (sub / f"f{i:03}").write_bytes(b"")
    full = await take_snapshot(tmp_path)
    assert len(full.entries) == 20_000
    assert full.truncated is False

    capped = await take_snapshot(tmp_path, max_files=5000)
    assert capped.truncated is True
    assert len(capped.entries) == 5000
    assert capped.entries.keys() <= full.entries.keys()
    again = await take_snapshot(tmp_path, max_files=5000)
    assert again.entries.keys() == capped.entries.keys()  # the walk order is deterministic

    result = diff_snapshots(capped, again)
    assert no_changes(result)
    assert result.truncated is True


async def test_root_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await take_snapshot(tmp_path / "missing")
    with pytest.raises(NotADirectoryError):
        await take_snapshot(write(tmp_path / "file.txt"))


def test_diff_rejects_different_roots(tmp_path: Path) -> None:
    a = Snapshot(root=tmp_path / "a", entries={}, truncated=False)
    b = Snapshot(root=tmp_path / "b", entries={}, truncated=False)
    with pytest.raises(ValueError, match="different roots"):
        diff_snapshots(a, b)


def test_diff_is_pure_comparison(tmp_path: Path) -> None:
    before = Snapshot(root=tmp_path, entries={"a": (1, 1, 1, 1), "b": (2, 2, 2, 2), "c": (3, 3, 3, 3)}, truncated=False)
    after = Snapshot(root=tmp_path, entries={"b": (2, 2, 2, 2), "c": (3, 4, 4, 3), "d": (0, 0, 0, 9)}, truncated=True)
    assert diff_snapshots(before, after) == FileChanges(created=["d"], modified=["c"], deleted=["a"], truncated=True)


# --- git work trees ----------------------------------------------------------------------------------------------


@needs_git
async def test_git_repo_respects_gitignore(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    write(repo / ".gitignore", "build/\n*.log\n")
    write(repo / "tracked.py", "print(1)\n")
    write(repo / "doomed.py", "x = 1\n")
    write(repo / "pkg" / "mod.py", "y = 2\n")
    commit_all(repo)
    write(repo / "build" / "out.bin", "old")
    write(repo / "debug.log", "old")
    write(repo / "untracked_before.txt")

    before = await take_snapshot(repo)
    assert set(before.entries) == {".gitignore", "tracked.py", "doomed.py", "pkg/mod.py", "untracked_before.txt"}

    write(repo / "build" / "out.bin", "new and longer")  # ignored: not reported
    write(repo / "build" / "more.bin")
    write(repo / "debug.log", "new and longer")
    write(repo / "tracked.py", "print('modified')\n")  # tracked and modified
    (repo / "doomed.py").unlink()  # tracked and deleted (still in the index)
    write(repo / "pkg" / "fresh.py")  # untracked, not ignored
    after = await take_snapshot(repo)

    assert diff_snapshots(before, after) == FileChanges(
        created=["pkg/fresh.py"], modified=["tracked.py"], deleted=["doomed.py"], truncated=False
    )


@needs_git
async def test_git_untracked_heavy_dirs_skipped_even_when_not_gitignored(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    write(repo / "main.py")
    commit_all(repo)
    write(repo / "node_modules" / "pkg" / "index.js")  # no .gitignore entry for it
    write(repo / "app.js")
    snap = await take_snapshot(repo)
    assert set(snap.entries) == {"main.py", "app.js"}


@needs_git
async def test_git_subdirectory_root_paths_relative_to_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    write(repo / "outside.txt")
    write(repo / "sub" / "inside.txt")
    commit_all(repo)
    before = await take_snapshot(repo / "sub")
    assert set(before.entries) == {"inside.txt"}
    write(repo / "sub" / "deeper" / "new.txt")
    write(repo / "outside.txt", "changed outside the root")
    after = await take_snapshot(repo / "sub")
    assert diff_snapshots(before, after).created == ["deeper/new.txt"]
    assert diff_snapshots(before, after).modified == []


@needs_git
async def test_git_root_inside_ignored_dir_falls_back_to_walk(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    write(repo / ".gitignore", "scratch/\n")
    commit_all(repo)
    work = repo / "scratch" / "job"
    write(work / "a.txt")
    before = await take_snapshot(work)
    assert set(before.entries) == {"a.txt"}  # git would list nothing here
    write(work / "b.txt")
    assert diff_snapshots(before, await take_snapshot(work)).created == ["b.txt"]


@needs_git
async def test_git_nested_repo_is_walked(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    write(repo / "main.py")
    commit_all(repo)
    before = await take_snapshot(repo)
    nested = repo / "vendor" / "lib"
    init_repo(nested)  # git lists an untracked nested repository as one directory entry
    write(nested / "lib.py")
    write(nested / "src" / "core.py")
    after = await take_snapshot(repo)
    assert diff_snapshots(before, after).created == ["vendor/lib/lib.py", "vendor/lib/src/core.py"]


@needs_git
async def test_git_truncation(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    for i in range(300):
        write(repo / "tracked" / f"t{i:03}.txt")
    commit_all(repo)
    for i in range(300):
        write(repo / "untracked" / f"u{i:03}.txt")
    full = await take_snapshot(repo)
    assert len(full.entries) == 600
    assert full.truncated is False
    capped = await take_snapshot(repo, max_files=250)
    assert capped.truncated is True
    assert len(capped.entries) == 250
    assert capped.entries.keys() <= full.entries.keys()
    exact = await take_snapshot(repo, max_files=600)
    assert exact.truncated is False
    assert len(exact.entries) == 600


@needs_git
async def test_git_missing_falls_back_to_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    write(repo / ".gitignore", "ignored.txt\n")
    write(repo / "ignored.txt")
    commit_all(repo)
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    snap = await take_snapshot(repo)
    assert set(snap.entries) == {".gitignore", "ignored.txt"}  # plain walk: .gitignore not applied, .git skipped


@needs_git
async def test_git_env_redirect_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    write(repo / ".gitignore", "ignored.txt\n")
    write(repo / "ignored.txt")
    write(repo / "kept.txt")
    other = tmp_path / "other"
    init_repo(other)
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))  # as inside a git hook: must not redirect our queries
    snap = await take_snapshot(repo)
    assert set(snap.entries) == {".gitignore", "kept.txt"}


@pytest.mark.parametrize("in_git", [False, True])
async def test_excluded_paths_are_never_entries(tmp_path: Path, in_git: bool) -> None:
    if in_git:
        if shutil.which("git") is None:
            pytest.skip("git not installed")
        init_repo(tmp_path)
    write(tmp_path / "state" / "runs.db")
    write(tmp_path / "state" / "transcripts" / "a.jsonl")
    write(tmp_path / "src" / "app.py")
    own = [tmp_path / "state" / "runs.db", tmp_path / "state" / "transcripts", tmp_path.parent / "elsewhere"]
    snapshot = await take_snapshot(tmp_path, exclude=own)
    assert sorted(p for p in snapshot.entries if not p.startswith(".git")) == ["src/app.py"]


async def test_a_run_below_the_state_dir_does_not_report_cc_executors_own_files(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: with the cwd above the state dir, runs.db-wal and the run's transcript showed up in files_created."""
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(workdir / "cc-state"))
    async with open_store():
        pass  # the state dir exists before the run, as it would for any user with history
    fake_api.scenario = scenarios.write_file("hello.py", "print('hi')\n")
    result = await cc_execute("write it", cwd=workdir, config=config)
    assert result.files_created == ["hello.py"] and result.files_modified == [] and result.files_deleted == []
