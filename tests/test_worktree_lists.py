"""Sequential task lists in worktrees: each task starts from the branch head of the task before it (so it sees the
earlier work), unless it gives its own base_ref; the list's base_ref is the first task's. Real git, the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, ListTask, RunStatus, cc_execute_list
from cc_executor.task_lists import SEQUENTIAL_WORKTREES_NOTE
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.git_repos import git, make_repo, show, status

pytestmark = pytest.mark.anyio


async def test_each_task_of_a_sequential_worktree_list_builds_on_the_one_before(
    fake_api: FakeAnthropic, config: CCExecutorConfig, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n"})
    first_commit = git(repo, "rev-parse", "HEAD")
    (repo / "later.txt").write_text("on main after the list's base\n")
    git(repo, "add", "later.txt")
    git(repo, "commit", "-q", "-m", "later")
    main_head = git(repo, "rev-parse", "HEAD")
    # Later tasks' prompts quote the earlier ones: the newest marker is matched first.
    fake_api.routes = {
        "step three": scenarios.bash("ls > ls3.txt"),
        "step two": scenarios.bash("cat one.txt > seen.txt && echo two > two.txt"),
        "step one": scenarios.bash("echo one > one.txt && ls > ls1.txt"),
    }
    done = await cc_execute_list(
        ["step one", "step two", ListTask(task="step three", base_ref="main")],
        config=config.model_copy(update={"allowed_tools": ["Bash"]}),
        cwd=repo,
        isolation="worktree",
        base_ref=first_commit,
    )

    assert done.status == "success" and done.isolation == "worktree" and done.note == SEQUENTIAL_WORKTREES_NOTE
    one, two, three = (entry.result for entry in done.entries)
    assert one and two and three and all(r.status is RunStatus.SUCCESS for r in (one, two, three))
    assert one.base_sha == first_commit and "later.txt" not in show(repo, one.branch or "", "ls1.txt")
    assert two.base_sha == one.head_sha and two.files_created == ["seen.txt", "two.txt"]  # relative to its base
    assert show(repo, two.branch or "", "seen.txt") == "one"  # it saw the first task's work
    assert [c.sha for c in two.commits] == [two.head_sha]  # its own commit only, on top of the first's
    listing = show(repo, three.branch or "", "ls3.txt").split()
    assert three.base_sha == main_head and "later.txt" in listing and "one.txt" not in listing  # its own base_ref
    assert status(repo) == "" and git(repo, "rev-parse", "HEAD") == main_head
