"""merge_run and discard_run: the explicit steps after a run with isolation 'worktree' (cc_executor.worktrees)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from .state import AppState

Strategy = Literal["merge", "squash", "ff-only"]


class MergeOutput(BaseModel):
    run_id: str
    merged: bool
    message: str
    branch: str | None = None
    into: str | None = None
    strategy: str | None = None
    head_sha: str | None = Field(default=None, description="The checkout's commit after the merge.")
    files: list[str] = Field(default_factory=list, description="Files the merge changed.")
    conflicts: list[str] = Field(default_factory=list, description="Files that would conflict (nothing was changed).")


class DiscardOutput(BaseModel):
    run_id: str
    branch: str
    message: str
    branch_deleted: bool
    head_sha: str | None = None
    worktree_removed: str | None = None


async def merge(state: AppState, run_id: str, strategy: Strategy, into: str | None) -> MergeOutput:
    from cc_executor.api import open_store
    from cc_executor.errors import MergeConflictError
    from cc_executor.worktrees import merge_run

    async with open_store(_db(state)) as store:
        try:
            done = await merge_run(run_id, strategy, into=into, store=store)
        except MergeConflictError as exc:
            return MergeOutput(run_id=run_id, merged=False, message=str(exc), conflicts=exc.files)
    if done.already_merged:
        message = f"{done.branch} is already merged into {done.into}; nothing changed."
    else:
        message = (
            f"Merged {done.branch} into {done.into} ({done.strategy}): {len(done.files)} file(s) changed, "
            f"{done.previous_head[:12]} -> {done.head_sha[:12]}."
        )
    return MergeOutput(
        run_id=run_id,
        merged=True,
        message=message,
        branch=done.branch,
        into=done.into,
        strategy=done.strategy,
        head_sha=done.head_sha,
        files=done.files,
    )


async def discard(state: AppState, run_id: str) -> DiscardOutput:
    from cc_executor.api import open_store
    from cc_executor.worktrees import discard_run

    async with open_store(_db(state)) as store:
        done = await discard_run(run_id, store=store)
    message = f"Deleted branch {done.branch}." if done.branch_deleted else f"Branch {done.branch} was already gone."
    if done.worktree_removed:
        message += f" Removed the leftover worktree {done.worktree_removed}."
    if done.recover:
        message += f" To restore it while git keeps the commit: {done.recover}"
    return DiscardOutput(
        run_id=run_id,
        branch=done.branch,
        message=message,
        branch_deleted=done.branch_deleted,
        head_sha=done.head_sha,
        worktree_removed=done.worktree_removed,
    )


def _db(state: AppState) -> Path | None:
    """The registry the server's backend uses (CC_EXECUTOR_HOME), else the core's default."""
    home = state.settings.home
    return home / "runs.db" if home else None
