"""An independent client: the MCP Inspector CLI (npm, pinned 0.15.0, Node 20) against the real stdio server.

Inspector 0.15 negotiates the 2025-11-25 era, sends no progress token and exits 0 even for isError results,
so the tests read its JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from cc_executor.models import CCExecutorConfig
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio

INSPECTOR = Path(__file__).resolve().parents[1] / "node_modules" / ".bin" / "mcp-inspector"


@pytest.fixture
def inspector_env(config: CCExecutorConfig, state_home: Path) -> list[str]:
    if not INSPECTOR.exists():
        pytest.fail(f"the pinned MCP Inspector is missing at {INSPECTOR}: run `npm ci`")
    env = {
        **config.env,
        "CC_EXECUTOR_HOME": str(state_home),
        "CC_EXECUTOR_CLAUDE": str(config.claude_path),
        "CC_EXECUTOR_MODEL": str(config.model),
    }
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


async def inspect(env_args: list[str], *method_args: str) -> dict[str, Any]:
    argv = [str(INSPECTOR), "--cli", *env_args, sys.executable, "-m", "cc_executor_mcp", *method_args]
    with anyio.fail_after(60):
        done = await anyio.run_process(argv, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


@pytest.mark.slow
async def test_inspector_lists_tools(inspector_env: list[str]) -> None:
    listed = await inspect(inspector_env, "--method", "tools/list")
    tools = {tool["name"]: tool for tool in listed["tools"]}
    assert {"execute_task", "execute_task_list", "start_task", "wait_run", "get_transcript"} <= set(tools)
    execute = tools["execute_task"]
    assert execute["inputSchema"]["required"] == ["task"] and "outputSchema" in execute
    assert execute["annotations"]["destructiveHint"] is True
    assert tools["get_run"]["annotations"]["readOnlyHint"] is True


@pytest.mark.slow
async def test_inspector_calls_execute_task(inspector_env: list[str], fake_api: FakeAnthropic, workdir: Path) -> None:
    fake_api.scenario = scenarios.write_file("from_inspector.txt", "hi\n", final="wrote it")
    called = await inspect(
        inspector_env,
        "--method",
        "tools/call",
        "--tool-name",
        "execute_task",
        "--tool-arg",
        "task=write the file",
        "--tool-arg",
        f"cwd={workdir}",
    )
    assert called["isError"] is False
    run = called["structuredContent"]
    assert run["status"] == "success" and run["result"] == "wrote it"
    assert run["files_created"] == ["from_inspector.txt"] and (workdir / "from_inspector.txt").exists()
    assert json.loads(called["content"][0]["text"])["run_id"] == run["run_id"]
    bad = await inspect(
        inspector_env,
        "--method",
        "tools/call",
        "--tool-name",
        "execute_task",
        "--tool-arg",
        "task=x",
        "--tool-arg",
        "cwd=nope",
    )
    assert bad["isError"] is True and "absolute" in bad["content"][0]["text"]
