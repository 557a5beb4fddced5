"""Every run ends in a final row, whatever fails on cc-executor's own side; a cancel from another process that came
first is never overwritten; a dead owner is told from a reused pid. Real CLI against the fake API where a process is
involved; every test ends by checking that no process of the run survives."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client

from cc_executor import (
    CCExecutorConfig,
    ExecutorError,
    LocalBackend,
    RunCancelledError,
    RunNotFoundError,
    RunStatus,
    build_request,
    cc_execute,
    open_store,
)
from cc_executor.engine import process, runner
from cc_executor.engine.events import AssistantText, Event
from cc_executor.engine.slots import RunSlots
from cc_executor.models import ExecutionResult, ProgressUpdate
from cc_executor.paths import db_path
from cc_executor.registry.store import RunStore
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio


def rmtree_command(path: Path) -> str:
    """A Bash command the CLI runs without asking (a plain `rm -rf` of the cwd is refused by claude itself)."""
    return f"python3 -c \"import shutil; shutil.rmtree('{path}')\""


def with_bash(config: CCExecutorConfig) -> CCExecutorConfig:
    return config.model_copy(update={"allowed_tools": ["Bash"]})


async def test_a_task_that_deletes_its_own_cwd_ends_failed_and_says_so(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """Before: the after-snapshot raised FileNotFoundError out of cc_execute and the row stayed `running`."""
    (workdir / "notes.txt").write_text("x")
    (workdir / "src").mkdir()
    (workdir / "src" / "app.py").write_text("y")
    fake_api.scenario = scenarios.bash(rmtree_command(workdir))

    with pytest.raises(ExecutorError, match=r"the run's cwd .* was removed while it ran") as caught:
        await cc_execute("clean up", cwd=workdir, config=with_bash(config))

    result = caught.value.result
    assert result is not None and result.status is RunStatus.FAILED and result.error_class == "ExecutorError"
    assert result.files_deleted == ["notes.txt", "src/app.py"] and "2 file(s)" in (result.error or "")
    assert result.result == "ran it" and result.session_id  # what claude produced is kept
    async with open_store() as store:
        row = await store.get(result.run_id)
    assert row.status is RunStatus.FAILED and row.finished_at and row.error == result.error
    assert process.marked_processes(result.run_id) == []


@pytest.mark.parametrize("track_files", [True, False])  # fails at the before-snapshot, or at spawn
async def test_a_cwd_removed_while_queued_fails_before_spawning(
    fake_api: FakeAnthropic, config: CCExecutorConfig, tmp_path: Path, track_files: bool
) -> None:
    fake_api.scenario = scenarios.slow(steps=1, seconds=1)
    first_cwd, second_cwd = tmp_path / "first", tmp_path / "second"
    first_cwd.mkdir()
    second_cwd.mkdir()
    slots = RunSlots(1)
    results: list[ExecutionResult] = []

    async def remove_when_queued(update: ProgressUpdate) -> None:
        if update.kind == "queued":
            second_cwd.rmdir()

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: cc_execute("first", cwd=first_cwd, config=with_bash(config), slots=slots))
        await anyio.sleep(0.3)
        results.append(
            await cc_execute(
                "second",
                cwd=second_cwd,
                config=config.model_copy(update={"track_files": track_files}),
                slots=slots,
                on_progress=remove_when_queued,
                check=False,
            )
        )
    second = results[0]
    assert second.status is RunStatus.FAILED and second.error_class == "ExecutorError"
    assert "was removed before claude started" in (second.error or "") and second.exit_code is None
    async with open_store() as store:
        assert (await store.get(second.run_id)).status is RunStatus.FAILED
    assert process.marked_processes(second.run_id) == []


async def test_a_transcript_that_cannot_be_opened_fails_the_run_recorded(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    broken = config.model_copy(update={"transcript_dir": not_a_dir})
    with pytest.raises(ExecutorError, match="cc-executor failed while running this task") as caught:
        await cc_execute("hi", cwd=workdir, config=broken)
    assert caught.value.result is not None
    async with open_store() as store:
        row = await store.get(caught.value.result.run_id)
    assert row.status is RunStatus.FAILED and row.finished_at and row.error_class == "ExecutorError"
    assert fake_api.message_requests == []  # claude never started


async def test_mcp_waiters_get_the_failed_result_not_running(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """Before: wait_run answered `running` at once, forever."""
    fake_api.scenario = scenarios.bash(rmtree_command(workdir))
    settings = ServerSettings(
        cli_env=config.env, claude_path=config.claude_path, model=config.model, kill_grace_s=1.0, return_after_s=0
    )
    args = {"task": "clean up", "cwd": str(workdir), "allowed_tools": ["Bash"]}
    async with Client(create_server(settings)) as client:
        started = (await client.call_tool("execute_task", args)).structured_content
        assert started is not None
        waited = (await client.call_tool("wait_run", {"run_id": started["run_id"], "timeout_s": 60})).structured_content
    assert waited is not None and waited["status"] == "failed" and waited["error_class"] == "ExecutorError"
    assert "was removed while it ran" in waited["error"]
    assert process.marked_processes(started["run_id"]) == []


async def test_if_even_the_final_write_fails_the_row_is_lost_at_the_next_reconcile(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the database's write lock from the moment claude starts until the run is over: every
    write of the run fails (past SQLite's busy timeout). The caller still gets a failed result; the row can't say so,
    so the next reconcile marks it lost, never leaving it `running`."""
    monkeypatch.setattr(runner, "_FINISH_RETRY_S", (0.0, 0.1))  # fewer retries: each one waits the busy timeout
    fake_api.scenario = scenarios.text("done")
    async with open_store():
        pass  # create the database
    holder = sqlite3.connect(db_path(), isolation_level=None)

    def lock_when_started(update: ProgressUpdate) -> None:
        if update.kind == "started" and not holder.in_transaction:
            holder.execute("BEGIN IMMEDIATE")

    try:
        result = await cc_execute("hi", cwd=workdir, config=config, on_progress=lock_when_started, check=False)
        assert holder.in_transaction
        assert result.status is RunStatus.FAILED and result.error_class == "ExecutorError"
        assert "database is locked" in (result.error or "")
    finally:
        holder.rollback()
        holder.close()
    async with open_store() as store:  # the next reconcile
        row = await store.get(result.run_id)
    assert row.status is RunStatus.LOST and "could not record how the run ended" in (row.error or "")
    assert process.marked_processes(result.run_id) == []


# --- cancel vs finish --------------------------------------------------------------------------------------------

_MARK_CANCELLED = """
import sys, anyio
from cc_executor.registry.store import RunStore
async def main() -> None:
    async with RunStore.open(sys.argv[1]) as store:
        assert await store.mark_cancelled(sys.argv[2], "cancelled from another process")
anyio.run(main)
"""


async def test_a_cancel_from_another_process_is_not_overwritten_by_the_finish(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """Another process marks the row cancelled while claude runs and its signal never lands (the cancel raced the
    exit): claude finishes successfully, yet the row stays cancelled with that process's reason, and keeps the
    run's output. Before: the runner read the row, then wrote `success` over it unconditionally."""
    fake_api.scenario = scenarios.text("finished anyway", delay_s=1.0)
    marked: list[str] = []

    async def on_progress(update: ProgressUpdate) -> None:
        # The runner awaits this callback, so the mark lands while claude runs and before the runner can finish.
        if update.kind == "started" and not marked:
            marked.append(update.run_id)
            done = await anyio.run_process(
                [sys.executable, "-c", _MARK_CANCELLED, str(db_path()), update.run_id], check=False
            )
            assert done.returncode == 0, done.stderr.decode()

    events: list[Event] = []
    with pytest.raises(RunCancelledError, match="cancelled from another process") as caught:
        await cc_execute("hi", cwd=workdir, config=config, on_progress=on_progress, on_event=events.append)
    assert any(isinstance(e, AssistantText) and e.text == "finished anyway" for e in events)
    result = caught.value.result
    assert result is not None and result.status is RunStatus.CANCELLED
    async with open_store() as store:
        row = await store.get(marked[0])
    assert row.status is RunStatus.CANCELLED and row.error == "cancelled from another process"
    assert row.result == "finished anyway" and row.cost_usd  # the run's own details were still recorded
    assert process.marked_processes(marked[0]) == []


async def test_finish_run_is_a_compare_and_set_across_connections(tmp_path: Path) -> None:
    """Two connections to one database, as two processes have: what the second marked final stays final."""
    path = tmp_path / "runs.db"
    request = build_request("x", cwd=tmp_path)
    async with RunStore.open(path) as owner, RunStore.open(path) as other:
        await owner.create_run(request, argv=[], owner_pid=os.getpid())
        assert await other.mark_cancelled(request.run_id, "stop")
        outcome = ExecutionResult(run_id=request.run_id, status=RunStatus.SUCCESS, result="out", cost_usd=0.5)
        assert await owner.finish_run(outcome) is RunStatus.CANCELLED
        row = await other.get(request.run_id)
        assert (row.status, row.error, row.result, row.cost_usd) == (RunStatus.CANCELLED, "stop", "out", 0.5)

        lost = build_request("y", cwd=tmp_path)
        await owner.create_run(lost, argv=[], owner_pid=os.getpid())
        assert await other.mark_lost(lost.run_id, "owner died")
        late = ExecutionResult(run_id=lost.run_id, status=RunStatus.SUCCESS, result="late")
        assert await owner.finish_run(late) is RunStatus.LOST
        assert (await other.get(lost.run_id)).result is None


# --- owner identity ----------------------------------------------------------------------------------------------


async def _row_owned_by(store: RunStore, cwd: Path, **owner: Any) -> str:
    request = build_request("owned", cwd=cwd)
    await store.create_run(request, argv=["claude"], **owner)
    return request.run_id


async def test_reconcile_tells_a_dead_owner_from_a_reused_pid(tmp_path: Path) -> None:
    """A live pid is not proof of a live owner: a row whose pid now belongs to a process that started at another
    time (a restarted container reusing small pids) is marked lost; the live owner's row and this process's stay."""
    live = await anyio.open_process(["sleep", "30"])
    try:
        start, boot = process.process_start(live.pid), process.boot_id()
        assert start is not None and boot is not None
        me = process.own_identity()
        async with open_store() as store:
            reused = await _row_owned_by(store, tmp_path, owner_pid=live.pid, owner_start=start - 1, owner_boot=boot)
            rebooted = await _row_owned_by(store, tmp_path, owner_pid=live.pid, owner_start=start, owner_boot="other")
            alive = await _row_owned_by(store, tmp_path, owner_pid=live.pid, owner_start=start, owner_boot=boot)
            old_row = await _row_owned_by(store, tmp_path, owner_pid=live.pid)  # written before identities existed
            mine = await _row_owned_by(store, tmp_path, owner_pid=me.pid, owner_start=me.start, owner_boot=me.boot)
        async with open_store() as store:  # opening the registry reconciles
            rows = {run_id: await store.get(run_id) for run_id in (reused, rebooted, alive, old_row, mine)}
    finally:
        live.kill()
        await live.wait()
    assert rows[reused].status is RunStatus.LOST and "now belongs to another process" in (rows[reused].error or "")
    assert rows[rebooted].status is RunStatus.LOST
    assert {rows[r].status for r in (alive, old_row, mine)} == {RunStatus.QUEUED}


async def test_a_run_records_its_owner_identity(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text("hi")
    result = await cc_execute("hi", cwd=workdir, config=config)
    async with open_store() as store:
        row = await store.get(result.run_id)
    me = process.own_identity()
    assert (row.owner_pid, row.owner_start, row.owner_boot) == (me.pid, me.start, me.boot)
    assert me.start == process.process_start(os.getpid()) and me.boot


# --- a cancel between the row's INSERT and the run being registered ----------------------------------------------


async def _write_lock_held(backend: LocalBackend, run_id: str) -> sqlite3.Connection:
    """Another connection holding the database's write lock: our INSERT then waits (SQLite's busy timeout). The
    backend opens (and migrates) its registry first, so only the INSERT is held up."""
    with pytest.raises(RunNotFoundError):
        await backend.status(run_id)
    holder = sqlite3.connect(db_path(), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def test_a_cancel_racing_the_insert_cancels_the_run(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """backend.cancel arrives while submit's INSERT is under way (held up by another process's write): the cancel
    queues behind the INSERT, lands before the run is registered, and the run never starts its CLI."""
    fake_api.scenario = scenarios.text("should not run")
    request = build_request("hi", cwd=workdir, config=config)
    reports: list[Any] = []
    async with LocalBackend(kill_grace_s=0.5) as backend, anyio.create_task_group() as group:
        holder = await _write_lock_held(backend, request.run_id)
        group.start_soon(backend.submit, request)
        await anyio.sleep(0.3)  # submit is inside its INSERT now

        async def cancel() -> None:
            reports.append(await backend.cancel(request.run_id, "changed my mind"))

        group.start_soon(cancel)
        await anyio.sleep(0.3)
        holder.rollback()
        holder.close()
        result = await backend.wait(request.run_id, 60)
    assert result is not None and result.status is RunStatus.CANCELLED and result.error == "changed my mind"
    assert reports and reports[0].cancelled
    assert fake_api.message_requests == []
    async with open_store() as store:
        assert (await store.get(request.run_id)).status is RunStatus.CANCELLED
    assert process.marked_processes(request.run_id) == []


async def test_a_submit_cancelled_during_its_insert_leaves_no_queued_row(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """The host gives up on the tool call while its INSERT is under way: the INSERT still lands, and before the fix
    that row stayed `queued` for the server's lifetime (its owner was alive, so no reconcile touched it)."""
    request = build_request("hi", cwd=workdir, config=config)
    async with LocalBackend(kill_grace_s=0.5) as backend:
        holder = await _write_lock_held(backend, request.run_id)

        async def release_later() -> None:
            await anyio.sleep(1.0)
            holder.rollback()
            holder.close()

        async with anyio.create_task_group() as group:
            group.start_soon(release_later)
            with anyio.move_on_after(0.3):
                await backend.submit(request)
        async with open_store() as store:
            row = await store.get(request.run_id)
    assert row.status is RunStatus.CANCELLED and "submitting it was cancelled" in (row.error or "")
    assert fake_api.message_requests == []
