"""The MCP tools with isolation 'worktree': execute_task/start_task/execute_task_list parameters, get_run and
list_runs showing the branch, merge_run and discard_run; in memory, real git, real CLI behind the fake API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client
from mcp.types import CallToolResult, TextContent

from cc_executor.models import CCExecutorConfig
from cc_executor.testing.fake_api import FakeAnthropic, Scenario, Text, ToolUse
from cc_executor.testing.git_repos import branches, git, make_repo, status

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(config: CCExecutorConfig, state_home: Path) -> ServerSettings:
    return ServerSettings(
        cli_env=config.env, claude_path=config.claude_path, model=config.model, kill_grace_s=1.0, return_after_s=60
    )


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, " ".join(c.text for c in result.content if isinstance(c, TextContent))
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def write(name: str, content: str) -> Scenario:
    return Scenario([ToolUse("Write", {"file_path": "{cwd}/" + name, "content": content}), Text(f"wrote {name}")])


async def test_parallel_list_in_a_repo_defaults_to_worktrees_then_merge_and_discard(
    fake_api: FakeAnthropic, settings: ServerSettings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    fake_api.routes = {f"variant {n}": write("answer.txt", f"variant {n}\n") for n in (1, 2)}
    async with Client(create_server(settings)) as client:
        listed = ok(
            await client.call_tool(
                "execute_task_list",
                {"tasks": [{"task": "variant 1"}, {"task": "variant 2"}], "mode": "parallel", "cwd": str(repo)},
            )
        )
        assert listed["status"] == "success" and listed["isolation"] == "worktree"
        assert "own worktrees" in listed["note"] and "merge_run" in listed["message"]
        first, second = listed["tasks"]
        assert first["branch"] != second["branch"] and len(first["commits"]) == 1
        assert first["files_created"] == ["answer.txt"] and "merge_run" in first["message"]
        assert status(repo) == ""

        run = ok(await client.call_tool("get_run", {"run_id": first["run_id"]}))
        assert run["branch"] == first["branch"] and run["commits"] == first["commits"]
        runs = ok(await client.call_tool("list_runs", {}))["runs"]
        assert {r["branch"] for r in runs} == {first["branch"], second["branch"]} and {r["commits"] for r in runs} == {
            1
        }

        merged = ok(await client.call_tool("merge_run", {"run_id": first["run_id"]}))
        assert merged["merged"] and merged["files"] == ["answer.txt"]
        head = git(repo, "rev-parse", "HEAD")
        conflict = ok(await client.call_tool("merge_run", {"run_id": second["run_id"]}))
        assert (
            not conflict["merged"]
            and conflict["conflicts"] == ["answer.txt"]
            and "Nothing was changed" in conflict["message"]
        )
        assert git(repo, "rev-parse", "HEAD") == head and status(repo) == ""

        discarded = ok(await client.call_tool("discard_run", {"run_id": second["run_id"]}))
        assert discarded["branch_deleted"] and second["branch"] not in branches(repo)


async def test_execute_task_worktree_options_and_refusals(
    fake_api: FakeAnthropic, settings: ServerSettings, tmp_path: Path, workdir: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    fake_api.scenario = write("x.txt", "x\n")
    async with Client(create_server(settings)) as client:
        done = ok(
            await client.call_tool(
                "execute_task",
                {"task": "write x", "cwd": str(repo), "isolation": "worktree", "branch": "agent/x", "setup": ["true"]},
            )
        )
        assert done["branch"] == "agent/x" and done["files_created"] == ["x.txt"] and done["head_sha"]
        started = ok(await client.call_tool("start_task", {"task": "t", "cwd": str(repo), "isolation": "worktree"}))
        assert started["run_id"]
        refusals = {
            "branch exists": {"cwd": str(repo), "isolation": "worktree", "branch": "agent/x"},
            "not a repository": {"cwd": str(workdir), "isolation": "worktree"},
            "bad base": {"cwd": str(repo), "isolation": "worktree", "base_ref": "nope"},
            "no isolation": {"cwd": str(repo), "branch": "other"},
        }
        messages = {
            name: error_text(await client.call_tool("execute_task", {"task": "t", **args}))
            for name, args in refusals.items()
        }
        (repo / "README.md").write_text("dirty\n")
        dirty = error_text(await client.call_tool("merge_run", {"run_id": done["run_id"]}))
        plain = ok(await client.call_tool("execute_task", {"task": "t", "cwd": str(workdir)}))
        not_isolated = error_text(await client.call_tool("discard_run", {"run_id": plain["run_id"]}))
    assert "branch 'agent/x' already exists" in messages["branch exists"]
    assert "needs cwd inside a git work tree" in messages["not a repository"]
    assert "base_ref 'nope' is not a commit" in messages["bad base"]
    assert "applies only with isolation='worktree'" in messages["no isolation"]
    assert "uncommitted changes (README.md)" in dirty and (repo / "README.md").read_text() == "dirty\n"
    assert "did not run in a worktree" in not_isolated


async def test_a_sequential_worktree_list_chains_each_task_on_the_one_before(
    fake_api: FakeAnthropic, settings: ServerSettings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    base = git(repo, "rev-parse", "HEAD")
    # Later tasks' prompts quote the earlier ones: the newest marker is matched first.
    fake_api.routes = {"part two": write("two.txt", "two\n"), "part one": write("one.txt", "one\n")}
    async with Client(create_server(settings)) as client:
        listed = ok(
            await client.call_tool(
                "execute_task_list",
                {
                    "tasks": [{"task": "part one"}, {"task": "part two"}],
                    "cwd": str(repo),
                    "isolation": "worktree",
                    "base_ref": base,
                },
            )
        )
    assert listed["status"] == "success" and "branch head of the task before" in listed["note"]
    first, second = listed["tasks"]
    assert first["base_sha"] == base and second["base_sha"] == first["head_sha"]
    assert second["files_created"] == ["two.txt"] and git(repo, "show", f"{second['branch']}:one.txt") == "one"
