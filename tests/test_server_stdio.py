"""The server as a real stdio subprocess (`python -m cc_executor_mcp`): a session in both eras, shutdown by stdin
EOF and SIGTERM, and a SIGKILLed server whose runs die with it and are marked lost on the next start."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from cc_executor.api import open_store
from cc_executor.engine.process import marked_processes
from cc_executor.models import CCExecutorConfig
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio


@pytest.fixture
def params(config: CCExecutorConfig, state_home: Path) -> StdioServerParameters:
    """The server with the test CLI, the fake API's env and a private state dir (env is merged over a minimal one)."""
    env = {
        **config.env,
        "CC_EXECUTOR_HOME": str(state_home),
        "CC_EXECUTOR_CLAUDE": str(config.claude_path),
        "CC_EXECUTOR_MODEL": str(config.model),
        "CC_EXECUTOR_LOG_LEVEL": "INFO",
        "CC_EXECUTOR_BACKEND": "local",  # runs die with the server (durable ones: tests/test_server_durable.py)
    }
    return StdioServerParameters(command=sys.executable, args=["-m", "cc_executor_mcp"], env=env)


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


@asynccontextmanager
async def legacy_session(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    async with stdio_client(params) as (read, write), ClientSession(read, write, read_timeout_seconds=60) as session:
        await session.initialize()
        yield session


async def start_slow(session: ClientSession | Client, workdir: Path) -> str:
    args = {"task": "long job", "cwd": str(workdir), "allowed_tools": ["Bash"]}
    run_id = str(ok(await session.call_tool("start_task", args))["run_id"])
    with anyio.fail_after(20):
        while True:
            run = ok(await session.call_tool("get_run", {"run_id": run_id}))
            if "turn" in (run["last_progress"] or ""):
                return run_id
            await anyio.sleep(0.1)


async def until_no_processes(run_id: str, timeout_s: float = 10) -> None:
    """pdeathsig and the tree kill act within a moment; poll /proc for anything still carrying the run's marker."""
    for _ in range(int(timeout_s * 10)):
        if not marked_processes(run_id):
            return
        await anyio.sleep(0.1)
    raise AssertionError(f"processes of run {run_id} still alive after {timeout_s}s: {marked_processes(run_id)}")


async def owner_pid(run_id: str) -> int:
    async with open_store() as store:
        pid = (await store.get(run_id)).owner_pid
    assert pid is not None and pid != os.getpid()
    return pid


@pytest.mark.slow
async def test_stdio_session_in_both_eras(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=1, seconds=0.5, final="over stdio")
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with Client(params, read_timeout_seconds=60) as client:
        assert client.protocol_version == "2026-07-28"
        assert len((await client.list_tools()).tools) == 11
        args = {"task": "hello", "cwd": str(workdir), "allowed_tools": ["Bash"]}
        modern = ok(await client.call_tool("execute_task", args, progress_callback=on_progress))
    async with legacy_session(params) as session:
        legacy = ok(await session.call_tool("execute_task", args, progress_callback=on_progress))
        listed = ok(await session.call_tool("list_runs", {}))
    assert modern["status"] == legacy["status"] == "success" and modern["result"] == "over stdio"
    assert listed["count"] == 2
    assert any("Bash: sleep 0.5" in m for m in seen), seen


@pytest.mark.slow
async def test_stdin_eof_and_sigterm_cancel_live_runs(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=20, seconds=1)
    async with legacy_session(params) as session:
        closed_id = await start_slow(session, workdir)
    await until_no_processes(closed_id)
    async with legacy_session(params) as session:
        signalled_id = await start_slow(session, workdir)
        os.kill(await owner_pid(signalled_id), signal.SIGTERM)
        await until_no_processes(signalled_id)
    async with open_store() as store:
        closed, signalled = await store.get(closed_id), await store.get(signalled_id)
    assert closed.status.value == "cancelled" and "shut down" in (closed.error or "")
    assert signalled.status.value == "cancelled" and "SIGTERM" in (signalled.error or "")


@pytest.mark.slow
async def test_sigkilled_server_leaves_no_claude_and_the_restart_marks_the_run_lost(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=20, seconds=1)
    async with legacy_session(params) as session:
        run_id = await start_slow(session, workdir)
        assert marked_processes(run_id)
        os.kill(await owner_pid(run_id), signal.SIGKILL)
        await until_no_processes(run_id)
    async with Client(params, read_timeout_seconds=60) as client:
        run = ok(await client.call_tool("get_run", {"run_id": run_id}))
    assert run["status"] == "lost" and run["done"] is True
