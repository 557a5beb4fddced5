"""The real Claude Code CLI as the MCP host: it calls cc-executor's execute_task, which runs a nested
`claude` in the same offline world. The host's CLAUDECODE=1 must not reach the nested CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from cc_executor.testing import scenarios
from cc_executor.testing.env import offline_env
from cc_executor.testing.fake_api import FakeAnthropic, Scenario, Text, ToolUse
from cc_executor.testing.offline import OFFLINE_MODEL as TEST_MODEL

pytestmark = pytest.mark.anyio


async def host_delegates(
    fake_api: FakeAnthropic, claude_bin: Path, tmp_path: Path, workdir: Path, tool_call: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Claude Code (cwd = workdir) calls execute_task with ``tool_call``; returns its events and the tool's reply."""
    fake_api.routes = {
        "OUTER": Scenario([ToolUse("mcp__cc-executor__execute_task", tool_call), Text("delegated and done")]),
        "INNER": scenarios.write_file("hello.py", "print('hi')\n"),
    }
    server_env = {
        **offline_env(fake_api.base_url, tmp_path / "inner-home"),
        "CC_EXECUTOR_HOME": str(tmp_path / "server-state"),
        "CC_EXECUTOR_CLAUDE": str(claude_bin),
        "CC_EXECUTOR_MODEL": TEST_MODEL,
    }
    server = {"command": sys.executable, "args": ["-m", "cc_executor_mcp"], "env": server_env}
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"cc-executor": server}}))
    host_env = {
        **offline_env(fake_api.base_url, tmp_path / "host-home"),
        "ENABLE_TOOL_SEARCH": "false",
        "CLAUDECODE": "1",
    }
    argv = [str(claude_bin), "-p", "--output-format", "stream-json", "--verbose", "--model", TEST_MODEL]
    argv += ["--mcp-config", str(config), "--strict-mcp-config", "--allowedTools", "mcp__cc-executor__execute_task"]

    done = await anyio.run_process(argv, input=b"OUTER: delegate this", env=host_env, cwd=workdir, check=False)

    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert done.returncode == 0, done.stderr.decode()[-1000:]
    init = events[0]
    assert {"name": "cc-executor", "status": "connected"}.items() <= init["mcp_servers"][0].items()
    tool_results = [
        block
        for e in events
        if e["type"] == "user"
        for block in e["message"]["content"]
        if block["type"] == "tool_result"
    ]
    content = tool_results[0]["content"]
    reply = json.loads(content if isinstance(content, str) else content[0]["text"])
    return events, reply


async def test_claude_code_delegates_through_cc_executor(
    fake_api: FakeAnthropic, claude_bin: Path, tmp_path: Path, workdir: Path
) -> None:
    tool_call = {"task": "INNER: write hello.py", "cwd": str(workdir), "return_after_s": 60}
    events, reply = await host_delegates(fake_api, claude_bin, tmp_path, workdir, tool_call)
    assert reply["status"] == "success" and reply["files_created"] == ["hello.py"]
    assert events[-1]["result"] == "delegated and done"
    assert (workdir / "hello.py").read_text() == "print('hi')\n"


async def test_claude_code_without_cwd_delegates_into_its_own_directory(
    fake_api: FakeAnthropic, claude_bin: Path, tmp_path: Path, workdir: Path
) -> None:
    """The model did not think of cwd: the host's root (its working directory) is used, in either era."""
    tool_call = {"task": "INNER: write hello.py", "return_after_s": 60}
    events, reply = await host_delegates(fake_api, claude_bin, tmp_path, workdir, tool_call)
    assert reply["status"] == "success", reply
    assert reply["cwd"] == str(workdir.resolve()) and reply["files_created"] == ["hello.py"]
    assert (workdir / "hello.py").read_text() == "print('hi')\n"
    sessions = {r.headers.get("x-claude-code-session-id") for r in fake_api.message_requests}
    inner = [r for r in fake_api.message_requests if "INNER" in r.text and "OUTER" not in r.text]
    assert inner and len(sessions) >= 2  # the fake API saw a nested session of its own
    assert events[-1]["result"] == "delegated and done"
