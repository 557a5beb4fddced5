"""The stdio server with durable runs (the default): runs outlive the server whether it gets EOF, SIGTERM or SIGKILL;
a later server (or `cc-executor cancel`) waits for them, follows them and cancels them; two servers share a state dir.

Real server subprocesses (`python -m cc_executor_mcp`), the real CLI, the fake API in this process. Every test ends
with no process of its runs left: no claude, no tool, no supervisor."""

from __future__ import annotations

import itertools
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


# --- task lists outlive the server too ---------------------------------------------------------------------------

LIST_ROUTES = {
    "ALPHA": scenarios.slow(steps=4, seconds=1, final="ALPHA-DONE wrote the parser"),
    "BETA": scenarios.text("BETA-DONE"),
    "GAMMA": scenarios.text("GAMMA-DONE"),
}


async def start_list(client: ClientSession, workdir: Path, **options: Any) -> tuple[str, list[str]]:
    """A sequential list ALPHA (slow, Bash), BETA, GAMMA handed off at once; returns when ALPHA runs a tool."""
    tasks = [{"task": "task ALPHA", "allowed_tools": ["Bash"]}, {"task": "task BETA"}, {"task": "task GAMMA"}]
    args = {"tasks": tasks, "cwd": str(workdir), "return_after_s": 0, **options}
    handed = ok(await client.call_tool("execute_task_list", args))
    run_ids = [str(t["run_id"]) for t in handed["tasks"]]
    with anyio.fail_after(30):
        while "Bash" not in (ok(await client.call_tool("get_run", {"run_id": run_ids[0]}))["last_progress"] or ""):  # noqa: ASYNC110
            await anyio.sleep(0.1)
    return str(handed["list_id"]), run_ids


async def nothing_of_the_list_left(run_ids: list[str], supervisor: int, timeout_s: float = 10) -> None:
    for run_id in run_ids:
        await nothing_left(run_id, supervisor, timeout_s)


async def test_sigkilled_server_the_list_goes_on_in_order_and_a_new_server_sees_it_end(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.routes = LIST_ROUTES
    async with session(params) as first:
        list_id, run_ids = await start_list(first, workdir)
        supervisor = await supervisor_of(state_home, run_ids[0])  # the list's supervisor owns its members
        server = parent_of(supervisor)
        os.kill(server, signal.SIGKILL)
        await until(5, lambda: not pid_alive(server), "the server is still alive")
    await anyio.sleep(1)
    assert marked_processes(run_ids[0]), "the running member died with the server"
    async with session(params) as second:
        pending = ok(await second.call_tool("get_run", {"run_id": run_ids[2]}))  # no row yet: found via its list
        last = ok(await second.call_tool("wait_run", {"run_id": run_ids[2], "timeout_s": 90}))
        each = [ok(await second.call_tool("get_run", {"run_id": run_id})) for run_id in run_ids]
    async with DurableBackend(state_home) as backend:
        outcome = await backend.list_outcome(list_id)
        rows = [await backend.status(run_id) for run_id in run_ids]
    assert pending["status"] in ("pending", "queued", "running") and pending["list_id"] == list_id
    assert last["status"] == "success" and last["result"] == "GAMMA-DONE"
    assert [r["status"] for r in each] == ["success"] * 3
    assert outcome.status == "success" and [m.run_id for m in outcome.members] == run_ids
    assert [m.result.result if m.result else None for m in outcome.members] == [
        "ALPHA-DONE wrote the parser",
        "BETA-DONE",
        "GAMMA-DONE",
    ]
    assert all(a.finished_at and b.started_at and a.finished_at <= b.started_at for a, b in itertools.pairwise(rows))
    assert "ALPHA-DONE wrote the parser" in (rows[1].context or "")  # member 2 was told what member 1 produced
    assert any("ALPHA-DONE" in r.text and "task BETA" in r.text for r in fake_api.message_requests)
    await nothing_of_the_list_left(run_ids, supervisor)


async def test_a_new_server_cancels_members_of_a_list_it_did_not_start(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.routes = {**LIST_ROUTES, "ALPHA": scenarios.slow(steps=30, seconds=1)}
    async with session(params) as first:
        list_id, run_ids = await start_list(first, workdir)
    supervisor = await supervisor_of(state_home, run_ids[0])
    assert marked_processes(run_ids[0]), "the list stopped with the server (stdin EOF)"
    async with session(params) as second:
        skipped = ok(await second.call_tool("cancel_run", {"run_id": run_ids[2], "reason": "not needed"}))
        started = time.monotonic()
        cancelled = ok(await second.call_tool("cancel_run", {"run_id": run_ids[0], "reason": "too slow"}))
        cancel_s = time.monotonic() - started
        second_member = ok(await second.call_tool("wait_run", {"run_id": run_ids[1], "timeout_s": 30}))
    async with DurableBackend(state_home) as backend:
        outcome = await backend.list_outcome(list_id, timeout_s=30)
    assert skipped["status"] == "skipped" and "not needed" in skipped["message"]
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled via cancel_run: too slow"
    assert cancel_s < 5, cancel_s
    assert second_member["status"] == "skipped"  # stop_on_error: the list stopped at the cancelled member
    assert outcome.status == "cancelled" and [m.state for m in outcome.members] == ["finished", "skipped", "skipped"]
    assert not any("task BETA" in r.text or "task GAMMA" in r.text for r in fake_api.message_requests)
    await nothing_of_the_list_left(run_ids, supervisor)


async def test_cancel_list_from_another_process_cancels_the_running_member_and_skips_the_rest(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.routes = {**LIST_ROUTES, "ALPHA": scenarios.slow(steps=30, seconds=1)}
    async with session(params) as client:
        list_id, run_ids = await start_list(client, workdir)
        supervisor = await supervisor_of(state_home, run_ids[0])
        async with DurableBackend(state_home) as backend:  # this test process: not the list's front end
            assert await backend.cancel_list(list_id, "stop the whole list")
            outcome = await backend.list_outcome(list_id)
            again = await backend.cancel_list(list_id, "again")
        rows = [ok(await client.call_tool("get_run", {"run_id": run_id})) for run_id in run_ids]
    assert outcome.status == "cancelled" and (outcome.skipped, outcome.running, outcome.pending) == (2, 0, 0)
    assert [r["status"] for r in rows] == ["cancelled", "skipped", "skipped"]
    assert rows[0]["error"] == "stop the whole list" and again is False
    await nothing_of_the_list_left(run_ids, supervisor)


async def test_sigkilled_list_supervisor_its_member_is_lost_the_rest_skipped_nothing_left(
    params: StdioServerParameters, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.routes = {**LIST_ROUTES, "ALPHA": scenarios.slow(steps=30, seconds=1)}
    async with session(params) as first:
        list_id, run_ids = await start_list(first, workdir)
    supervisor = await supervisor_of(state_home, run_ids[0])
    os.kill(supervisor, signal.SIGKILL)
    await nothing_of_the_list_left(run_ids, supervisor)  # claude and its tools went with it (pdeathsig)
    async with session(params) as second:  # its start reconciles: the list and its members are recorded
        each = [ok(await second.call_tool("get_run", {"run_id": run_id})) for run_id in run_ids]
    async with DurableBackend(state_home) as backend:
        outcome = await backend.list_outcome(list_id)
    assert [r["status"] for r in each] == ["lost", "skipped", "skipped"]
    assert f"process {supervisor}" in (each[0]["error"] or "")
    assert outcome.status == "failed" and [m.state for m in outcome.members] == ["finished", "skipped", "skipped"]
    assert all(f"supervisor (process {supervisor}) died" in (m.reason or "") for m in outcome.members[1:])
