"""The stdio server with durable runs (the default): runs outlive the server whether it gets EOF, SIGTERM or SIGKILL;
a later server (or `cc-executor cancel`) waits for them, follows them and cancels them; two servers share a state dir.

Real server subprocesses (`python -m cc_executor_mcp`), the real CLI, the fake API in this process. Every test ends
with no process of its runs left: no claude, no tool, no supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from cc_executor.backends.durable import DurableBackend
from cc_executor.engine.process import marked_processes, pid_alive
from cc_executor.models import CCExecutorConfig, RunStatus
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SLOW_TASK = {"task": "long job", "allowed_tools": ["Bash"]}


@pytest.fixture
def params(config: CCExecutorConfig, state_home: Path) -> StdioServerParameters:
    env = {
        **config.env,
        "CC_EXECUTOR_HOME": str(state_home),
        "CC_EXECUTOR_CLAUDE": str(config.claude_path),
        "CC_EXECUTOR_MODEL": str(config.model),
        "CC_EXECUTOR_BACKEND": "durable",
        "CC_EXECUTOR_MAX_CONCURRENT": "4",
    }
    return StdioServerParameters(command=sys.executable, args=["-m", "cc_executor_mcp"], env=env)


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


@asynccontextmanager
async def session(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    async with stdio_client(params) as (read, write), ClientSession(read, write, read_timeout_seconds=90) as s:
        await s.initialize()
        yield s


async def start_running(client: ClientSession, workdir: Path, task: dict[str, Any] = SLOW_TASK) -> str:
    """start_task, then wait until claude runs a tool."""
    run_id = str(ok(await client.call_tool("start_task", {**task, "cwd": str(workdir)}))["run_id"])
    with anyio.fail_after(30):
        while "Bash" not in (ok(await client.call_tool("get_run", {"run_id": run_id}))["last_progress"] or ""):  # noqa: ASYNC110
            await anyio.sleep(0.1)
    return run_id


async def supervisor_of(home: Path, run_id: str) -> int:
    async with DurableBackend(home) as backend:
        pid = (await backend.status(run_id)).owner_pid
    assert pid is not None and pid != os.getpid()
    return pid


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


async def until(timeout_s: float, check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout_s}s")
        await anyio.sleep(0.05)


async def nothing_left(run_id: str, supervisor: int, timeout_s: float = 10) -> None:
    await until(timeout_s, lambda: not marked_processes(run_id), f"processes of run {run_id} still alive")
    await until(timeout_s, lambda: not pid_alive(supervisor), f"supervisor {supervisor} still alive")


async def test_sigkilled_server_the_run_goes_on_and_a_new_server_gets_its_result(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=5, seconds=1, final="outlived the server")
    async with session(params) as first:
        run_id = await start_running(first, workdir)
        supervisor = await supervisor_of(state_home, run_id)
        server = parent_of(supervisor)
        os.kill(server, signal.SIGKILL)
        await until(5, lambda: not pid_alive(server), "the server is still alive")
    requests_before = len(fake_api.message_requests)
    await anyio.sleep(1.5)
    assert marked_processes(run_id), "claude died with the server"
    async with session(params) as second:
        result = ok(await second.call_tool("wait_run", {"run_id": run_id, "timeout_s": 60}))
    assert result["status"] == "success" and result["result"] == "outlived the server"
    assert len(fake_api.message_requests) > requests_before  # claude kept calling the API while no server existed
    await nothing_left(run_id, supervisor)


async def test_host_quits_stdin_eof_the_run_completes_and_its_row_is_final(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=3, seconds=1, final="finished alone")
    async with session(params) as client:
        run_id = await start_running(client, workdir)
        supervisor = await supervisor_of(state_home, run_id)
        server = parent_of(supervisor)
    await until(10, lambda: not pid_alive(server), "the server did not exit on EOF")
    async with DurableBackend(state_home) as backend:
        result = await backend.wait(run_id, 60)
        record = await backend.status(run_id)
    assert result is not None and result.status is RunStatus.SUCCESS and result.result == "finished alone"
    assert record.finished_at is not None and record.status is RunStatus.SUCCESS
    await nothing_left(run_id, supervisor)


async def test_cancel_from_a_new_server_and_from_the_cli_stops_the_tree_within_3_s(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=20, seconds=1)
    async with session(params) as first:
        by_server = await start_running(first, workdir)
        by_cli = await start_running(first, workdir)
        server = parent_of(await supervisor_of(state_home, by_server))
        os.kill(server, signal.SIGTERM)  # a signal to the server is not a cancel of its durable runs
        await until(10, lambda: not pid_alive(server), "the server did not exit on SIGTERM")
    supervisors = [await supervisor_of(state_home, run_id) for run_id in (by_server, by_cli)]
    assert marked_processes(by_server) and marked_processes(by_cli)
    async with session(params) as second:
        started = time.monotonic()
        cancelled = ok(await second.call_tool("cancel_run", {"run_id": by_server, "reason": "from a new server"}))
        server_s = time.monotonic() - started
        assert not marked_processes(by_server)
    started = time.monotonic()
    cli = await anyio.run_process(
        [sys.executable, "-m", "cc_executor.cli", "cancel", by_cli],
        env={**os.environ, "CC_EXECUTOR_HOME": str(state_home)},
        check=False,
    )
    cli_s = time.monotonic() - started
    assert cli.returncode == 0, cli.stderr.decode()
    await until(3, lambda: not marked_processes(by_cli), "the CLI's cancel left processes")
    async with DurableBackend(state_home) as backend:
        row = await backend.status(by_cli)
        cli_result = await backend.wait(by_cli, 10)
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled via cancel_run: from a new server"
    assert server_s < 3, server_s
    assert cli_s < 6, cli_s  # includes starting the CLI's interpreter
    assert row.status is RunStatus.CANCELLED and cli_result is not None and cli_result.status is RunStatus.CANCELLED
    for run_id, supervisor in zip((by_server, by_cli), supervisors, strict=True):
        await nothing_left(run_id, supervisor)


async def test_hand_off_then_restart_then_wait_run_gets_the_result(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=3, seconds=1, final="handed off and back")
    async with session(params) as first:
        args = {**SLOW_TASK, "cwd": str(workdir), "return_after_s": 1}
        handed = ok(await first.call_tool("execute_task", args))
    assert handed["status"] in ("queued", "running") and handed["done"] is False
    run_id = str(handed["run_id"])
    supervisor = await supervisor_of(state_home, run_id)
    async with session(params) as second:
        result = ok(await second.call_tool("wait_run", {"run_id": run_id, "timeout_s": 60}))
    assert result["status"] == "success" and result["result"] == "handed off and back"
    await nothing_left(run_id, supervisor)


async def test_a_client_cancelling_its_call_over_stdio_cancels_the_durable_run(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=20, seconds=1)
    async with Client(params, read_timeout_seconds=60) as client:
        with anyio.move_on_after(4) as scope:
            await client.call_tool("execute_task", {**SLOW_TASK, "cwd": str(workdir)})
        assert scope.cancelled_caught
        run_id = str(ok(await client.call_tool("list_runs", {}))["runs"][0]["run_id"])
        run = ok(await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 15}))
    assert run["status"] == "cancelled" and "client cancelled" in (run["error"] or "")
    await nothing_left(run_id, await supervisor_of(state_home, run_id))


async def test_two_servers_on_one_state_dir_share_forty_runs_and_each_others_cancels(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.text("quick")
    fake_api.routes = {"slow one": scenarios.slow(steps=20, seconds=1)}
    async with session(params) as a, session(params) as b:
        ids: dict[str, list[str]] = {"a": [], "b": []}

        async def start(name: str, client: ClientSession) -> None:
            for i in range(20):
                args = {"task": f"fast <{name}{i:02d}>", "cwd": str(workdir)}
                ids[name].append(str(ok(await client.call_tool("start_task", args))["run_id"]))

        async with anyio.create_task_group() as group:
            group.start_soon(start, "a", a)
            group.start_soon(start, "b", b)
        results = {}
        for waiter, name in ((a, "b"), (b, "a")):  # each waits for the other's runs
            for run_id in ids[name]:
                results[run_id] = ok(await waiter.call_tool("wait_run", {"run_id": run_id, "timeout_s": 120}))
        slow_a = await start_running(a, workdir, {"task": "slow one", "allowed_tools": ["Bash"]})
        slow_b = await start_running(b, workdir, {"task": "slow one", "allowed_tools": ["Bash"]})
        supervisors = [await supervisor_of(state_home, r) for r in (slow_a, slow_b)]
        cancelled_by_b = ok(await b.call_tool("cancel_run", {"run_id": slow_a}))
        cancelled_by_a = ok(await a.call_tool("cancel_run", {"run_id": slow_b}))
        listed = ok(await a.call_tool("list_runs", {"limit": 100}))
    not_ok = {run_id: (r["status"], r.get("error")) for run_id, r in results.items() if r["status"] != "success"}
    assert len(set(ids["a"] + ids["b"])) == 40 and not not_ok, not_ok
    prompts = [request.text for request in fake_api.message_requests]
    for name in ("a", "b"):
        for i in range(20):
            assert sum(f"fast <{name}{i:02d}>" in p for p in prompts) == 1, f"{name}{i:02d} ran more than once or never"
    assert cancelled_by_b["status"] == cancelled_by_a["status"] == "cancelled"
    assert listed["count"] == 42 and {r["status"] for r in listed["runs"]} == {"success", "cancelled"}
    for run_id, supervisor in zip((slow_a, slow_b), supervisors, strict=True):
        await nothing_left(run_id, supervisor)
    await until(30, lambda: not _supervisors_running(state_home), "supervisors still running")


def _supervisors_running(home: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "cc_executor.engine.supervisor" in line and str(home) in line]
