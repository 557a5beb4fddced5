"""``.worktreeinclude``: files git ignores but a run needs (``.env``, ``node_modules``, build caches), copied from
the caller's checkout into a new worktree.

The file sits at the repository root and uses gitignore syntax. A path is copied when it matches one of its
patterns AND git ignores it: tracked and plain untracked files are never copied (tracked ones come from the base
commit; untracked ones are the caller's uncommitted work, which is not carried over). ``git ls-files --others
--ignored --directory --exclude-from=.worktreeinclude`` lists the matches, collapsing a wholly matching directory
into one entry, and ``git check-ignore --stdin`` keeps the ignored ones. Symlinks are copied as links.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import anyio
import anyio.to_thread

from cc_executor.engine.git import git_env

__all__ = ["INCLUDE_FILE", "copy_included", "included_paths"]

INCLUDE_FILE = ".worktreeinclude"


async def included_paths(repo_root: Path) -> list[str]:
    """Repository-relative paths (directories end with ``/``) that ``.worktreeinclude`` brings along."""
    include = repo_root / INCLUDE_FILE
    if not include.is_file():
        return []
    listed = await _run(
        ["ls-files", "-z", "--others", "--ignored", "--directory", f"--exclude-from={include}"], repo_root
    )
    if not listed:
        return []
    ignored = await _run(["check-ignore", "-z", "--stdin"], repo_root, stdin=listed)
    paths = sorted(p for p in ignored.decode("utf-8", "surrogateescape").split("\0") if p)
    kept: list[str] = []
    for path in paths:  # sorted, so a directory comes before what is inside it
        if not any(path.startswith(parent) for parent in kept if parent.endswith("/")):
            kept.append(path)
    return kept


async def copy_included(repo_root: Path, worktree: Path) -> list[str]:
    paths = await included_paths(repo_root)
    if paths:
        await anyio.to_thread.run_sync(_copy, repo_root, worktree, paths)
    return paths


def _copy(source_root: Path, target_root: Path, paths: list[str]) -> None:
    for relative in paths:
        source, target = source_root / relative, target_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)


async def _run(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    # check-ignore exits 1 when nothing is ignored: an empty answer, not an error.
    done = await anyio.run_process(
        ["git", *args], cwd=cwd, env=git_env(), input=stdin, check=False, stdin=None if stdin else subprocess.DEVNULL
    )
    return done.stdout if done.returncode in (0, 1) else b""
