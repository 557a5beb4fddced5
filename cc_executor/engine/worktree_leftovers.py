"""Worktrees a crashed run left behind: found (by ``doctor`` and by a run that wants the same branch), described
with what they hold and how to recover or discard them. Never reused and never deleted here.

A run removes its worktree when it ends, so a directory under the worktree root whose run is not running is a
leftover: its owner was killed (SIGKILL, power loss) between creating it and committing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cc_executor.engine.git import git
from cc_executor.ids import RUN_ID_PATTERN

__all__ = ["Leftover", "find_leftovers", "inspect_worktree"]

_SHOWN_FILES = 10


@dataclass(slots=True)
class Leftover:
    path: Path
    run_id: str | None
    branch: str | None = None
    head_sha: str | None = None
    repo: Path | None = None  # the main checkout it belongs to
    changes: list[str] = field(default_factory=list)  # `git status --porcelain` lines: uncommitted work
    problem: str | None = None  # not a git worktree any more, ...

    def describe(self) -> str:
        if self.problem:
            return f"{self.path}: {self.problem}"
        where = f"branch {self.branch or '(detached)'} at {(self.head_sha or '?')[:12]}"
        if not self.changes:
            return f"{where}, no uncommitted changes"
        shown = ", ".join(line[3:] for line in self.changes[:_SHOWN_FILES])
        more = f" and {len(self.changes) - _SHOWN_FILES} more" if len(self.changes) > _SHOWN_FILES else ""
        return f"{where}, {len(self.changes)} uncommitted change(s): {shown}{more}"

    def recovery(self) -> str:
        keep = (
            f"to keep the work: git -C {self.path} add -A && git -C {self.path} commit -m 'recovered' "
            f"&& git -C {self.repo or self.path} worktree remove {self.path}"
        )
        drop = (
            f"to discard it: cc-executor discard {self.run_id}"
            if self.run_id
            else f"to discard it: git worktree remove --force {self.path}"
        )
        return f"{keep}; {drop}"

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "run_id": self.run_id,
            "branch": self.branch,
            "head_sha": self.head_sha,
            "repo": str(self.repo) if self.repo else None,
            "uncommitted_changes": len(self.changes),
            "description": self.describe(),
            "recovery": self.recovery(),
        }


async def inspect_worktree(path: Path) -> Leftover:
    run_id = path.name if RUN_ID_PATTERN.fullmatch(path.name) else None
    leftover = Leftover(path=path, run_id=run_id)
    if not (path / ".git").exists():
        leftover.problem = "not a git worktree (no .git); nothing of git's is in it, remove it by hand when checked"
        return leftover
    head = await git(["rev-parse", "HEAD"], cwd=path, check=False)
    if head.returncode != 0:
        leftover.problem = f"git cannot read it: {head.stderr.strip()}"
        return leftover
    leftover.head_sha = head.stdout.strip()
    branch = await git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=path, check=False)
    leftover.branch = branch.stdout.strip() or None
    common = await git(["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=path, check=False)
    if common.returncode == 0:
        leftover.repo = Path(common.stdout.strip()).parent
    status = await git(["status", "--porcelain", "--untracked-files=all"], cwd=path, check=False)
    leftover.changes = status.lines
    return leftover


async def find_leftovers(root: Path, *, running: set[str] | frozenset[str] = frozenset()) -> list[Leftover]:
    """Every directory under ``root`` except those of runs in ``running`` (their worktrees are in use)."""
    return [await inspect_worktree(entry) for entry in _subdirs(root) if entry.name not in running]


def _subdirs(root: Path) -> list[Path]:
    return sorted(entry for entry in root.iterdir() if entry.is_dir()) if root.is_dir() else []
