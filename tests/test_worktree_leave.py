"""Leaving a worktree never deletes work our commit did not save: a moved HEAD, a submodule or a nested repository
keeps the worktree (its path on the result); a plain run's worktree is removed. Real git, the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, RunStatus, cc_execute
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.git_repos import git, make_repo, show, status

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("worktree_engine")]

ID = "git -c user.name=agent -c user.email=agent@example.com"
FILE_PROTOCOL = ["-c", "protocol.file.allow=always"]  # local submodule clones (refused by default since git 2.38.1)


@pytest.fixture
def bash_config(config: CCExecutorConfig) -> CCExecutorConfig:
    return config.model_copy(update={"allowed_tools": ["Bash"]})


@pytest.fixture
def super_repo(tmp_path: Path) -> Path:
    """A repository with one submodule, ``lib`` (a local repository, as `git submodule add` records it)."""
    lib = make_repo(tmp_path / "lib", {"lib.txt": "library v1\n"})
    repo = make_repo(tmp_path / "repo", {"README.md": "# super\n"})
    git(repo, *FILE_PROTOCOL, "submodule", "--quiet", "add", str(lib), "lib")
    git(repo, "commit", "-q", "-m", "add lib")
    return repo


async def test_a_run_in_a_repository_with_submodules_works_and_leaves_them_uninitialised(
    fake_api: FakeAnthropic, bash_config: CCExecutorConfig, super_repo: Path
) -> None:
    fake_api.scenario = scenarios.bash("ls -A lib | wc -l > lib-entries.txt")
    result = await cc_execute("look at lib", config=bash_config, cwd=super_repo, isolation="worktree")

    assert result.status is RunStatus.SUCCESS and result.files_created == ["lib-entries.txt"]
    assert show(super_repo, result.branch or "", "lib-entries.txt") == "0"  # not initialised in the worktree
    assert result.worktree_path is None and status(super_repo) == ""


async def test_uncommitted_work_in_an_initialised_submodule_keeps_the_worktree(
    fake_api: FakeAnthropic, bash_config: CCExecutorConfig, super_repo: Path
) -> None:
    fake_api.scenario = scenarios.bash("echo 'patched by the agent' >> lib/lib.txt && echo top > top.txt")
    setup = ["git", *FILE_PROTOCOL, "submodule", "--quiet", "update", "--init"]
    result = await cc_execute("patch lib", config=bash_config, cwd=super_repo, isolation="worktree", setup=setup)

    assert result.status is RunStatus.SUCCESS and result.files_created == ["top.txt"]  # the superproject's part
    kept = Path(result.worktree_path or "")
    assert result.worktree_path and (kept / "lib" / "lib.txt").read_text() == "library v1\npatched by the agent\n"
    assert git(kept, "status", "--porcelain") == "M lib"  # git sees the submodule's change: the user can save it


async def test_a_nested_repository_the_agent_made_keeps_the_worktree(
    fake_api: FakeAnthropic, bash_config: CCExecutorConfig, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    fake_api.scenario = scenarios.bash(
        f"git init -q inner && cd inner && echo one > a.txt && git add a.txt && {ID} commit -q -m one "
        "&& echo uncommitted > b.txt"
    )
    result = await cc_execute("make a repo", config=bash_config, cwd=repo, isolation="worktree")

    assert result.status is RunStatus.SUCCESS and result.worktree_path
    assert (Path(result.worktree_path) / "inner" / "b.txt").read_text() == "uncommitted\n"


async def test_a_head_the_agent_moved_keeps_the_worktree_and_a_plain_run_removes_it(
    fake_api: FakeAnthropic, bash_config: CCExecutorConfig, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n", ".gitignore": "build/\n"})
    fake_api.scenario = scenarios.bash(
        f"git checkout -q --detach && echo detached > d.txt && git add d.txt && {ID} commit -q -m detached"
    )
    moved = await cc_execute("detach", config=bash_config, cwd=repo, isolation="worktree")
    assert moved.worktree_path and git(Path(moved.worktree_path), "log", "-1", "--format=%s") == "detached"

    fake_api.scenario = scenarios.bash("echo plain > p.txt && mkdir -p build && echo x > build/out.o")
    plain = await cc_execute("plain", config=bash_config, cwd=repo, isolation="worktree")
    assert plain.worktree_path is None and plain.files_created == ["p.txt"]  # ignored build output does not keep it
    assert plain.head_sha == git(repo, "rev-parse", plain.branch or "")
    assert not (Path(moved.worktree_path).parent / plain.run_id).exists()


async def test_no_git_hook_can_stop_or_alter_the_commit_that_saves_the_work(
    fake_api: FakeAnthropic, bash_config: CCExecutorConfig, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for name, body in [("prepare-commit-msg", "exit 1"), ("post-commit", "echo from-hook > hook-was-here.txt")]:
        (hooks / name).write_text(f"#!/bin/sh\n{body}\n")
        (hooks / name).chmod(0o755)
    fake_api.scenario = scenarios.bash("echo work > work.txt")
    result = await cc_execute("work", config=bash_config, cwd=repo, isolation="worktree")

    assert result.files_created == ["work.txt"] and len(result.commits) == 1  # saved despite the failing hook
    assert result.worktree_path is None and not (repo / "hook-was-here.txt").exists()
