"""Worktree steps in-process (libgit2): what they leave is plain git that git itself reads, no git process runs for a
plain repository, and every repository libgit2 would check out differently still gets git's own result."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, RunStatus, cc_execute
from cc_executor.engine.topdir import is_top_directory
from cc_executor.engine.worktree import RunWorktree, plan_worktree
from cc_executor.errors import InvalidRequestError
from cc_executor.models import RunRequest
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.git_repos import git, make_repo, status

pytestmark = pytest.mark.anyio


@pytest.fixture
def git_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every git command started from here on is logged (a ``git`` first on PATH that runs the real one)."""
    real = next(Path(d) / "git" for d in os.environ["PATH"].split(os.pathsep) if (Path(d) / "git").is_file())
    folder, log = tmp_path / "logged-git", tmp_path / "git-calls.log"
    folder.mkdir()
    wrapper = folder / "git"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def test_git_reads_the_worktree_branch_and_commit_and_no_git_process_ran_for_them(
    worktree_engine: str, tmp_path: Path, git_log: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n", "pkg/mod.py": "x = 1\n", "gone.txt": "bye\n"})
    before = git(repo, "rev-parse", "HEAD")
    request = RunRequest(task="edit things", cwd=repo / "pkg", isolation="worktree")
    git_log.unlink(missing_ok=True)

    plan = await plan_worktree(request, tmp_path / "worktrees")
    worktree = RunWorktree(plan, request.task)
    moved, error = await worktree.enter(request, None, {}, 1e12)
    assert error is None and moved.cwd == plan.path / "pkg"
    during = calls(git_log)
    # git sees a normal linked worktree on the run's branch, its index matching the checkout
    listed = git(repo, "worktree", "list", "--porcelain")
    assert f"worktree {plan.path}\nHEAD {before}\nbranch refs/heads/{plan.branch}" in listed
    assert status(plan.path) == ""
    (moved.cwd / "mod.py").write_text("x = 2\n")
    (moved.cwd / "new.py").write_text("y = 1\n")
    (plan.path / "gone.txt").unlink()
    git_log.unlink(missing_ok=True)  # the checks above were git commands too
    outcome = await worktree.leave()
    after = calls(git_log)

    assert outcome.kept_path is None and not plan.path.exists()
    assert (outcome.created, outcome.modified, outcome.deleted) == (["pkg/new.py"], ["pkg/mod.py"], ["gone.txt"])
    assert outcome.diffstat is not None and "3 files changed, 2 insertions(+), 2 deletions(-)" in outcome.diffstat
    subjects = git(repo, "log", "--format=%s", f"{before}..{plan.branch}").splitlines()
    assert subjects == ["cc-executor: edit things"] and [c.subject for c in outcome.commits] == subjects
    assert git(repo, "show", "--format=%an <%ae>", "--no-patch", plan.branch) == "cc-executor <cc-executor@localhost>"
    assert git(repo, "show", f"{plan.branch}:pkg/new.py") == "y = 1"
    assert str(plan.path) not in git(repo, "worktree", "list", "--porcelain")
    assert git(repo, "worktree", "prune", "--dry-run", "--verbose") == ""  # no stale metadata left behind
    git(repo, "fsck", "--no-progress", "--strict")
    assert status(repo) == "" and git(repo, "rev-parse", "HEAD") == before
    if worktree_engine == "libgit2":
        assert plan.engine == "libgit2" and after == [], after
        assert [c for c in during if c != "--version"] == []  # git's version: asked once per process
    else:
        assert plan.engine == "git" and len(during) >= 3 and len(after) >= 5


def _filter_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {".gitattributes": "*.txt filter=upper\n", "a.txt": "hello\n"})
    git(repo, "config", "filter.upper.smudge", "tr a-z A-Z")
    git(repo, "config", "filter.upper.clean", "cat")
    return repo


def _hook_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"a.txt": "hello\n"})
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\necho checked out by the hook > a.txt\n")
    hook.chmod(0o755)
    return repo


def _encoding_repo(tmp_path: Path) -> Path:
    """a.txt is UTF-16LE in every checkout, UTF-8 in the repository."""
    repo = make_repo(tmp_path / "repo", {".gitattributes": "*.txt working-tree-encoding=UTF-16LE\n"})
    (repo / "a.txt").write_bytes("hi\n".encode("utf-16-le"))
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "utf-16 file")
    return repo


@pytest.mark.parametrize(
    ("make", "seen"),
    [
        pytest.param(_filter_repo, "HELLO", id="a filter driver (as git-lfs installs) smudges the checkout"),
        pytest.param(_hook_repo, "checked out by the hook", id="the post-checkout hook runs"),
        pytest.param(_encoding_repo, "h\x00i\x00", id="working-tree-encoding re-encodes the checkout"),
    ],
)
async def test_repositories_libgit2_would_check_out_differently_get_git_s_own_checkout(
    fake_api: FakeAnthropic, config: CCExecutorConfig, tmp_path: Path, make: object, seen: str
) -> None:
    assert callable(make)
    repo = make(tmp_path)
    fake_api.scenario = scenarios.text("done")
    # setup's output is in the transcript: what the worktree held before the task started
    result = await cc_execute("look", config=config, cwd=repo, isolation="worktree", setup=["cat", "a.txt"])
    assert result.status is RunStatus.SUCCESS, result.error
    lines = [json.loads(x) for x in Path(result.transcript_path or "").read_text().splitlines()]
    setup = next(x for x in lines if x.get("subtype") == "setup")
    assert setup["stdout"].startswith(seen)


async def test_the_in_process_path_plans_what_git_plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same request planned both ways: the same branch, base, subdirectory and worktree directory."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n", "src/a.py": ""})
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "README.md").write_text("dirty\n")
    plans = []
    request = RunRequest(task="t", cwd=repo / "src", isolation="worktree", base_ref="main", branch="topic/x")
    for engine in ("auto", "cli"):
        monkeypatch.setenv("CC_EXECUTOR_WORKTREE_GIT", engine)
        plans.append(await plan_worktree(request, tmp_path / "wt"))
    fast, slow = plans
    assert (fast.engine, slow.engine) == ("libgit2", "git")
    for name in ("repo_root", "subdir", "path", "branch", "base_sha", "base_branch", "dirty"):
        assert getattr(fast, name) == getattr(slow, name), name
    assert fast.base_branch == "feature" and fast.dirty


async def test_an_unknown_engine_setting_is_refused_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    monkeypatch.setenv("CC_EXECUTOR_WORKTREE_GIT", "fast")
    request = RunRequest(task="t", cwd=repo, isolation="worktree")
    with pytest.raises(
        InvalidRequestError, match=r"CC_EXECUTOR_WORKTREE_GIT='fast' is not a worktree engine: use 'auto'.*or 'cli'"
    ):
        await plan_worktree(request, tmp_path / "wt")
    assert not (tmp_path / "wt").exists() and git(repo, "branch", "--list") == "* main"


async def test_the_worktrees_root_spreads_its_worktrees_over_the_filesystem(tmp_path: Path) -> None:
    """ext4's Orlov hint (chattr +T) on the root: each worktree is an unrelated tree (see engine/topdir.py)."""
    if is_top_directory(tmp_path) is None:
        pytest.skip(f"{tmp_path}'s filesystem keeps no inode flags")
    repo = make_repo(tmp_path / "repo")
    request = RunRequest(task="t", cwd=repo, isolation="worktree")
    plan = await plan_worktree(request, tmp_path / "worktrees")
    worktree = RunWorktree(plan, request.task)
    _, error = await worktree.enter(request, None, {}, 1e12)
    assert error is None and is_top_directory(tmp_path / "worktrees") is True
    assert "T" in lsattr_letters(tmp_path / "worktrees")
    assert (await worktree.leave()).kept_path is None


def lsattr_letters(path: Path) -> str:
    """The attribute letters ``lsattr -d`` shows (e2fsprogs), as a user would check."""
    done = subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


def files_held_under(folder: Path) -> list[str]:
    """Files under ``folder`` this process has open or mapped (/proc/self/fd and /proc/self/maps)."""
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            held.add(os.readlink(f"/proc/self/fd/{fd}"))
    held |= {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "/" in line}
    return sorted(x for x in held if x.startswith(str(folder)))


async def test_no_file_of_the_repository_stays_open_after_a_run(tmp_path: Path) -> None:
    """A long-lived server keeps nothing of the user's repository open between runs (a pack that `git gc` deleted
    would keep its disk space; the filesystem could not be unmounted). The garbage collector is off meanwhile:
    pygit2's reference cycles would otherwise hide a leak until it ran."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    git(repo, "repack", "-a", "-d", "-q")
    request = RunRequest(task="t", cwd=repo, isolation="worktree")
    gc.collect()
    gc.disable()
    try:
        plan = await plan_worktree(request, tmp_path / "worktrees")
        worktree = RunWorktree(plan, request.task)
        moved, error = await worktree.enter(request, None, {}, 1e12)
        assert error is None and plan.engine == "libgit2"
        (moved.cwd / "b.txt").write_text("b\n")
        outcome = await worktree.leave()
        assert outcome.created == ["b.txt"] and outcome.kept_path is None
        assert files_held_under(repo) == []
    finally:
        gc.enable()
