"""MCP parameters with valid values, end to end: the in-memory MCP server runs the real `claude` behind the fake API,
and each test asserts on what the CLI did (the requests it sent: model, tools offered; what it wrote; how it ended).

Also: per-task overrides in execute_task_list, CC_EXECUTOR_DEFAULT_CWD, and following a run another process owns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client
from mcp.types import CallToolResult, TextContent

from cc_executor.api import open_store
from cc_executor.engine.process import marked_processes
from cc_executor.models import CCExecutorConfig
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic, RecordedRequest, first_user_text

pytestmark = pytest.mark.anyio

OTHER_MODEL = "claude-haiku-4-5"


@pytest.fixture
def settings(config: CCExecutorConfig, state_home: Path) -> ServerSettings:
    return ServerSettings(
        cli_env=config.env, claude_path=config.claude_path, model=config.model, kill_grace_s=1.0, return_after_s=60
    )


@asynccontextmanager
async def connect(settings: ServerSettings) -> AsyncIterator[Client]:
    async with Client(create_server(settings)) as client:
        yield client


def ok(result: CallToolResult) -> dict[str, Any]:
    text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
    assert not result.is_error, text
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def tools_offered(request: RecordedRequest) -> set[str]:
    return {str(t.get("name")) for t in request.body.get("tools", []) if isinstance(t, dict)}


def requests_for(fake_api: FakeAnthropic, marker: str) -> list[RecordedRequest]:
    return [r for r in fake_api.message_requests if marker in first_user_text(r.body)]


async def test_model_and_disallowed_tools_reach_the_cli(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    async with connect(settings) as client:
        plain = ok(await client.call_tool("execute_task", {"task": "plain run", "cwd": str(workdir)}))
        narrowed = ok(
            await client.call_tool(
                "execute_task",
                {"task": "narrowed run", "cwd": str(workdir), "model": OTHER_MODEL, "disallowed_tools": ["Bash"]},
            )
        )
    assert plain["status"] == narrowed["status"] == "success"
    [first] = requests_for(fake_api, "plain run")[:1]
    [second] = requests_for(fake_api, "narrowed run")[:1]
    assert first.body["model"] == settings.model and "Bash" in tools_offered(first)
    assert second.body["model"] == OTHER_MODEL and "Bash" not in tools_offered(second)
    assert "Read" in tools_offered(second)  # only the named tool went


async def test_plan_mode_writes_nothing(settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path) -> None:
    fake_api.scenario = scenarios.write_file("planned.py", "print('no')\n", final="here is the plan")
    async with connect(settings) as client:
        args = {"task": "plan it", "cwd": str(workdir), "permission_mode": "plan"}
        run = ok(await client.call_tool("execute_task", args))
    assert not (workdir / "planned.py").exists() and run["files_created"] == []
    async with open_store() as store:
        assert (await store.get(run["run_id"])).permission_mode == "plan"


async def test_max_turns_and_budget_stop_the_run(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    async with connect(settings) as client:
        fake_api.scenario = scenarios.slow(steps=3, seconds=0.1)
        base = {"cwd": str(workdir), "allowed_tools": ["Bash"]}
        turns = ok(await client.call_tool("execute_task", {**base, "task": "turns", "max_turns": 1}))
        turn_requests = len(requests_for(fake_api, "turns"))
        fake_api.scenario = scenarios.slow(steps=3, seconds=0.1)
        budget = ok(await client.call_tool("execute_task", {**base, "task": "budget", "max_budget_usd": 0.0001}))
    assert turns["status"] == "failed" and turns["error_class"] == "MaxTurnsError", turns
    assert turn_requests <= 2  # the CLI stopped after one turn instead of running all three steps
    assert budget["status"] == "failed" and budget["error_class"] == "BudgetExceededError", budget
    assert not marked_processes(turns["run_id"]) and not marked_processes(budget["run_id"])


@pytest.mark.slow
async def test_timeout_and_idle_timeout_end_the_run_and_its_tree(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    async with connect(settings) as client:
        fake_api.scenario = scenarios.slow(steps=10, seconds=1)
        args = {"task": "slow", "cwd": str(workdir), "allowed_tools": ["Bash"], "timeout_s": 3}
        timed = ok(await client.call_tool("execute_task", args))
        fake_api.scenario = scenarios.silent(60)
        args = {"task": "silent", "cwd": str(workdir), "idle_timeout_s": 2, "timeout_s": 600}
        idle = ok(await client.call_tool("execute_task", args))
    assert timed["status"] == "timeout" and timed["error_class"] == "RunTimeoutError" and timed["duration_s"] < 10
    assert idle["status"] == "idle_timeout" and idle["error_class"] == "IdleTimeoutError" and idle["duration_s"] < 15
    assert not marked_processes(timed["run_id"]) and not marked_processes(idle["run_id"])


async def test_per_task_overrides_in_a_list(settings: ServerSettings, fake_api: FakeAnthropic, tmp_path: Path) -> None:
    shared, own = tmp_path / "shared", tmp_path / "own"
    shared.mkdir()
    own.mkdir()
    tasks = [
        {"task": "first-task", "model": OTHER_MODEL, "disallowed_tools": ["Bash"], "cwd": str(own)},
        {"task": "second-task"},
    ]
    async with connect(settings) as client:
        args = {"tasks": tasks, "cwd": str(shared), "mode": "parallel", "disallowed_tools": ["Grep"]}
        done = ok(await client.call_tool("execute_task_list", args))
    assert [t["status"] for t in done["tasks"]] == ["success", "success"]
    assert [t["cwd"] for t in done["tasks"]] == [str(own.resolve()), str(shared.resolve())]
    first = requests_for(fake_api, "first-task")[0]
    second = requests_for(fake_api, "second-task")[0]
    assert first.body["model"] == OTHER_MODEL and "Bash" not in tools_offered(first)
    assert "Grep" in tools_offered(first)  # the task's own disallowed_tools replaced the list's
    assert second.body["model"] == settings.model and "Bash" in tools_offered(second)
    assert "Grep" not in tools_offered(second)


async def test_default_cwd_is_used_when_a_call_names_none(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.write_file("here.txt", "default cwd\n")
    with_default = ServerSettings(**{**settings.__dict__, "default_cwd": workdir})
    async with connect(with_default) as client:
        run = ok(await client.call_tool("execute_task", {"task": "write here"}))
    assert run["cwd"] == str(workdir.resolve()) and run["files_created"] == ["here.txt"]
    assert (workdir / "here.txt").read_text() == "default cwd\n"


@pytest.mark.slow
async def test_following_a_run_another_process_owns(
    settings: ServerSettings, fake_api: FakeAnthropic, cli_env: dict[str, str], claude_bin: Path, workdir: Path
) -> None:
    """A `cc-executor run` in another process: this server's get_run sees it live, wait_run returns its result."""
    fake_api.scenario = scenarios.slow(steps=3, seconds=1, final="done elsewhere")
    env = {**os.environ, **cli_env, "CC_EXECUTOR_CLAUDE": str(claude_bin)}
    argv = [sys.executable, "-m", "cc_executor.cli", "run", "elsewhere", "--cwd", str(workdir), "-q"]
    argv += ["--allowed-tools", "Bash"]
    async with anyio.create_task_group() as group, connect(settings) as client:
        group.start_soon(lambda: anyio.run_process(argv, env=env, check=False))
        with anyio.fail_after(30):
            while True:
                listed = ok(await client.call_tool("list_runs", {"status": "running"}))
                if listed["runs"]:
                    break
                await anyio.sleep(0.2)
        run_id = listed["runs"][0]["run_id"]
        live = ok(await client.call_tool("get_run", {"run_id": run_id}))
        final = ok(await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 60}))
    assert live["status"] == "running" and live["done"] is False
    assert final["status"] == "success" and final["result"] == "done elsewhere" and final["done"] is True
    assert not marked_processes(run_id)
