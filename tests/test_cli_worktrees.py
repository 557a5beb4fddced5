"""`cc-executor run --worktree`, `diff`, `merge`, `discard` and `doctor` as a user drives them: subprocesses, real
git repositories, the real claude CLI behind the fake API."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.text import TextReceiveStream

from cc_executor.api import open_store
from cc_executor.engine import process
from cc_executor.models import RunStatus
from cc_executor.testing.fake_api import FakeAnthropic, Scenario, Text, ToolUse
from cc_executor.testing.git_repos import branches, git, make_repo, show, status

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "cc_executor.cli"]


@pytest.fixture
def env(cli_env: dict[str, str], claude_bin: Path) -> dict[str, str]:
    return {**os.environ, **cli_env, "CC_EXECUTOR_CLAUDE": str(claude_bin)}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


async def cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> Any:
    return await anyio.run_process([*CLI, *args], env=env, cwd=cwd, check=False)


def write(name: str, content: str) -> Scenario:
    return Scenario([ToolUse("Write", {"file_path": "{cwd}/" + name, "content": content}), Text(f"wrote {name}")])


async def test_run_worktree_then_diff_merge_and_discard(
    fake_api: FakeAnthropic, env: dict[str, str], repo: Path
) -> None:
    fake_api.routes = {"first": write("one.txt", "one\n"), "second": write("two.txt", "two\n")}
    done = await cli(env, "run", "first", "--cwd", str(repo), "--worktree", "--branch", "try/one", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["branch"] == "try/one" and result["files_created"] == ["one.txt"] and len(result["commits"]) == 1
    assert status(repo) == "" and not (repo / "one.txt").exists()

    shown = await cli(env, "show", result["run_id"][:8])
    assert "try/one" in shown.stdout.decode() and result["commits"][0]["sha"][:12] in shown.stdout.decode()
    diff = await cli(env, "diff", result["run_id"][:8])
    assert diff.returncode == 0 and "+one" in diff.stdout.decode()
    listed = (await cli(env, "runs")).stdout.decode().splitlines()
    assert listed[0].split()[:7] == ["ID", "STATUS", "STARTED", "DURATION", "COST", "BRANCH", "TASK"]
    assert "try/one" in listed[1].split()

    merged = await cli(env, "merge", result["run_id"][:8], "--strategy", "ff-only")
    assert merged.returncode == 0, merged.stderr
    assert "merged try/one into main (ff-only)" in merged.stdout.decode() and (repo / "one.txt").read_text() == "one\n"

    second = await cli(env, "run", "second", "--cwd", str(repo), "-w", "--setup", "sh -c 'echo ready > .ready'")
    assert second.returncode == 0, second.stderr
    footer = second.stderr.decode()
    assert "branch cc-executor/" in footer and "cc-executor merge" in footer
    async with open_store() as store:
        row = (await store.list_runs(limit=1))[0]
    assert row.branch and show(repo, row.branch, ".ready") == "ready"
    discarded = await cli(env, "discard", row.run_id[:8])
    assert discarded.returncode == 0 and f"deleted branch {row.branch}" in discarded.stdout.decode()
    assert row.branch not in branches(repo) and "git -C" in discarded.stderr.decode()


async def test_bad_worktree_input_on_the_command_line(
    fake_api: FakeAnthropic, env: dict[str, str], repo: Path, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = write("x.txt", "x\n")
    cases = [
        (["--cwd", str(repo), "--branch", "b"], "--branch applies only with --worktree"),
        (["--cwd", str(workdir), "--worktree"], "needs cwd inside a git work tree"),
        (["--cwd", str(repo), "--worktree", "--base", "v9.9"], "base_ref 'v9.9' is not a commit"),
        (["--cwd", str(repo), "--worktree", "--branch", "main"], "branch 'main' already exists"),
    ]
    for args, message in cases:
        done = await cli(env, "run", "task", *args)
        assert done.returncode == 2 and message in done.stderr.decode(), (args, done.stderr)
    assert branches(repo) == ["main"] and not (state_home / "worktrees").exists()

    done = await cli(env, "run", "task", "--cwd", str(repo), "--worktree", "--json")
    run_id = json.loads(done.stdout)["run_id"]
    (repo / "README.md").write_text("dirty\n")
    refused = await cli(env, "merge", run_id)
    assert refused.returncode == 1 and "uncommitted changes (README.md); commit or stash" in refused.stderr.decode()
    assert (repo / "README.md").read_text() == "dirty\n" and not (repo / "x.txt").exists()


async def read_until(stream: anyio.abc.ByteReceiveStream, needle: str, within: float = 30) -> str:
    seen = ""
    with anyio.fail_after(within):
        async for chunk in TextReceiveStream(stream):
            seen += chunk
            if needle in seen:
                return seen
    return seen


@pytest.mark.slow
async def test_sigkill_mid_run_leaves_a_worktree_doctor_reports_and_no_run_clobbers(
    fake_api: FakeAnthropic, env: dict[str, str], repo: Path, state_home: Path
) -> None:
    fake_api.scenario = Scenario(
        [
            ToolUse("Write", {"file_path": "{cwd}/precious.txt", "content": "half done\n"}),
            ToolUse("Bash", {"command": "sleep 2 && echo step 1", "description": "step"}),
            Text("done", delay_s=60),
        ]
    )
    args = [
        "run",
        "keep my work",
        "--cwd",
        str(repo),
        "--worktree",
        "--branch",
        "feature/keep",
        "--allowed-tools",
        "Bash",
    ]
    owner = await anyio.open_process([*CLI, *args], env=env)
    assert owner.stderr is not None
    stderr = await read_until(owner.stderr, "echo step 1")
    run_id = next(line.split("] run ", 1)[1].split()[0] for line in stderr.splitlines() if "] run " in line)
    leftover = state_home / "worktrees" / run_id
    assert (leftover / "precious.txt").exists()

    owner.kill()  # SIGKILL: no finally runs, nothing is committed
    await owner.wait()
    doctor = await cli(env, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    check = checks[f"worktrees: {run_id[:8]}"]
    assert check["status"] == "warn" and str(leftover) in check["detail"]
    assert "feature/keep" in check["detail"] and "precious.txt" in check["detail"]
    assert f"cc-executor discard {run_id}" in check["fix"] and "commit" in check["fix"]
    with anyio.fail_after(15):
        while process.marked_processes(run_id):  # noqa: ASYNC110 (polling /proc)
            await anyio.sleep(0.2)

    again = await cli(env, *args)
    assert again.returncode == 2
    message = again.stderr.decode()
    assert "branch 'feature/keep' already exists" in message and str(leftover) in message and "precious.txt" in message
    assert (leftover / "precious.txt").read_text() == "half done\n"  # never reused, never deleted
    async with open_store() as store:
        assert (await store.get(run_id)).status is RunStatus.LOST

    git(leftover, "add", "-A")
    git(leftover, "commit", "-q", "-m", "recovered")  # the recovery doctor suggested, in plain git
    assert show(repo, "feature/keep", "precious.txt") == "half done"
    discarded = await cli(env, "discard", run_id)
    assert discarded.returncode == 0 and not leftover.exists() and "feature/keep" not in branches(repo)
