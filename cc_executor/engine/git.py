"""Running git for worktree isolation: argv lists through ``anyio.run_process``, never a shell.

The environment is the caller's minus every ``GIT_*`` variable (a ``GIT_DIR`` or ``GIT_INDEX_FILE`` inherited from
a hook would point git at some other repository), with prompts and pagers off and messages in English (we show
them, never parse them). Commits we make carry their own identity through ``-c`` on that one command, so the
user's configuration is never read for it nor written.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from cc_executor.errors import WorktreeError

__all__ = ["IDENTITY", "GitOutput", "git", "git_env"]

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
