"""Which files an agent run created, modified and deleted, measured by diffing the directory before and after.

The model's account of what it touched is a claim, not a fact: it forgets files, names ones it only read, and
misses side effects of the commands it ran. So we compare two lstat snapshots (no file contents) instead.

Inside a git work tree the listing comes from ``git ls-files``, so whatever the repository ignores (dependency
trees, virtualenvs, build output) costs nothing; elsewhere a walk skips :data:`IGNORED_DIRS`. Both stop at
``max_files`` and say ``truncated`` rather than stall on a huge tree.

Inherent limits: a rewrite that keeps size and timestamps within one filesystem tick goes unseen; a path that
stops being listed without being removed (newly gitignored, or past ``max_files``) reads as deleted.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio
import anyio.to_thread

__all__ = ["IGNORED_DIRS", "FileChanges", "FileStamp", "Snapshot", "diff_snapshots", "take_snapshot"]

IGNORED_DIRS: Final[frozenset[str]] = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".cache",
        ".claude",
    }
)
"""Directory names never descended into by the plain walk; also excluded from git's untracked-file listing."""

FileStamp = tuple[int, int, int, int]
"""``(size, mtime_ns, ctime_ns, inode)`` from ``lstat``; any difference counts as a modification.

ctime catches mode changes and inode catches replace-by-rename, neither of which always moves mtime or size.
"""

# Variables that would point git at some other repository than the one containing `root`.
_GIT_REDIRECT_VARS: Final = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE"}
)
_READ_CHUNK: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class FileChanges:
    """The difference between two snapshots of one directory."""

    created: list[str]
    """Paths relative to the root, POSIX separators, sorted."""
    modified: list[str]
    deleted: list[str]
    truncated: bool
    """True when either snapshot hit ``max_files``: the lists then cover only what was seen."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Metadata of every file under ``root`` at one moment (directories themselves are not entries)."""

    root: Path
    entries: dict[str, FileStamp]
    """Relative POSIX path -> :data:`FileStamp`. Symlinks are recorded as links, never followed."""
    truncated: bool
    """True when the listing was cut at ``max_files``."""


async def take_snapshot(root: Path, *, max_files: int = 100_000, exclude: Iterable[Path] = ()) -> Snapshot:
    """List the files under ``root`` with their lstat metadata.

    Uses git's view of the tree when ``root`` is inside a work tree (tracked plus untracked-but-not-ignored files),
    otherwise walks the directory skipping :data:`IGNORED_DIRS`. ``exclude`` names files and directories that are
    never entries (cc-executor's own state: the database and the transcripts, when they lie under ``root``). Files
    that vanish or cannot be read between listing and stat are skipped silently. Raises
    ``FileNotFoundError``/``NotADirectoryError`` only for ``root`` itself, and ``ValueError`` for a negative
    ``max_files``.
    """
    if max_files < 0:
        raise ValueError(f"max_files must be >= 0, got {max_files}")
    root = Path(root)
    skipped = _inside(root, exclude)
    if not await anyio.Path(root).is_dir():
        if await anyio.Path(root).exists():
            raise NotADirectoryError(f"not a directory: {root}")
        raise FileNotFoundError(f"no such directory: {root}")

    listing = await _git_listing(root, max_files)
    collector = _Collector(root, max_files, skipped)
    if listing is None:
        await anyio.to_thread.run_sync(_walk, collector, os.fspath(root), "")
    else:
        paths, cut = listing
        await anyio.to_thread.run_sync(_stat_listed, collector, paths)
        collector.truncated = collector.truncated or cut
    return Snapshot(root=root, entries=collector.entries, truncated=collector.truncated)


def _inside(root: Path, paths: Iterable[Path]) -> frozenset[str]:
    """The ``paths`` that lie under ``root``, relative to it (POSIX); symlinks resolved on both sides."""
    real_root = Path(os.path.realpath(root))
    found = set()
    for path in paths:
        real = Path(os.path.realpath(path))
        if real != real_root and real.is_relative_to(real_root):
            found.add(real.relative_to(real_root).as_posix())
    return frozenset(found)


def diff_snapshots(before: Snapshot, after: Snapshot) -> FileChanges:
    """Compare two snapshots of the same root. Pure: touches neither the disk nor the snapshots."""
    if before.root != after.root:
        raise ValueError(f"snapshots of different roots: {before.root} vs {after.root}")
    old, new = before.entries, after.entries
    return FileChanges(
        created=sorted(new.keys() - old.keys()),
        modified=sorted(path for path, stamp in new.items() if path in old and old[path] != stamp),
        deleted=sorted(old.keys() - new.keys()),
        truncated=before.truncated or after.truncated,
    )


# --- listing ---------------------------------------------------------------------------------------------------


def _has_git_marker(root: Path) -> bool:
    """A `.git` entry (dir, or file for worktrees/submodules) in ``root`` or a parent: cheap pre-check."""
    return any((directory / ".git").exists() for directory in (root, *root.parents))


def _git_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECT_VARS}


async def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    """Run a short git query in ``root``; None when git is missing or cannot start."""
    try:
        return await anyio.run_process(
            ["git", "-C", os.fspath(root), *args],
            check=False,
            stdin=subprocess.DEVNULL,
            env=_git_env(),
        )
    except OSError:
        return None


async def _git_listing(root: Path, max_files: int) -> tuple[list[str], bool] | None:
    """Paths git considers part of the tree under ``root`` (at most ``max_files``) and whether more were cut.

    None means "not usable as a git tree": git absent, not inside a work tree, ``root`` inside a directory the
    repository ignores (git would list nothing there), or the listing failed. The caller then walks instead.
    """
    if not _has_git_marker(root):
        return None  # no .git here or above: skip spawning git at all
    probe = await _git(root, "rev-parse", "--show-toplevel", "--show-prefix")
    if probe is None or probe.returncode != 0:
        return None
    lines = probe.stdout.decode(errors="replace").splitlines()
    prefix = lines[1] if len(lines) > 1 else ""
    if prefix:
        ignored = await _git(root, "check-ignore", "-q", ".")
        if ignored is None or ignored.returncode != 1:  # 0: ignored, 128: error
            return None

    excludes = [f"--exclude={name}/" for name in sorted(IGNORED_DIRS)]  # untracked files only, by git's rules
    cmd = ["git", "-C", os.fspath(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard", *excludes]
    paths: list[str] = []
    cut = False
    killed = False
    try:
        async with await anyio.open_process(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_git_env()
        ) as proc:
            assert proc.stdout is not None
            pending = b""
            async for chunk in proc.stdout:
                *done, pending = (pending + chunk).split(b"\0")
                paths.extend(os.fsdecode(raw) for raw in done)
                if len(paths) > max_files:
                    del paths[max_files:]
                    cut = killed = True
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    break
            # pending is empty after a clean -z listing; a fragment only remains when we cut it off.
    except OSError:
        return None
    if not killed and proc.returncode != 0:
        return None
    return paths, cut


# --- stat (runs in a worker thread) ------------------------------------------------------------------------------


class _Collector:
    """Accumulates entries up to ``max_files``; flags ``truncated`` when one more would not fit."""

    __slots__ = ("entries", "max_files", "root", "skipped", "truncated")

    def __init__(self, root: Path, max_files: int, skipped: frozenset[str] = frozenset()) -> None:
        self.root = os.fspath(root)
        self.max_files = max_files
        self.skipped = skipped
        self.entries: dict[str, FileStamp] = {}
        self.truncated = False

    def excluded(self, rel: str) -> bool:
        """``rel`` is, or lies inside, one of the excluded paths."""
        return any(rel == skip or rel.startswith(skip + "/") for skip in self.skipped)

    def add(self, rel: str, st: os.stat_result) -> bool:
        """Record ``rel``; False (and truncated) when full. Excluded paths are never recorded."""
        if self.excluded(rel):
            return True
        if rel not in self.entries and len(self.entries) >= self.max_files:
            self.truncated = True
            return False
        self.entries[rel] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        return True


def _walk(collector: _Collector, top: str, top_rel: str) -> bool:
    """Depth-first walk of ``top`` (files before subdirectories, names sorted); False once the collector is full."""
    pending = [(top, top_rel)]
    while pending:
        directory, rel_dir = pending.pop()
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError:  # vanished, unreadable, replaced by a file
            continue
        subdirs: list[tuple[str, str]] = []
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            try:
                if child.is_dir(follow_symlinks=False):
                    if child.name not in IGNORED_DIRS and not collector.excluded(rel):
                        subdirs.append((child.path, rel))
                    continue
                st = os.lstat(child.path)
            except OSError:
                continue
            if not collector.add(rel, st):
                return False
        pending.extend(reversed(subdirs))
    return True


def _stat_listed(collector: _Collector, paths: list[str]) -> None:
    """lstat each path git listed. Deleted tracked files (still in the index) fail lstat and are skipped.

    A listed directory is a nested repository or submodule that git reports as one entry; it is walked so files
    an agent cloned or edited there are still seen.
    """
    for listed in paths:
        rel = listed.rstrip("/")
        full = os.path.join(collector.root, rel)
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if not _walk(collector, full, rel):
                return
        elif not collector.add(rel, st):
            return
