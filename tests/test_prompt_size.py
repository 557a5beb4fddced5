"""One prompt-size limit (cc_executor.models.MAX_TASK_BYTES, 4 MiB) for the library, the CLI and MCP: a 1 MiB task
runs end to end through the real `claude` (over MCP and through the command line), and reaches the API whole."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from cc_executor_mcp import schemas
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client, StdioServerParameters

from cc_executor.api import build_request
from cc_executor.errors import InvalidRequestError
from cc_executor.models import MAX_TASK_BYTES, CCExecutorConfig
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic, first_user_text

pytestmark = pytest.mark.anyio

ONE_MIB = 1024 * 1024
MARK = "BIG-TASK-END"


def big_task(size: int) -> str:
    line = "Context line that the task carries along, to make the prompt large. " * 2 + "\n"
    body = (line * (size // len(line) + 1))[: size - len(MARK) - 1]
    return body + "\n" + MARK


def test_the_limit_is_one_and_at_least_4_mib(workdir: Path) -> None:
    assert MAX_TASK_BYTES >= 4 * ONE_MIB and schemas.MAX_TASK_BYTES == MAX_TASK_BYTES
    build_request("x" * MAX_TASK_BYTES, cwd=workdir)
    with pytest.raises(InvalidRequestError, match=f"task: is {MAX_TASK_BYTES + 1} bytes; the limit is"):
        build_request("x" * (MAX_TASK_BYTES + 1), cwd=workdir)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["memory", "stdio"])
async def test_a_1_mib_task_runs_through_execute_task(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path, transport: str
) -> None:
    """In memory, and over a real stdio server (the JSON-RPC line then carries the whole megabyte)."""
    fake_api.scenario = scenarios.text("read it all")
    task = big_task(ONE_MIB)
    settings = ServerSettings(cli_env=config.env, claude_path=config.claude_path, model=config.model)
    env = {
        **config.env,
        "CC_EXECUTOR_HOME": str(state_home),
        "CC_EXECUTOR_CLAUDE": str(config.claude_path),
        "CC_EXECUTOR_MODEL": str(config.model),
    }
    stdio = StdioServerParameters(command=sys.executable, args=["-m", "cc_executor_mcp"], env=env)
    async with Client(create_server(settings) if transport == "memory" else stdio) as client:
        result = await client.call_tool("execute_task", {"task": task, "cwd": str(workdir)})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["status"] == "success", result.structured_content
    sent = first_user_text(fake_api.message_requests[-1].body)
    assert len(sent) >= ONE_MIB - 64 and sent.rstrip().endswith(MARK)


@pytest.mark.slow
async def test_a_1_mib_task_runs_through_the_command_line(
    fake_api: FakeAnthropic, cli_env: dict[str, str], claude_bin: Path, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text("read it all")
    env = {**os.environ, **cli_env, "CC_EXECUTOR_CLAUDE": str(claude_bin)}
    task = big_task(ONE_MIB).encode()
    done = await anyio.run_process(
        [sys.executable, "-m", "cc_executor.cli", "run", "-", "--cwd", str(workdir), "-q"],
        input=task,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip().startswith("read it all")
    assert first_user_text(fake_api.message_requests[-1].body).rstrip().endswith(MARK)
