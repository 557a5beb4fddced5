"""The explicit steps after an isolated run (``isolation="worktree"``): merge it back, discard it, look at it, and
find worktrees a crash left behind. The same steps are `cc-executor merge/discard/diff` and the MCP tools
``merge_run`` / ``discard_run``.

Everything here is plain git on the run's branch, in the checkout the run was started from (the run's ``cwd``):

* ``merge_run`` first checks, without touching anything: the run has ended, its branch exists, the checkout is on
  the branch the run started from (or ``into``), it has no uncommitted changes, and ``git merge-tree --write-tree``
  finds no conflict. Any refusal says what to do; a conflict lists the files (``MergeConflictError.files``). Then
  ``git merge --no-ff`` (default), ``--squash`` + one commit, or ``--ff-only``.
* ``discard_run`` deletes the run's branch (and a leftover worktree of it). Only ever on request; the result names
  the last commit so ``git branch <name> <sha>`` brings it back while git keeps the object.
* ``run_diff`` is the patch base..head.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from cc_executor.engine.git import IDENTITY, MIN_GIT_MERGE, check_git_version, git
from cc_executor.engine.worktree import plan_worktree, worktree_holding, worktree_root
from cc_executor.engine.worktree_leftovers import Leftover, find_leftovers
from cc_executor.errors import InvalidRequestError, MergeConflictError, WorktreeError
from cc_executor.models import RunRecord, RunRequest, RunStatus
from cc_executor.registry.store import RunStore
from cc_executor.text import one_line

__all__ = [
    "MERGE_STRATEGIES",
    "DiscardResult",
    "Leftover",
    "MergeResult",
    "MergeStrategy",
    "check_requests",
    "discard_run",
    "leftover_worktrees",
    "merge_run",
    "resume_isolation",
    "run_diff",
]

MergeStrategy = Literal["merge", "squash", "ff-only"]
MERGE_STRATEGIES: tuple[str, ...] = ("merge", "squash", "ff-only")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MergeResult:
    run_id: str
    branch: str
    into: str
    strategy: str
    previous_head: str
    head_sha: str
    already_merged: bool = False
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DiscardResult:
    run_id: str
    branch: str
    head_sha: str | None
    branch_deleted: bool
    worktree_removed: str | None
    recover: str | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


async def merge_run(
    run_id: str, strategy: MergeStrategy = "merge", *, into: str | None = None, store: RunStore | None = None
) -> MergeResult:
    """Merge an isolated run's branch into the checkout it started from; see the module doc for the checks."""
    if strategy not in MERGE_STRATEGIES:
        raise InvalidRequestError(f"strategy {strategy!r} is not one of {', '.join(MERGE_STRATEGIES)}")
    record = await _with_store(store, lambda s: s.get(run_id))
    repo, branch = await _repo_and_branch(record)
    try:
        await check_git_version(MIN_GIT_MERGE, "merge_run (its conflict check is `git merge-tree --write-tree`)")
    except WorktreeError as exc:
        raise WorktreeError(f"{exc} Or merge by hand in {repo}: git merge {branch}") from None
    target = await _check_checkout(record, repo, into)
    head = (await git(["rev-parse", "HEAD"], cwd=repo)).stdout.strip()
    tip = (await git(["rev-parse", f"refs/heads/{branch}"], cwd=repo)).stdout.strip()
    if (await git(["merge-base", "--is-ancestor", tip, head], cwd=repo, check=False)).returncode == 0:
        return MergeResult(record.run_id, branch, target, strategy, head, head, already_merged=True)
    await _check_conflicts(repo, branch, target)
    message = f"Merge cc-executor run {record.run_id[:8]} ({branch}): {one_line(record.task, 60)}"
    identity = await _identity(repo)
    if strategy == "ff-only":
        if (await git(["merge-base", "--is-ancestor", head, tip], cwd=repo, check=False)).returncode != 0:
            raise WorktreeError(
                f"cannot fast-forward {target} to {branch}: {target} has moved since the run's base. "
                "Use strategy 'merge' or 'squash'."
            )
        await git(["merge", "--ff-only", "--quiet", tip], cwd=repo)
    elif strategy == "squash":
        await git(["merge", "--squash", "--quiet", tip], cwd=repo)
        await git(["commit", "--quiet", "--no-verify", "-m", message], cwd=repo, prefix=identity)
    else:
        await git(["merge", "--no-ff", "--no-edit", "--quiet", "-m", message, tip], cwd=repo, prefix=identity)
    new_head = (await git(["rev-parse", "HEAD"], cwd=repo)).stdout.strip()
    files = (await git(["diff", "--name-only", head, new_head], cwd=repo)).lines  # what the merge changed
    return MergeResult(record.run_id, branch, target, strategy, head, new_head, files=files)


async def discard_run(run_id: str, *, store: RunStore | None = None) -> DiscardResult:
    """Delete an isolated run's branch, and its worktree if one was left behind. Explicit only."""
    record = await _with_store(store, lambda s: s.get(run_id))
    _check_isolated(record)
    if not record.status.finished:
        raise WorktreeError(f"run {record.run_id} is still {record.status.value}; cancel it or wait before discarding")
    repo = await _repo(record)
    branch = record.branch or ""
    removed = None
    holder = await worktree_holding(repo, branch)  # a crash's leftover still has the branch checked out
    if holder is None and record.worktree_path and _exists(record.worktree_path):
        holder = Path(record.worktree_path)
    if holder is not None:
        await git(["worktree", "remove", "--force", str(holder)], cwd=repo)
        removed = str(holder)
    await git(["worktree", "prune"], cwd=repo)
    tip = await git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=repo, check=False)
    head = tip.stdout.strip() or record.head_sha
    deleted = False
    if tip.returncode == 0:
        await git(["branch", "--delete", "--force", branch], cwd=repo)
        deleted = True
    recover = f"git -C {repo} branch {branch} {head}" if head else None
    return DiscardResult(record.run_id, branch, head, deleted, removed, recover)


async def run_diff(run_id: str, *, store: RunStore | None = None, stat: bool = False) -> str:
    """The run's patch against its base (``stat``: the diffstat instead)."""
    record = await _with_store(store, lambda s: s.get(run_id))
    _check_isolated(record)
    repo = await _repo(record)
    found = await git(["rev-parse", "--verify", "--quiet", f"refs/heads/{record.branch}"], cwd=repo, check=False)
    tip = found.stdout.strip() or record.head_sha
    if not tip:
        raise WorktreeError(f"run {record.run_id}: branch {record.branch} no longer exists and no head was recorded")
    args = ["diff", "--no-color", *(["--stat"] if stat else []), record.base_sha or "", tip]
    return (await git(args, cwd=repo)).stdout


async def check_requests(requests: Sequence[RunRequest]) -> None:
    """Validate the worktree side of requests before any of them starts (a task list's): each as a run would
    (repository, base, branch), plus no branch named twice. Raises InvalidRequestError; creates nothing."""
    seen: dict[str, int] = {}
    for index, request in enumerate(requests, start=1):
        if request.isolation != "worktree":
            continue
        plan = await plan_worktree(request, worktree_root(request.config.worktree_dir))
        if plan.branch in seen:
            raise InvalidRequestError(
                f"tasks[{index}]: branch {plan.branch!r} is also the branch of task {seen[plan.branch]}"
            )
        seen[plan.branch] = index


def resume_isolation(parent: RunRecord, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Request fields for resuming ``parent``: an isolated run continues isolated, in a new worktree that starts
    from where the parent's branch ended (so the session sees its own work), never in the caller's checkout.
    Fields the caller set win."""
    given = dict(fields or {})
    if parent.isolation != "worktree" or given.get("isolation", "none") != "none" or not parent.head_sha:
        return given
    return {**given, "isolation": "worktree", "base_ref": parent.head_sha}


async def leftover_worktrees(*, worktree_dir: Path | None = None, store: RunStore | None = None) -> list[Leftover]:
    """Worktrees under the worktree root whose run is not queued or running: a crash left them."""

    async def busy(s: RunStore) -> set[str]:
        rows = await s.list_runs(status=RunStatus.RUNNING, limit=1000)
        rows += await s.list_runs(status=RunStatus.QUEUED, limit=1000)
        return {r.run_id for r in rows}

    return await find_leftovers(worktree_root(worktree_dir), running=await _with_store(store, busy))


# --- checks ------------------------------------------------------------------------------------------------------


def _check_isolated(record: RunRecord) -> None:
    if record.isolation != "worktree" or not record.branch:
        raise WorktreeError(f"run {record.run_id} did not run in a worktree (isolation '{record.isolation}')")


async def _repo(record: RunRecord) -> Path:
    cwd = Path(record.cwd)
    if not _exists(record.cwd):
        raise WorktreeError(f"run {record.run_id}: its checkout {cwd} no longer exists")
    top = await git(["rev-parse", "--show-toplevel"], cwd=cwd, check=False)
    if top.returncode != 0:
        raise WorktreeError(f"run {record.run_id}: {cwd} is no longer inside a git repository")
    return Path(top.stdout.strip())


async def _repo_and_branch(record: RunRecord) -> tuple[Path, str]:
    _check_isolated(record)
    if not record.status.finished:
        raise WorktreeError(f"run {record.run_id} is still {record.status.value}; wait for it before merging")
    repo = await _repo(record)
    branch = record.branch or ""
    exists = await git(["show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=repo, check=False)
    if exists.returncode != 0:
        raise WorktreeError(f"run {record.run_id}: branch {branch!r} no longer exists in {repo} (discarded?)")
    return repo, branch


async def _check_checkout(record: RunRecord, repo: Path, into: str | None) -> str:
    """The branch to merge into: checked out, the expected one, and clean."""
    current = await git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=repo, check=False)
    on = current.stdout.strip()
    if current.returncode != 0:
        raise WorktreeError(
            f"the checkout {repo} has a detached HEAD; `git switch <branch>` to the branch to merge into"
        )
    expected = into or record.base_branch or on
    if on != expected:
        hint = f"`git switch {expected}` first" + ("" if into else f", or pass into={on!r} to merge into {on}")
        raise WorktreeError(
            f"the checkout {repo} is on branch {on!r}, but run {record.run_id[:8]} "
            f"{'should merge into' if into else 'started from'} {expected!r}: {hint}"
        )
    dirty = await git(["status", "--porcelain", "--untracked-files=no"], cwd=repo)
    if dirty.lines:
        files = ", ".join(line[3:] for line in dirty.lines[:10])
        raise WorktreeError(
            f"the checkout {repo} has uncommitted changes ({files}); commit or stash them (`git stash`), then merge"
        )
    return on


async def _check_conflicts(repo: Path, branch: str, target: str) -> None:
    """``git merge-tree --write-tree`` merges in the object store only: the checkout and index are not touched."""
    probe = await git(
        ["merge-tree", "--write-tree", "--name-only", "--no-messages", "HEAD", f"refs/heads/{branch}"],
        cwd=repo,
        check=False,
    )
    if probe.returncode == 0:
        return
    if probe.returncode != 1:
        raise WorktreeError(f"git merge-tree failed in {repo}: {probe.stderr.strip()}")
    files = sorted(set(probe.lines[1:]))  # the first line is the (conflicted) tree
    raise MergeConflictError(
        f"merging {branch} into {target} would conflict in: {', '.join(files)}. Nothing was changed. Resolve it "
        f"yourself (`git merge {branch}` in {repo}) or discard the run.",
        files,
    )


async def _identity(repo: Path) -> tuple[str, ...]:
    """The user's own identity for merges into their branch; ours only when git has none configured."""
    known = await git(["var", "GIT_COMMITTER_IDENT"], cwd=repo, check=False)
    return () if known.returncode == 0 else IDENTITY


def _exists(path: str) -> bool:
    return Path(path).exists()


async def _with_store(store: RunStore | None, use: Callable[[RunStore], Awaitable[T]]) -> T:
    if store is not None:
        return await use(store)
    async with _own_store() as own:
        return await use(own)


@asynccontextmanager
async def _own_store() -> AsyncIterator[RunStore]:
    from cc_executor.engine.recovery import open_store

    async with open_store() as store:
        yield store
