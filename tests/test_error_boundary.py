"""The error boundaries are total: whatever goes wrong, a tool call or a command ends in one sentence, and the
traceback goes to the server log (MCP) or appears only with -v (CLI). Never the SDK's bare "Error executing tool X".

The unexpected failure used here is real: a state dir whose runs.db is a directory (IsADirectoryError, which
nothing of ours anticipates)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import anyio
import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.errors import translate
from cc_executor_mcp.settings import ServerSettings
from mcp import Client
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import TextContent

pytestmark = pytest.mark.anyio

RUN_ID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def broken_home(tmp_path: Path) -> Path:
    home = tmp_path / "broken-state"
    (home / "runs.db").mkdir(parents=True)
    return home


async def test_an_unexpected_error_in_a_tool_is_a_sentence_and_a_logged_traceback(
    broken_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="cc_executor_mcp.errors")
    async with Client(create_server(ServerSettings(home=broken_home))) as client:
        result = await client.call_tool("list_runs", {})
        again = await client.call_tool("get_run", {"run_id": RUN_ID})
        with pytest.raises(Exception, match=r"^internal error \(IsADirectoryError\); details in the server log$"):
            await client.read_resource(f"cc-executor://runs/{RUN_ID}/result")
    texts = [" ".join(c.text for c in r.content if isinstance(c, TextContent)) for r in (result, again)]
    assert result.is_error and again.is_error
    assert texts[0] == "internal error (IsADirectoryError) in list_runs; details in the server log"
    assert texts[1] == f"internal error (IsADirectoryError) in get_run; details in the server log, run {RUN_ID}"
    logged = [r for r in caplog.records if r.name == "cc_executor_mcp.errors"]
    assert logged and logged[0].exc_info is not None and logged[0].exc_info[0] is IsADirectoryError


def test_translation_of_each_kind_of_failure() -> None:
    from pydantic import BaseModel, Field, ValidationError

    from cc_executor.errors import InvalidRequestError

    class Args(BaseModel):
        timeout_s: float = Field(le=604800)

    try:
        Args(timeout_s=1e12)
    except ValidationError as exc:
        invalid = ToolError("Error executing tool execute_task: 1 validation error for Args ...")
        invalid.__cause__ = exc
    assert translate(invalid, "execute_task") == "timeout_s: must be at most 604800 seconds"
    deliberate = ToolError("Error executing tool get_run: unknown run_id 'x': no such run")
    assert translate(deliberate, "get_run") == "unknown run_id 'x': no such run"
    ours = UnexpectedToolError("Error executing tool execute_task")
    ours.__cause__ = InvalidRequestError("cwd: '/x' does not exist")
    assert translate(ours, "execute_task") == "cwd: '/x' does not exist"
    crash = UnexpectedToolError("Error executing tool execute_task")
    crash.__cause__ = OverflowError("date value out of range")
    assert translate(crash, "execute_task", RUN_ID) == (
        f"internal error (OverflowError) in execute_task; details in the server log, run {RUN_ID}"
    )


async def test_an_unexpected_error_in_a_command_is_one_sentence_and_the_traceback_only_with_v(
    broken_home: Path,
) -> None:
    env = {**os.environ, "CC_EXECUTOR_HOME": str(broken_home)}
    cli = [sys.executable, "-m", "cc_executor.cli"]
    quiet = await anyio.run_process([*cli, "runs"], env=env, check=False)
    verbose = await anyio.run_process([*cli, "-v", "runs"], env=env, check=False)
    lines = quiet.stderr.decode().splitlines()
    assert quiet.returncode == verbose.returncode == 1
    assert lines[0].startswith("cc-executor runs: internal error (IsADirectoryError): ")
    assert lines[1:] == ["(unexpected: run again with -v for the traceback, and please report it)"]
    assert "Traceback (most recent call last)" in verbose.stderr.decode()
