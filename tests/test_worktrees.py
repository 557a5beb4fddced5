"""Worktree isolation: real git repositories, the real pinned CLI against the fake API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from cc_executor import (
    CCExecutorConfig,
    InvalidRequestError,
    ListTask,
    RunStatus,
    cc_execute,
    cc_execute_list,
    open_store,
    resume,
)
from cc_executor.engine.process import marked_processes
from cc_executor.errors import MergeConflictError, WorktreeError
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic, Scenario, Text, ToolUse
from cc_executor.testing.git_repos import branches, git, make_repo, show, status
from cc_executor.worktrees import discard_run, merge_run, run_diff

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("worktree_engine")]


def writes(*files: tuple[str, str]) -> Scenario:
    steps: list[Text | ToolUse] = [
        ToolUse("Write", {"file_path": "{cwd}/" + name, "content": body}) for name, body in files
    ]
    return Scenario([*steps, Text("written")])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "# demo\n", "pkg/__init__.py": ""})


def worktree_dirs(state_home: Path) -> list[Path]:
    root = state_home / "worktrees"
    return sorted(root.iterdir()) if root.is_dir() else []


async def test_three_parallel_runs_each_end_on_their_own_branch(
    fake_api: FakeAnthropic, config: CCExecutorConfig, repo: Path, state_home: Path
) -> None:
    fake_api.routes = {
        f"contender {name}": writes(("shared.txt", f"from {name}\n"), (f"{name}.txt", name)) for name in "abc"
    }
    before = git(repo, "rev-parse", "HEAD")
    done = await cc_execute_list(
        [f"contender {name}: write shared.txt" for name in "abc"],
        sequential=False,
        max_parallel=3,
        config=config,
        cwd=repo,
    )

    assert done.status == "success" and done.isolation == "worktree" and done.note and "worktree" in done.note
    for name, entry in zip("abc", done.entries, strict=True):
        result = entry.result
        assert result is not None and result.status is RunStatus.SUCCESS
        assert result.isolation == "worktree" and result.base_sha == before and result.cwd == str(repo)
        assert result.files_created == [f"{name}.txt", "shared.txt"]  # only its own work
        assert len(result.commits) == 1 and result.head_sha == result.commits[0].sha
        assert result.branch and show(repo, result.branch, "shared.txt") == f"from {name}"
        assert result.diffstat and "2 files changed" in result.diffstat
        assert result.worktree_path is None and marked_processes(result.run_id) == []
    assert git(repo, "rev-parse", "HEAD") == before and status(repo) == ""  # the caller's checkout is unchanged
    assert not (repo / "shared.txt").exists() and worktree_dirs(state_home) == []
    async with open_store() as store:
        row = await store.get(done.entries[0].run_id)
    assert row.branch == done.entries[0].result.branch and row.commits == done.entries[0].result.commits  # type: ignore[union-attr]

    first, second = (entry.run_id for entry in done.entries[:2])
    merged = await merge_run(first)
    assert merged.strategy == "merge" and (repo / "shared.txt").read_text() == "from a\n"
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(MergeConflictError) as conflict:
        await merge_run(second)
    assert conflict.value.files == ["shared.txt"] and "shared.txt" in str(conflict.value)
    assert git(repo, "rev-parse", "HEAD") == head and status(repo) == ""  # untouched

    third = done.entries[2]
    assert third.result is not None and third.result.branch in branches(repo)
    discarded = await discard_run(third.run_id)
    assert third.result.branch not in branches(repo) and discarded.head_sha == third.result.head_sha


async def test_merge_refuses_a_dirty_checkout_and_the_wrong_branch(
    fake_api: FakeAnthropic, config: CCExecutorConfig, repo: Path
) -> None:
    fake_api.scenario = writes(("new.txt", "new\n"))
    result = await cc_execute("write new.txt", config=config, cwd=repo, isolation="worktree", branch="feature/new")
    assert result.branch == "feature/new" and result.files_created == ["new.txt"]
    assert "+++ b/new.txt" in await run_diff(result.run_id)

    (repo / "README.md").write_text("local edit\n")
    with pytest.raises(WorktreeError, match=r"uncommitted changes.*commit or stash"):
        await merge_run(result.run_id)
    assert (repo / "README.md").read_text() == "local edit\n" and not (repo / "new.txt").exists()
    git(repo, "checkout", "--", "README.md")
    git(repo, "switch", "-q", "-c", "elsewhere")
    with pytest.raises(WorktreeError, match=r"on branch 'elsewhere'.*git switch main"):
        await merge_run(result.run_id)
    git(repo, "switch", "-q", "main")
    squashed = await merge_run(result.run_id, strategy="squash")
    assert squashed.strategy == "squash" and (repo / "new.txt").read_text() == "new\n" and status(repo) == ""


async def test_failed_and_cancelled_runs_still_commit_their_partial_work(
    fake_api: FakeAnthropic, config: CCExecutorConfig, repo: Path, state_home: Path
) -> None:
    fake_api.routes = {
        "fail late": Scenario([ToolUse("Write", {"file_path": "{cwd}/partial.txt", "content": "half\n"})]),
        "slow one": Scenario(
            [
                ToolUse("Write", {"file_path": "{cwd}/early.txt", "content": "early\n"}),
                Text("never", delay_s=30),  # the model "thinks" until the run is stopped
            ]
        ),
    }
    failing = config.model_copy(update={"max_turns": 1})
    failed = await cc_execute("fail late", config=failing, cwd=repo, isolation="worktree", check=False)
    assert failed.status is RunStatus.FAILED and failed.files_created == ["partial.txt"]
    assert failed.branch and show(repo, failed.branch, "partial.txt") == "half" and len(failed.commits) == 1

    slow = config.model_copy(update={"allowed_tools": ["Bash", "Write"], "timeout": 8.0})
    timed_out = await cc_execute("slow one", config=slow, cwd=repo, isolation="worktree", check=False)
    assert timed_out.status is RunStatus.TIMEOUT and timed_out.files_created == ["early.txt"]
    assert marked_processes(timed_out.run_id) == [] and worktree_dirs(state_home) == []

    async with anyio.create_task_group() as group:  # cancelled once the run has written its file, however slow

        async def run_until_cancelled() -> None:
            await cc_execute(
                "slow one", config=slow.model_copy(update={"timeout": 60.0}), cwd=repo, isolation="worktree"
            )

        group.start_soon(run_until_cancelled)
        with anyio.fail_after(45):
            while not any((d / "early.txt").exists() for d in worktree_dirs(state_home)):  # noqa: ASYNC110 (files)
                await anyio.sleep(0.05)
        group.cancel_scope.cancel()
    async with open_store() as store:
        cancelled = (await store.list_runs(status=RunStatus.CANCELLED))[0]
    assert cancelled.branch and show(repo, cancelled.branch, "early.txt") == "early"
    assert cancelled.files_created == ["early.txt"] and marked_processes(cancelled.run_id) == []
    assert worktree_dirs(state_home) == [] and status(repo) == ""


async def test_worktreeinclude_files_are_copied_and_setup_runs_first(
    fake_api: FakeAnthropic, config: CCExecutorConfig, tmp_path: Path
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {".gitignore": ".env\nbuild/\nnotes.txt\n", ".worktreeinclude": ".env\nbuild/\n", "app/main.py": "x = 1\n"},
    )
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "build").mkdir()
    (repo / "build" / "cache.bin").write_text("cached")
    (repo / "notes.txt").write_text("ignored but not included")
    (repo / "README.md").write_text("uncommitted\n")  # not carried over
    fake_api.scenario = scenarios.bash("cat ../.env ../build/cache.bin setup-ran.txt > seen.txt; ls -a .. > ls.txt")
    cfg = config.model_copy(update={"allowed_tools": ["Bash"]})
    result = await cc_execute(
        "look around",
        config=cfg,
        cwd=repo / "app",
        isolation="worktree",
        setup=["sh", "-c", "echo setup says hi; pwd > setup-ran.txt"],
    )
    seen = show(repo, result.branch or "", "app/seen.txt")
    assert "SECRET=1" in seen and "cached" in seen and seen.rstrip().endswith("/app")  # setup ran in the subdir first
    listing = show(repo, result.branch or "", "app/ls.txt").split()
    assert ".env" in listing and "notes.txt" not in listing
    assert sorted(result.files_created) == ["app/ls.txt", "app/seen.txt", "app/setup-ran.txt"]  # .env stays ignored
    assert result.uncommitted_changes_not_carried and result.cwd == str(repo / "app")
    lines = [json.loads(x) for x in Path(result.transcript_path or "").read_text().splitlines()]
    setup = [x for x in lines if x.get("type") == "cc_executor" and x.get("subtype") == "setup"]
    assert setup and setup[0]["returncode"] == 0 and "setup says hi" in setup[0]["stdout"]
    assert lines.index(setup[0]) == 0  # before the CLI's first line

    failing = await cc_execute("x", config=cfg, cwd=repo, isolation="worktree", setup=["false"], check=False)
    assert failing.status is RunStatus.FAILED and failing.error_class == "WorktreeSetupError"
    assert "exited with status 1" in (failing.error or "") and failing.num_turns is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"base_ref": "no-such-ref"}, "base_ref 'no-such-ref' is not a commit"),
        ({"branch": "main"}, "branch 'main' already exists"),
        ({"branch": "bad..name"}, "not a valid git branch name"),
        ({"branch": "--force"}, "is not a git ref name"),
        ({"isolation": "none", "branch": "x"}, "applies only with isolation='worktree'"),
    ],
)
async def test_bad_worktree_input_is_refused_with_nothing_created(
    config: CCExecutorConfig, repo: Path, state_home: Path, fields: dict[str, Any], message: str
) -> None:
    before = branches(repo)
    with pytest.raises(InvalidRequestError, match=message):
        await cc_execute("task", config=config, cwd=repo, **{"isolation": "worktree", **fields})
    assert branches(repo) == before and worktree_dirs(state_home) == []
    async with open_store() as store:
        assert await store.list_runs() == []


async def test_a_worktree_outside_a_repository_is_a_clear_error(
    config: CCExecutorConfig, workdir: Path, state_home: Path
) -> None:
    with pytest.raises(InvalidRequestError, match="needs cwd inside a git work tree"):
        await cc_execute("task", config=config, cwd=workdir, isolation="worktree")
    assert worktree_dirs(state_home) == []


@pytest.mark.parametrize(
    ("where", "trusted"), [("committed", True), ("local via .worktreeinclude", True), ("committed", False)]
)
async def test_the_worktree_is_the_same_trusted_project_for_claude_code(
    fake_api: FakeAnthropic, config: CCExecutorConfig, tmp_path: Path, where: str, trusted: bool
) -> None:
    """Claude Code keys project trust by the main repository, so a worktree of a trusted repository is trusted and
    the project's permission rules apply in it, exactly as in the checkout; headless, an untrusted project's
    rules apply nowhere (the CLI never asks)."""
    allow = json.dumps({"permissions": {"allow": ["Bash"]}})
    files = {"README.md": "# demo\n"}
    if where == "committed":
        files[".claude/settings.json"] = allow
    else:
        files.update({".gitignore": ".claude/settings.local.json\n", ".worktreeinclude": ".claude/\n"})
    repo = make_repo(tmp_path / "repo", files)
    if where != "committed":
        (repo / ".claude").mkdir()
        (repo / ".claude" / "settings.local.json").write_text(allow)
    if trusted:  # what accepting the trust dialog once in the checkout leaves in the CLI's config
        projects = {str(repo): {"hasTrustDialogAccepted": True}}
        (tmp_path / "home" / ".claude.json").write_text(json.dumps({"projects": projects}))
    fake_api.scenario = scenarios.bash("sh -c 'echo allowed > proof.txt'")  # not allowed by acceptEdits alone
    outcomes = {}
    for isolation in ("none", "worktree"):
        result = await cc_execute("prove it", config=config, cwd=repo, isolation=isolation, check=False)
        assert not config.allowed_tools and result.status is RunStatus.SUCCESS
        outcomes[isolation] = "denied" if result.permission_denials else "allowed"
        if isolation == "worktree" and trusted:
            assert show(repo, result.branch or "", "proof.txt") == "allowed"
    assert outcomes == (
        {"none": "allowed", "worktree": "allowed"} if trusted else {"none": "denied", "worktree": "denied"}
    )


async def test_task_lists_check_their_worktrees_before_any_task_starts(
    fake_api: FakeAnthropic, config: CCExecutorConfig, repo: Path, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = writes(("x.txt", "x\n"))
    with pytest.raises(InvalidRequestError, match="base_ref 'v0' is not a commit"):
        await cc_execute_list(["a", "b"], sequential=False, config=config, cwd=repo, base_ref="v0")
    twice = [ListTask(task="a", branch="same"), ListTask(task="b", branch="same")]
    with pytest.raises(InvalidRequestError, match="branch 'same' is also the branch of task 1"):
        await cc_execute_list(twice, sequential=False, config=config, cwd=repo)
    assert branches(repo) == ["main"] and worktree_dirs(state_home) == []
    async with open_store() as store:
        assert await store.list_runs() == []

    shared = await cc_execute_list(["a", "b"], sequential=False, config=config, cwd=workdir)  # not a repository
    assert shared.isolation == "none" and shared.note is None and shared.files_created == ["x.txt"]
    sequential = await cc_execute_list(["a"], config=config, cwd=repo)
    assert sequential.isolation == "none" and (repo / "x.txt").exists()


async def test_created_modified_and_deleted_files_and_the_diffstat_are_relative_to_the_base(
    fake_api: FakeAnthropic, config: CCExecutorConfig, repo: Path
) -> None:
    # One shell step that changes, deletes and creates (a name with a space: paths come NUL-separated from git).
    command = "printf 'changed\\n' >> README.md && rm pkg/__init__.py && printf 'new\\n' > 'odd name.txt'"
    fake_api.scenario = Scenario([ToolUse("Bash", {"command": command, "description": "edit"}), Text("done")])
    result = await cc_execute("edit three files", config=config, cwd=repo, isolation="worktree")
    assert result.files_created == ["odd name.txt"] and result.files_modified == ["README.md"]
    assert result.files_deleted == ["pkg/__init__.py"] and result.worktree_path is None
    assert result.diffstat and "README.md" in result.diffstat and "3 files changed" in result.diffstat
    assert "\0" not in result.diffstat and result.diffstat.splitlines()[-1].startswith(" 3 files changed")
    assert show(repo, result.branch or "", "odd name.txt") == "new" and status(repo) == ""


async def test_resuming_an_isolated_run_continues_in_a_new_worktree_from_its_head(
    fake_api: FakeAnthropic, config: CCExecutorConfig, repo: Path
) -> None:
    # The fake answers by the number of assistant turns in the history: the resumed session starts at turn 2.
    # (A shell write with a relative path: the fake takes {cwd} from the first prompt of the resumed history.)
    write = [ToolUse("Bash", {"command": f"printf '{n}\\n' > part{n}.txt", "description": "write"}) for n in (1, 2)]
    fake_api.scenario = Scenario([write[0], Text("part 1 done"), write[1], Text("part 2 done")])
    first = await cc_execute("first part", config=config, cwd=repo, isolation="worktree")
    second = await resume(first.run_id, "second part", config=config)
    assert second.isolation == "worktree" and second.base_sha == first.head_sha and second.branch != first.branch
    assert second.files_created == ["part2.txt"] and show(repo, second.branch or "", "part1.txt") == "1"
    assert status(repo) == "" and not (repo / "part2.txt").exists()  # never in the caller's checkout


async def test_a_setup_that_outlives_the_timeout_is_killed_with_what_it_started(
    fake_api: FakeAnthropic, config: CCExecutorConfig, repo: Path, state_home: Path
) -> None:
    slow = config.model_copy(update={"timeout": 3.0})
    setup = ["sh", "-c", "echo started > setup.log; sleep 60 & sleep 60"]
    result = await cc_execute("never starts", config=slow, cwd=repo, isolation="worktree", setup=setup, check=False)
    assert result.status is RunStatus.TIMEOUT and "setup" in (result.error or "") and result.num_turns is None
    assert marked_processes(result.run_id) == [] and fake_api.requests == []  # nothing of ours survives
    assert result.branch and show(repo, result.branch, "setup.log") == "started"  # its work is kept too
    assert worktree_dirs(state_home) == []
