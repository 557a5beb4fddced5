"""Worktree isolation for one run: plan (validate, nothing created), enter (worktree + includes + setup), leave
(commit everything, measure against the base, remove the directory, keep the branch).

Plain git underneath, so a user can inspect, merge or delete the result without us:

* ``plan_worktree`` checks the request before the run's row exists: cwd inside a work tree, ``base_ref`` a commit
  (default: the commit checked out in cwd, recorded as a sha), ``branch`` a valid name that does not exist yet
  (default ``cc-executor/<first 8 of the run id>``), the worktree directory ``<worktree_dir>/<run id>`` free and
  outside the repository. Any problem is an InvalidRequestError and nothing is created.
* ``RunWorktree.enter`` runs ``git worktree add -b <branch> <dir> <base sha>``, copies the ignored files that
  ``.worktreeinclude`` names (``worktree_include.py``), runs ``setup`` with its output in the transcript, and
  gives the request the same relative subdirectory inside the worktree as its cwd.
* ``RunWorktree.leave`` runs in the runner's ``finally``, whatever the run's end: ``git add -A`` and one commit
  (hooks skipped, our identity, so nothing can stop the work from being saved), then base..head commits, diffstat
  and created/modified/deleted files (repository-relative), beside ``git worktree remove`` (``--force`` only where
  our commit proves the tree clean: no submodule, no nested repository). A worktree whose HEAD the agent moved, or
  that git will not remove (uncommitted work, an initialised submodule) is never removed: its path stays on the
  result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio

from cc_executor.engine import process, worktree_include, worktree_libgit2
from cc_executor.engine.git import IDENTITY, MIN_GIT_ISOLATION, NO_HOOKS, GitOutput, check_git_version, git
from cc_executor.engine.topdir import mark_top_directory
from cc_executor.errors import InvalidRequestError, RunError, RunTimeoutError, WorktreeError, WorktreeSetupError
from cc_executor.models import ExecutionResult, RunRequest, WorktreeCommit
from cc_executor.paths import ensure_private_dir, state_dir
from cc_executor.registry.transcripts import TranscriptWriter
from cc_executor.text import one_line

__all__ = [
    "BRANCH_PREFIX",
    "RunWorktree",
    "WorktreeOutcome",
    "WorktreePlan",
    "default_branch",
    "plan_worktree",
    "worktree_root",
]

log = logging.getLogger(__name__)

BRANCH_PREFIX = "cc-executor/"
WORKTREES_NAME = "worktrees"
_LEAVE_TIMEOUT_S = 120.0  # a commit of a huge tree can take a while; never forever
_OUTPUT_TAIL = 64 * 1024
_DIFFSTAT_CHARS = 20_000


def worktree_root(configured: Path | None = None) -> Path:
    """Where worktrees are made: the configured dir, else ``<state dir>/worktrees``."""
    return configured.expanduser().resolve() if configured is not None else state_dir() / WORKTREES_NAME


def default_branch(run_id: str) -> str:
    return BRANCH_PREFIX + run_id[:8]


@dataclass(frozen=True, slots=True)
class WorktreePlan:
    """A validated worktree for one run; nothing exists on disk yet."""

    run_id: str
    repo_root: Path  # top level of the caller's checkout
    subdir: Path  # the caller's cwd relative to repo_root
    path: Path  # the worktree directory to create
    branch: str
    base_ref: str
    base_sha: str
    base_branch: str | None  # the branch checked out in the caller's checkout (None: detached HEAD)
    dirty: bool  # the caller's checkout had uncommitted changes (not carried over)
    setup: list[str] | None
    engine: Literal["git", "libgit2"] = "git"  # libgit2: in-process steps (worktree_libgit2.py); git: the CLI

    @property
    def cwd(self) -> Path:
        return self.path / self.subdir


async def plan_worktree(request: RunRequest, root: Path) -> WorktreePlan:
    """Validate a worktree request; raises InvalidRequestError naming the problem, with nothing created.

    With pygit2 installed, a request and repository that libgit2 handles exactly as git does are planned
    in-process (no git process at all); everything else, every refusal included, through git. The independent git
    questions run side by side (git works from any subdirectory): a handful of git processes is most of what
    isolation costs a short run."""
    cwd = request.cwd
    # git itself is needed either way (.worktreeinclude, the git path's fallbacks when leaving, discard, the
    # leftover search): its version is asked (once per process) beside the in-process plan.
    too_old: list[WorktreeError] = []
    in_process: list[WorktreePlan | None] = []

    async def check_version() -> None:
        try:
            await check_git_version(MIN_GIT_ISOLATION, "isolation='worktree'")
        except WorktreeError as exc:
            too_old.append(exc)

    in_process_allowed = worktree_libgit2.available()  # raises on an unknown setting, naming it
    async with anyio.create_task_group() as group:
        group.start_soon(check_version)
        in_process.append(await _plan_in_process(request, root) if in_process_allowed else None)
    if too_old:
        raise InvalidRequestError(f"{too_old[0]} Or use isolation='none'.")
    if in_process[0] is not None:
        return in_process[0]
    base_ref = request.base_ref or "HEAD"
    branch = request.branch or default_branch(request.run_id)
    # One rev-parse answers four questions: the top level, the base commit, the checked-out branch and whether
    # the new branch exists (after --revs-only a missing ref prints nothing instead of failing; the arguments
    # before it still fail loudly). base_ref never starts with "-": the request refuses that.
    # A branch the caller named is checked for validity at the same time (a generated one is valid).
    named = [(["check-ref-format", "--branch", branch], cwd)] if request.branch is not None else []
    where, status, *valid = await git_parallel(
        (
            [
                *("rev-parse", "--show-toplevel", f"{base_ref}^{{commit}}", "--symbolic-full-name", "HEAD"),
                *("--revs-only", f"refs/heads/{branch}"),
            ],
            cwd,
        ),
        (["status", "--porcelain", "--untracked-files=normal"], cwd),
        *named,
    )
    if valid and valid[0].returncode != 0:  # before the rev-parse answer: an invalid name can confuse it
        raise InvalidRequestError(f"branch {branch!r} is not a valid git branch name")
    lines = where.stdout.splitlines()
    if where.returncode != 0 or len(lines) not in (3, 4):
        await _explain_bad_start(cwd, base_ref)  # always raises
    repo_root, root = _resolved(Path(lines[0]), root)
    if root == repo_root or root.is_relative_to(repo_root):
        raise InvalidRequestError(
            f"worktree_dir {root} is inside the repository {repo_root}; worktrees must live outside it"
        )
    if len(lines) == 4:
        await _refuse_existing_branch(repo_root, branch)
    path = root / request.run_id
    if path.exists():
        raise InvalidRequestError(
            f"the worktree directory {path} already exists (a leftover?); see `cc-executor doctor`"
        )
    head = lines[2]
    return WorktreePlan(
        run_id=request.run_id,
        repo_root=repo_root,
        subdir=cwd.relative_to(repo_root),
        path=path,
        branch=branch,
        base_ref=base_ref,
        base_sha=lines[1],
        base_branch=head.removeprefix("refs/heads/") if head.startswith("refs/heads/") else None,
        dirty=bool(status.stdout.strip()),
        setup=request.setup,
    )


async def _plan_in_process(request: RunRequest, root: Path) -> WorktreePlan | None:
    """The libgit2 plan, when it applies; None sends the request through git's own checks."""
    if request.branch == "HEAD":
        return None
    base_ref, branch = request.base_ref or "HEAD", request.branch or default_branch(request.run_id)
    facts = await worktree_libgit2.plan_facts(request.cwd, base_ref, branch, root)
    if facts is None or not request.cwd.is_relative_to(facts.repo_root):
        return None
    path = facts.worktree_root / request.run_id
    if await anyio.Path(path).exists():
        return None
    return WorktreePlan(
        run_id=request.run_id,
        repo_root=facts.repo_root,
        subdir=request.cwd.relative_to(facts.repo_root),
        path=path,
        branch=branch,
        base_ref=base_ref,
        base_sha=facts.base_sha,
        base_branch=facts.base_branch,
        dirty=facts.dirty,
        setup=request.setup,
        engine="libgit2",
    )


def _resolved(*paths: Path) -> tuple[Path, ...]:
    return tuple(p.resolve() for p in paths)


async def _explain_bad_start(cwd: Path, base_ref: str) -> None:
    """The combined rev-parse failed: ask again one question at a time, to say exactly what is wrong."""
    top = await git(["rev-parse", "--show-toplevel"], cwd=cwd, check=False)
    if top.returncode != 0:
        raise InvalidRequestError(
            f"isolation='worktree' needs cwd inside a git work tree; {cwd} is not in one "
            f"({top.stderr.strip() or 'git rev-parse failed'}). Run `git init` and commit, or use isolation='none'."
        )
    repo = top.stdout.strip()
    found = await git(["rev-parse", "--verify", "--quiet", f"{base_ref}^{{commit}}"], cwd=cwd, check=False)
    if found.returncode == 0 or base_ref == "HEAD":  # a fine base means HEAD failed: an unborn branch
        raise InvalidRequestError(f"the repository {repo} has no commit checked out yet; commit something first")
    raise InvalidRequestError(f"base_ref {base_ref!r} is not a commit in {repo} (try a branch, tag or sha)")


async def git_parallel(*calls: tuple[list[str], Path]) -> list[GitOutput]:
    """Independent git commands at once (check=False each); answers in call order."""
    answers: dict[int, GitOutput] = {}

    async def one(i: int, args: list[str], cwd: Path) -> None:
        answers[i] = await git(args, cwd=cwd, check=False)

    async with anyio.create_task_group() as group:
        for i, (args, cwd) in enumerate(calls):
            group.start_soon(one, i, args, cwd)
    return [answers[i] for i in range(len(calls))]


async def _refuse_existing_branch(repo_root: Path, branch: str) -> None:
    message = f"branch {branch!r} already exists in {repo_root}; give another branch name (or none for a generated one)"
    holder = await worktree_holding(repo_root, branch)
    if holder is not None:
        from cc_executor.engine.worktree_leftovers import inspect_worktree

        leftover = await inspect_worktree(holder)
        message += f". It is checked out in the worktree {holder}, left over from an earlier run: {leftover.describe()}"
        message += f". {leftover.recovery()}"
    raise InvalidRequestError(message)


async def worktree_holding(repo_root: Path, branch: str) -> Path | None:
    """The worktree that has ``branch`` checked out, if any (``git worktree list --porcelain``)."""
    listing = await git(["worktree", "list", "--porcelain"], cwd=repo_root, check=False)
    path: Path | None = None
    for line in listing.stdout.splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}" and path is not None:
            return path
    return None


@dataclass(slots=True)
class WorktreeOutcome:
    """What the run left on its branch, relative to the base."""

    head_sha: str | None = None
    commits: list[WorktreeCommit] = field(default_factory=list)
    diffstat: str | None = None
    created: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept_path: str | None = None  # the worktree was not removed (not clean, or a git step failed)


class RunWorktree:
    """The worktree side of one run, held by ``runner.Run``: enter before the first attempt, leave in its finally."""

    def __init__(self, plan: WorktreePlan, task: str) -> None:
        self.plan = plan
        self.task = task
        self.created = False
        self.outcome: WorktreeOutcome | None = None

    async def enter(
        self, request: RunRequest, writer: TranscriptWriter | None, env: dict[str, str], deadline: float
    ) -> tuple[RunRequest, RunError | None]:
        """Create the worktree and run setup; returns the request to run (cwd inside the worktree) and the
        error that stops the run before the CLI starts, if any."""
        try:
            await self._create()
        except (WorktreeError, OSError) as exc:
            return request, WorktreeSetupError(f"could not create the worktree {self.plan.path}: {exc}")
        moved = request.model_copy(update={"cwd": self.plan.cwd})
        if self.plan.setup is None:
            return moved, None
        return moved, await self._setup(writer, env, deadline)

    async def _create(self) -> None:
        plan = self.plan
        ensure_private_dir(plan.path.parent)
        mark_top_directory(plan.path.parent)  # each worktree in a block group of its own (ext4): see topdir.py
        self.created = True  # even half made (cancelled mid-way), leave() must look at it
        if plan.engine == "libgit2":
            await worktree_libgit2.create(plan.repo_root, plan.branch, plan.base_sha, plan.path, plan.run_id)
        else:
            add = ["worktree", "add", "--quiet", "-b", plan.branch, str(plan.path), plan.base_sha]
            await git(add, cwd=plan.repo_root)
        await worktree_include.copy_included(plan.repo_root, plan.path)
        plan.cwd.mkdir(parents=True, exist_ok=True)  # a subdir that only held untracked files

    async def _setup(self, writer: TranscriptWriter | None, env: dict[str, str], deadline: float) -> RunError | None:
        argv = list(self.plan.setup or [])
        started = time.monotonic()
        finished = False
        try:
            with anyio.fail_after(max(deadline - started, 0.001)):
                done = await anyio.run_process(
                    argv, cwd=self.plan.cwd, env=env, check=False, stdin=subprocess.DEVNULL, start_new_session=True
                )
            finished = True
        except TimeoutError:
            _note(writer, {"subtype": "setup", "argv": argv, "error": "timed out"})
            return RunTimeoutError(f"setup {argv} did not finish before the run's timeout; its processes were killed")
        except OSError as exc:
            finished = True
            _note(writer, {"subtype": "setup", "argv": argv, "error": str(exc)})
            return WorktreeSetupError(f"setup {argv} could not start: {exc.strerror or exc}")
        finally:
            if not finished:  # timed out or cancelled: anyio killed the command, not what it started
                with anyio.CancelScope(shield=True):
                    await process.sweep_marked(self.plan.run_id)
        stdout = done.stdout[-_OUTPUT_TAIL:].decode("utf-8", "replace")
        stderr = done.stderr[-_OUTPUT_TAIL:].decode("utf-8", "replace")
        elapsed = round(time.monotonic() - started, 3)
        _note(
            writer,
            {
                "subtype": "setup",
                "argv": argv,
                "returncode": done.returncode,
                "duration_s": elapsed,
                "stdout": stdout,
                "stderr": stderr,
            },
        )
        if done.returncode != 0:
            tail = one_line(stderr or stdout, 300)
            return WorktreeSetupError(f"setup {argv} exited with status {done.returncode}: {tail}")
        return None

    async def leave(self) -> WorktreeOutcome:
        """Commit whatever is in the worktree and measure the branch; remove the directory when clean. Shielded
        and bounded: it runs while the run is being cancelled too."""
        outcome = WorktreeOutcome()
        with anyio.CancelScope(shield=True), anyio.move_on_after(_LEAVE_TIMEOUT_S) as scope:
            try:
                outcome = await self._leave()
            except (WorktreeError, OSError) as exc:
                log.error("run %s: could not finish its worktree %s: %s", self.plan.run_id, self.plan.path, exc)
                outcome.kept_path = str(self.plan.path) if self.plan.path.exists() else None
        if scope.cancelled_caught:
            log.error("run %s: finishing the worktree %s timed out; it was kept", self.plan.run_id, self.plan.path)
            outcome.kept_path = str(self.plan.path)
        self.outcome = outcome
        return outcome

    async def _leave(self) -> WorktreeOutcome:
        plan = self.plan
        if not self.created or not _exists(plan.path):
            return WorktreeOutcome()
        subject = f"cc-executor: {one_line(self.task, 60)}"
        body = f"Work of cc-executor run {plan.run_id}, committed when the run ended."
        if plan.engine == "libgit2":
            head = await worktree_libgit2.save(plan.path, plan.branch, f"{subject}\n\n{body}\n")
            if head is not None:
                return await _leave_in_process(plan, head)
        await git(["add", "--all"], cwd=plan.path)
        commit = ["commit", "--quiet", "--no-verify", "-m", subject, "-m", body]
        committed = await git(commit, cwd=plan.path, prefix=(*IDENTITY, *NO_HOOKS), check=False)
        if committed.returncode not in (0, 1):  # 1: nothing to commit
            raise WorktreeError(f"git commit failed in {plan.path}: {(committed.stderr or committed.stdout).strip()}")
        # The branch is measured (log + diff in the main checkout, by ref) while the worktree is checked and
        # removed: the two do not touch each other, and the removal is the slowest step of leaving.
        outcomes: list[WorktreeOutcome] = []
        removal: list[Removal] = []
        failed: list[WorktreeError | OSError] = []  # raised after both ended: a task group would wrap it

        async def read_changes() -> None:
            try:
                outcomes.append(await measure(plan.repo_root, plan.base_sha, f"refs/heads/{plan.branch}"))
            except (WorktreeError, OSError) as exc:
                failed.append(exc)

        async def check_and_remove() -> None:
            try:
                removal.append(await _check_and_remove(plan, committed=committed.returncode == 0))
            except (WorktreeError, OSError) as exc:
                failed.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(read_changes)
            group.start_soon(check_and_remove)
        if failed:
            raise failed[0]
        outcome, (head, kept) = outcomes[0], removal[0]
        outcome.head_sha = head
        outcome.kept_path = kept
        return outcome

    def apply(self, result: ExecutionResult, caller_cwd: Path) -> ExecutionResult:
        """The result as the caller sees it: their cwd, the branch facts, files relative to the base."""
        outcome = self.outcome or WorktreeOutcome(kept_path=str(self.plan.path) if self.plan.path.exists() else None)
        return result.model_copy(
            update={
                "cwd": str(caller_cwd),
                "isolation": "worktree",
                "branch": self.plan.branch,
                "base_sha": self.plan.base_sha,
                "head_sha": outcome.head_sha,
                "commits": outcome.commits,
                "diffstat": outcome.diffstat,
                "files_created": outcome.created,
                "files_modified": outcome.modified,
                "files_deleted": outcome.deleted,
                "files_truncated": False,
                "uncommitted_changes_not_carried": self.plan.dirty,
                "worktree_path": outcome.kept_path,
            }
        )


async def _leave_in_process(plan: WorktreePlan, head: str) -> WorktreeOutcome:
    """After libgit2's commit holds everything: measure the branch while the directory is deleted."""
    outcomes: list[WorktreeOutcome] = []
    problems: list[str | None] = []

    async def read_changes() -> None:
        found = await worktree_libgit2.changes(plan.repo_root, plan.base_sha, head)
        outcomes.append(_outcome(head, found.commits, found.changed, found.diffstat))

    async def delete() -> None:
        problems.append(await worktree_libgit2.remove(plan.repo_root, plan.path, plan.run_id))

    async with anyio.create_task_group() as group:
        group.start_soon(read_changes)
        group.start_soon(delete)
    outcome = outcomes[0]
    if problems[0] is not None:
        log.warning("run %s: kept its worktree %s: %s", plan.run_id, plan.path, problems[0])
        outcome.kept_path = str(plan.path) if _exists(plan.path) else None
    return outcome


def _outcome(
    head_sha: str, commits: list[tuple[str, str]], changed: list[tuple[str, str]], diffstat: str
) -> WorktreeOutcome:
    """base..head as the result tells it, from either path: (sha, subject) oldest first, (status letter, path)."""
    outcome = WorktreeOutcome(
        head_sha=head_sha,
        commits=[WorktreeCommit(sha=sha, subject=subject) for sha, subject in commits],
        diffstat=diffstat.rstrip()[:_DIFFSTAT_CHARS] or None,
    )
    for status, path in changed:
        kind = status[:1]
        target = outcome.created if kind == "A" else outcome.deleted if kind == "D" else outcome.modified
        target.append(path)
    return outcome


Removal = tuple[str, str | None]  # the branch head, and the worktree path when it was kept


async def _check_and_remove(plan: WorktreePlan, *, committed: bool) -> Removal:
    """Read the branch head, then remove the worktree unless that could lose something.

    Kept (its path returned): HEAD is no longer the run's branch (the agent moved it: commits may sit on a
    detached HEAD), or git refuses the removal. Our ``add --all`` and commit just made the tree clean, so git's own
    re-check (a ``git status`` child of ``worktree remove``, a quarter of leaving) is skipped with ``--force``, but
    only when our commit was made (exit 0; "nothing to commit" shares its exit status 1 with failures), the index
    holds no gitlink (a submodule or nested repository keeps its own uncommitted work and
    commits, which our commit does not save) and no submodule was initialised (``<git dir>/modules``); otherwise
    plain ``worktree remove`` decides, which refuses a worktree with an initialised submodule."""
    refs, index = await git_parallel(
        (["rev-parse", f"refs/heads/{plan.branch}", "--symbolic-full-name", "HEAD", "--absolute-git-dir"], plan.path),
        (["ls-files", "--stage", "-z"], plan.path),
    )
    if refs.returncode != 0:
        raise WorktreeError(f"git cannot read the branch {plan.branch} in {plan.path}: {refs.stderr.strip()}")
    head, checked_out, git_dir = [*refs.lines, "", "", ""][:3]
    if checked_out != f"refs/heads/{plan.branch}":
        return head, str(plan.path)
    proven_clean = (
        committed
        and index.returncode == 0
        and not any(entry.startswith("160000 ") for entry in index.stdout.split("\0"))
        and bool(git_dir)
        and not _exists(Path(git_dir) / "modules")
    )
    # Plain `worktree remove` refuses a worktree with anything uncommitted (ignored files, such as build output
    # and copied .worktreeinclude files, do not count; neither do they with --force): the work is on the branch,
    # or the worktree stays.
    args = ["worktree", "remove", *(["--force"] if proven_clean else []), str(plan.path)]
    removed = await git(args, cwd=plan.repo_root, check=False)
    if removed.returncode != 0:
        log.warning("run %s: kept its worktree %s: %s", plan.run_id, plan.path, removed.stderr.strip())
        return head, str(plan.path)
    return head, None


async def measure(repo: Path, base_sha: str, head_sha: str) -> WorktreeOutcome:
    """Commits, diffstat and changed files of base..head (paths relative to the repository root).

    Two git processes, not three: one ``git diff --raw --stat -z`` gives both the created/modified/deleted
    list and the diffstat (each git start costs a few ms of CPU, most of what isolation adds to a short run)."""
    log_out, diff = await git_parallel(
        (["log", "--reverse", "--format=%H%x00%s", f"{base_sha}..{head_sha}"], repo),
        (["diff", "--raw", "--stat", "--no-color", "--no-renames", "-z", base_sha, head_sha], repo),
    )
    failed = next((x for x in (log_out, diff) if x.returncode != 0), None)
    if failed is not None:
        raise WorktreeError(
            f"git could not compare {base_sha[:12]}..{head_sha[:12]} in {repo}: {failed.stderr.strip()}"
        )
    commits = [(sha, subject) for sha, _, subject in (x.partition("\0") for x in log_out.lines)]
    changes, stat = _split_raw_and_stat(diff.stdout)
    return _outcome(head_sha, commits, changes, stat)


def _split_raw_and_stat(output: str) -> tuple[list[tuple[str, str]], str]:
    """``git diff --raw --stat -z`` output: the ``(status, path)`` pairs, then the diffstat text.

    With ``-z`` (and no renames) each raw entry is ``:<modes> <shas> <status>\0<path>\0``; the diffstat follows
    the last path, its lines ending in newlines, not NULs."""
    fields = output.split("\0")
    changes: list[tuple[str, str]] = []
    i = 0
    while i + 1 < len(fields) and fields[i].startswith(":"):
        changes.append((fields[i].rsplit(" ", 1)[-1], fields[i + 1]))
        i += 2
    return changes, "\0".join(fields[i:])


def _exists(path: Path) -> bool:
    return path.exists()


def _note(writer: TranscriptWriter | None, payload: dict[str, object]) -> None:
    """A cc-executor line in the run's transcript (setup output), beside the CLI's own stream."""
    if writer is not None:
        with contextlib.suppress(OSError):
            writer.write_line(json.dumps({"type": "cc_executor", **payload}).encode())
    log.debug("run worktree note: %s", payload.get("subtype"))
