"""Running git for worktree isolation: argv lists through ``anyio.run_process``, never a shell.

The environment is the caller's minus every ``GIT_*`` variable (a ``GIT_DIR`` or ``GIT_INDEX_FILE`` inherited from
a hook would point git at some other repository), with prompts and pagers off and messages in English (we show
them, never parse them). Commits we make carry their own identity through ``-c`` on that one command, so the
user's configuration is never read for it nor written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from cc_executor.errors import WorktreeError

__all__ = [
    "IDENTITY",
    "MIN_GIT_ISOLATION",
    "MIN_GIT_MERGE",
    "NO_HOOKS",
    "GitOutput",
    "check_git_version",
    "git",
    "git_env",
    "git_version",
    "parse_git_version",
    "version_text",
]

NO_HOOKS: tuple[str, ...] = ("-c", "core.hooksPath=/dev/null")
"""For the commit that saves a run's work: no hook runs (``--no-verify`` skips only pre-commit and commit-msg; a
failing prepare-commit-msg would leave the work uncommitted, a post-commit could push it or write files)."""

MIN_GIT_ISOLATION: tuple[int, int] = (2, 31)
"""Oldest git for ``isolation="worktree"``: ``git rev-parse --path-format=absolute`` (2.31) is the newest thing a
run, ``discard`` and the leftover search use (``worktree remove`` is 2.17)."""
MIN_GIT_MERGE: tuple[int, int] = (2, 38)
"""Oldest git for ``merge_run``: its conflict check is ``git merge-tree --write-tree`` (2.38)."""

_VERSION = re.compile(r"git version (\d+)\.(\d+)(?:\.(\d+))?")
_known: dict[str, tuple[int, ...]] = {}  # `git --version` once per process (a git start costs milliseconds)

IDENTITY: tuple[str, ...] = (
    "-c",
    "user.name=cc-executor",
    "-c",
    "user.email=cc-executor@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "maintenance.auto=false",
)
"""Prepended to the commands that create commits for a run (not to merges the user asks for): our identity, no
signing prompt, and no `git maintenance run --auto` child after each commit (the user's own commands still
trigger it)."""


@dataclass(frozen=True, slots=True)
class GitOutput:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line]


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("GIT_")}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"})
    return env


async def git(
    args: Sequence[str],
    *,
    cwd: Path,
    check: bool = True,
    prefix: Sequence[str] = (),
) -> GitOutput:
    """``git <prefix> <args>`` in ``cwd``. With ``check``, a non-zero exit raises WorktreeError quoting git."""
    argv = ["git", *prefix, *args]
    try:
        done = await anyio.run_process(argv, cwd=cwd, env=git_env(), check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise WorktreeError(f"git is not installed or not on PATH ({exc})") from None
    except NotADirectoryError as exc:
        raise WorktreeError(f"{cwd} is not a directory ({exc})") from None
    output = GitOutput(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))
    if check and output.returncode != 0:
        message = (output.stderr or output.stdout).strip() or f"exit status {output.returncode}"
        raise WorktreeError(f"`git {' '.join(args[:3])}` failed in {cwd}: {message}")
    return output


def parse_git_version(output: str) -> tuple[int, ...] | None:
    """``(2, 39, 5)`` from ``git version 2.39.5`` (also ``2.39.3 (Apple Git-146)``, ``2.45.1.windows.1``)."""
    found = _VERSION.search(output)
    return tuple(int(x) for x in found.groups() if x is not None) if found else None


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in version)


async def git_version() -> tuple[int, ...]:
    """The installed git's version (asked once per process). Raises WorktreeError when git is missing or its
    answer cannot be read."""
    which = shutil.which("git") or "git"  # keyed by the binary: a changed PATH is asked again
    if which not in _known:
        done = await git(["--version"], cwd=Path("/"))
        version = parse_git_version(done.stdout)
        if version is None:
            raise WorktreeError(f"cannot read git's version from {done.stdout.strip()!r}")
        _known[which] = version
    return _known[which]


async def check_git_version(minimum: tuple[int, int], needed_for: str) -> None:
    """Raise WorktreeError naming the minimum when the installed git is older than ``minimum``."""
    version = await git_version()
    if version[:2] < minimum:
        raise WorktreeError(
            f"{needed_for} needs git {version_text(minimum)} or newer; this git is {version_text(version)} "
            "(`git --version`). Install a newer git (or put one first on PATH)."
        )
