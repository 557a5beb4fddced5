"""Worktree isolation in-process through libgit2 (pygit2, the ``cc-executor[worktrees]`` extra).

The same plan, worktree, saving commit, measurement and removal that ``worktree.py`` does with git commands, without
the dozen git processes per run that are most of what isolation costs a short run (each start is milliseconds of
CPU before git does any work). What is left on disk is plain git: a ``git worktree`` entry, a branch, one commit.

The git CLI stays the reference. This path is taken only where libgit2 gives the same result, and every function
here answers ``None`` (take the git path) rather than guess:

* planning: anything unusual (not a repository, an unborn HEAD, a base ref beyond names and shas, an existing branch,
  a worktree dir inside the repository) goes to the git path, which also words every refusal;
* the repository: a configured filter driver (LFS and the like: libgit2 runs no external filter), a
  ``post-checkout`` hook (``git worktree add`` runs it), sparse checkout or per-worktree config, submodules or other
  gitlinks in the base, a ``working-tree-encoding`` attribute (libgit2 does not re-encode): the git path;
* leaving: a HEAD the agent moved, a merge or rebase under way, or a nested repository in the tree (``git add -A``
  records it as a gitlink; libgit2 skips it): the git path commits and removes.

Blocking libgit2 calls run in a worker thread. ``CC_EXECUTOR_WORKTREE_GIT=cli`` turns this path off.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio.to_thread

from cc_executor.errors import InvalidRequestError, WorktreeError

if TYPE_CHECKING:
    import pygit2

__all__ = [
    "ENGINE_SETTING",
    "GIT_PATH_CASES",
    "Changes",
    "PlanFacts",
    "available",
    "changes",
    "create",
    "describe",
    "plan_facts",
    "remove",
    "save",
]

ENGINE_SETTING = "CC_EXECUTOR_WORKTREE_GIT"
"""``cli``: every worktree step through the git CLI, even with pygit2 installed (``auto``, the default, uses
libgit2 where it gives git's result)."""

_SIMPLE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
"""Base refs and branch names libgit2 is trusted to read as git does: names and shas. ``@{...}``, ``^``, ``~``,
``:/text`` and the like go to git's own rev-parse."""
_GITLINK = 0o160000
_NO_FILTER_KEY = re.compile(r"filter\.[^.]+\.(smudge|clean|process)")
_GIT_PATH_SETTINGS = ("core.sparsecheckout", "extensions.worktreeconfig", "index.sparse")


@functools.cache
def _pygit2() -> Any:
    """pygit2, imported on first use (about 25 ms), or None when the extra is not installed."""
    try:
        import pygit2
    except ImportError:
        return None
    # git checks an object's hash only in fsck and on transfer; libgit2 re-hashes every object it reads by default,
    # a quarter of a checkout's CPU. The objects here come from the user's own repository, which git trusts too.
    pygit2.settings.enable_strict_hash_verification(False)
    return pygit2


def available() -> bool:
    """True when worktree steps may run in-process: pygit2 installed, not turned off by the operator. An unknown
    setting is refused (InvalidRequestError naming it) rather than read as either."""
    setting = os.environ.get(ENGINE_SETTING, "auto").strip().lower() or "auto"
    if setting not in ("auto", "cli"):
        raise InvalidRequestError(
            f"{ENGINE_SETTING}={os.environ[ENGINE_SETTING]!r} is not a worktree engine: use 'auto' (in-process "
            "libgit2 where it gives git's result) or 'cli' (the git command for every step)"
        )
    return setting == "auto" and _pygit2() is not None


GIT_PATH_CASES = (
    "repositories with a filter driver (git-lfs), a post-checkout hook, sparse checkout, submodules or "
    "working-tree-encoding take the git CLI"
)


def describe() -> str:
    """``pygit2 1.21.0, libgit2 1.9.7``"""
    git2 = _pygit2()
    return f"pygit2 {git2.__version__}, libgit2 {git2.LIBGIT2_VERSION}" if git2 is not None else "pygit2 not installed"


@contextlib.contextmanager
def _repository(path: Path | str) -> Iterator[pygit2.Repository]:
    """An open repository whose files are closed on leaving. pygit2's objects form reference cycles that only the
    garbage collector breaks: until it runs, a pack file stays open and mapped (a long-lived server would hold
    packs that ``git gc`` deleted, and the filesystem could not be unmounted)."""
    repo = _pygit2().Repository(str(path))
    try:
        yield repo
    finally:
        repo.free()


@dataclass(frozen=True, slots=True)
class PlanFacts:
    repo_root: Path
    worktree_root: Path  # the configured root, resolved
    base_sha: str
    base_branch: str | None
    dirty: bool


async def plan_facts(cwd: Path, base_ref: str, branch: str, root: Path) -> PlanFacts | None:
    """What plan_worktree needs, when this repository and request can take the in-process path; else None."""
    if not (_SIMPLE_REF.fullmatch(base_ref) and _SIMPLE_REF.fullmatch(branch)):
        return None
    return await anyio.to_thread.run_sync(_plan_facts, cwd, base_ref, branch, root)


def _plan_facts(cwd: Path, base_ref: str, branch: str, root: Path) -> PlanFacts | None:
    git2 = _pygit2()
    try:
        found = git2.discover_repository(str(cwd))
        if found is None:
            return None
        with _repository(found) as repo:
            if repo.is_bare or repo.workdir is None or repo.head_is_unborn:
                return None
            repo_root = Path(repo.workdir).resolve()
            resolved_root = root.resolve()
            if resolved_root == repo_root or resolved_root.is_relative_to(repo_root):
                return None
            new_ref = f"refs/heads/{branch}"
            if not git2.reference_is_valid_name(new_ref) or new_ref in repo.references:
                return None
            base = repo.revparse_single(base_ref).peel(git2.Commit)
            if not _same_as_git(repo, base.tree):
                return None
            head = repo.references.get("HEAD")
            base_branch = head.target if head is not None and isinstance(head.target, str) else None
            dirty = bool(repo.status(untracked_files="normal", ignored=False))
            base_sha = str(base.id)
    except (git2.GitError, KeyError, ValueError, OSError):
        return None  # whatever it is, git's own path says it better
    return PlanFacts(
        repo_root=repo_root,
        worktree_root=resolved_root,
        base_sha=base_sha,
        base_branch=base_branch.removeprefix("refs/heads/")
        if base_branch and base_branch.startswith("refs/heads/")
        else None,
        dirty=dirty,
    )


def _same_as_git(repo: pygit2.Repository, tree: pygit2.Tree) -> bool:
    """Would libgit2 check out and commit this repository exactly as git does?"""
    config = repo.config
    for entry in config:
        name = entry.name.lower()
        if _NO_FILTER_KEY.fullmatch(name):
            return False  # a filter driver (git-lfs installs one): libgit2 runs no external filter
        if name in _GIT_PATH_SETTINGS and (entry.value or "").lower() in ("true", "yes", "on", "1"):
            return False
    if _has_post_checkout_hook(repo):
        return False
    return _tree_is_plain(repo, str(tree.id))


def _has_post_checkout_hook(repo: pygit2.Repository) -> bool:
    """``git worktree add`` runs an executable ``post-checkout`` hook (git-lfs and many hook managers install one);
    libgit2 runs none. The hooks are core.hooksPath (relative: to the top of the work tree), else the common git
    dir's ``hooks`` (a linked worktree's git dir names the common one in its ``commondir`` file)."""
    git_dir = Path(repo.path)
    if "core.hooksPath" in repo.config:
        folder = Path(os.path.expanduser(str(repo.config["core.hooksPath"])))
        folder = folder if folder.is_absolute() else Path(repo.workdir or git_dir) / folder
    else:
        common = git_dir / "commondir"
        folder = ((git_dir / common.read_text().strip()).resolve() if common.is_file() else git_dir) / "hooks"
    return os.access(folder / "post-checkout", os.X_OK)


@functools.lru_cache(maxsize=64)
def _tree_is_plain_cached(git_dir: str, tree_id: str) -> bool:
    with _repository(git_dir) as repo:
        return _walk_plain(repo, cast("pygit2.Tree", repo[tree_id]))


def _tree_is_plain(repo: pygit2.Repository, tree_id: str) -> bool:
    return _tree_is_plain_cached(repo.path, tree_id)


def _walk_plain(repo: pygit2.Repository, tree: pygit2.Tree) -> bool:
    """No gitlink anywhere in the tree, and no ``.gitattributes`` asking for a re-encoded working tree."""
    for entry in tree:
        if entry.filemode == _GITLINK:
            return False
        if entry.type_str == "tree":
            if not _walk_plain(repo, cast("pygit2.Tree", repo[entry.id])):
                return False
        elif entry.name == ".gitmodules" or (
            entry.name == ".gitattributes" and b"working-tree-encoding" in cast("pygit2.Blob", repo[entry.id]).data
        ):
            return False
    return True


async def create(repo_root: Path, branch: str, base_sha: str, path: Path, name: str) -> None:
    """``git worktree add -b <branch> <path> <base_sha>``, in-process. Raises WorktreeError naming libgit2's
    complaint; a branch it made for a worktree that failed is deleted again."""
    await anyio.to_thread.run_sync(_create, repo_root, branch, base_sha, path, name)


def _create(repo_root: Path, branch: str, base_sha: str, path: Path, name: str) -> None:
    git2 = _pygit2()
    with _repository(repo_root) as repo:
        try:
            ref = repo.branches.local.create(branch, repo[base_sha].peel(git2.Commit))
        except (git2.GitError, ValueError) as exc:
            raise WorktreeError(f"could not create the branch {branch}: {exc}") from None
        try:
            repo.add_worktree(name, str(path), ref)
        except (git2.GitError, ValueError, OSError) as exc:
            repo.branches.local.delete(branch)
            raise WorktreeError(f"could not add the worktree {path}: {exc}") from None


async def save(path: Path, branch: str, message: str) -> str | None:
    """``git add --all`` and one commit on ``branch`` when anything changed, in-process: the branch head after it.
    None when git's own path must do it (then nothing was changed here)."""
    return await anyio.to_thread.run_sync(_save, path, branch, message)


def _save(path: Path, branch: str, message: str) -> str | None:
    git2 = _pygit2()
    try:
        with _repository(path) as repo:
            if repo.head_is_detached or repo.head.name != f"refs/heads/{branch}":
                return None  # the agent moved HEAD: git's path keeps the worktree
            if repo.state() != git2.enums.RepositoryState.NONE or _holds_nested_repository(repo, path):
                return None
            head = repo.head.peel(git2.Commit)
            index = repo.index
            index.read()
            index.add_all()
            if index.conflicts is not None:
                return None
            index.write()
            tree = index.write_tree()
            if tree == head.tree_id:
                return str(head.id)  # nothing to commit
            who = git2.Signature("cc-executor", "cc-executor@localhost")
            return str(repo.create_commit("HEAD", who, who, message, tree, [head.id]))
    except (git2.GitError, KeyError, ValueError, OSError):
        return None


def _holds_nested_repository(repo: pygit2.Repository, root: Path) -> bool:
    """A ``.git`` below the top that git would see (not inside an ignored directory): libgit2's add skips it,
    ``git add -A`` records it as a gitlink, and its own uncommitted work is not on our branch."""
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    if entry.name == ".git" and folder != root:
                        return True
                    continue
                if entry.name == ".git":
                    if folder != root:
                        return True
                    continue
                relative = os.path.relpath(entry.path, root)
                if not repo.path_is_ignored(relative + "/"):
                    pending.append(Path(entry.path))
    return False


@dataclass(frozen=True, slots=True)
class Changes:
    commits: list[tuple[str, str]]  # (sha, subject), oldest first
    changed: list[tuple[str, str]]  # (status letter A/D/M/T, path), as `git diff --raw --no-renames`
    diffstat: str


async def changes(repo_root: Path, base_sha: str, head_sha: str) -> Changes:
    """base..head: commits, changed files and diffstat (``git log`` + ``git diff --raw --stat``, in-process)."""
    return await anyio.to_thread.run_sync(_changes, repo_root, base_sha, head_sha)


def _changes(repo_root: Path, base_sha: str, head_sha: str) -> Changes:
    git2 = _pygit2()
    try:
        with _repository(repo_root) as repo:
            base, head = repo[base_sha].peel(git2.Commit), repo[head_sha].peel(git2.Commit)
            walker = repo.walk(head.id, git2.enums.SortMode.TOPOLOGICAL | git2.enums.SortMode.REVERSE)
            walker.hide(base.id)
            commits = [(str(c.id), c.message.split("\n", 1)[0]) for c in walker]
            diff = repo.diff(base, head)
            changed = [
                (d.status_char(), d.new_file.path if d.status_char() != "D" else d.old_file.path) for d in diff.deltas
            ]
            stat = diff.stats.format(git2.enums.DiffStatsFormat.FULL, 80) if changed else ""
    except (git2.GitError, KeyError, ValueError) as exc:
        raise WorktreeError(f"could not compare {base_sha[:12]}..{head_sha[:12]} in {repo_root}: {exc}") from None
    return Changes(commits=commits, changed=changed, diffstat=stat)


async def remove(repo_root: Path, path: Path, name: str) -> str | None:
    """Delete a worktree whose work is all committed (``git worktree remove --force``); the error, or None."""
    return await anyio.to_thread.run_sync(_remove, repo_root, path, name)


def _remove(repo_root: Path, path: Path, name: str) -> str | None:
    git2 = _pygit2()
    try:
        shutil.rmtree(path)
        with _repository(repo_root) as repo:
            repo.lookup_worktree(name).prune(True)
    except (git2.GitError, OSError) as exc:
        return str(exc)
    return None
