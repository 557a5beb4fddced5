"""DurableBackend: runs owned by per-run supervisors outlive the front end that started them (real CLI, fake API).

Each test counts processes afterwards: nothing carrying the run's marker, and no supervisor, may be left."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import anyio
import pytest

from cc_executor import cc_execute
from cc_executor.api import build_request
from cc_executor.backends.durable import DurableBackend, RunHandle
from cc_executor.backends.protocol import ListRequest, RunEvent, RunFilter
from cc_executor.engine.process import marked_processes, pid_alive
from cc_executor.errors import CCExecutorError, InvalidRequestError, RunNotFoundError
from cc_executor.models import CCExecutorConfig, RunRequest, RunStatus
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def slow_request(config: CCExecutorConfig, workdir: Path) -> RunRequest:
    return build_request("long job", config=config.model_copy(update={"allowed_tools": ["Bash"]}), cwd=workdir)


async def until(predicate_s: float, check: object, what: str) -> None:
    deadline = time.monotonic() + predicate_s
    assert callable(check)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {predicate_s}s")
        await anyio.sleep(0.05)


async def until_running(backend: DurableBackend, run_id: str) -> int:
    """Wait until claude runs a tool; return the supervisor's pid."""
    with anyio.fail_after(30):
        while True:
            record = await backend.status(run_id)
            if "Bash" in (record.last_progress or ""):
                assert record.owner_pid is not None
                return record.owner_pid
            await anyio.sleep(0.1)


async def nothing_left(run_id: str, supervisor: int, timeout_s: float = 10) -> None:
    await until(timeout_s, lambda: not marked_processes(run_id), f"processes of run {run_id} still alive")
    await until(timeout_s, lambda: not pid_alive(supervisor), f"supervisor {supervisor} still alive")


async def test_a_run_goes_on_without_its_front_end_and_any_later_one_gets_the_result(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=3, seconds=1, final="survived")
    request = slow_request(config, workdir)
    async with DurableBackend(state_home) as first:
        run_id = await first.submit(request)
        assert await first.submit(request) == run_id  # idempotent: one run, one supervisor
        supervisor = await until_running(first, run_id)
    assert marked_processes(run_id), "claude stopped when the front end closed"
    async with DurableBackend(state_home) as later:
        result = await later.wait(run_id, 60)
        events = [event async for event in later.events(run_id)]
        resumed = [event async for event in later.events(run_id, after=events[-3].seq)]
    assert result is not None and result.status is RunStatus.SUCCESS and result.result == "survived"
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))
    assert events[-1].kind == "finished" and events[-1].status is RunStatus.SUCCESS
    assert any("Bash: sleep 1" in (e.progress.message if e.progress else "") for e in events)
    assert resumed == events[-2:]
    await nothing_left(run_id, supervisor)


async def test_sigkilled_supervisor_takes_claude_and_its_tools_and_the_row_says_lost(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=20, seconds=1)
    async with DurableBackend(state_home) as backend:
        run_id = await backend.submit(slow_request(config, workdir))
        supervisor = await until_running(backend, run_id)
        os.kill(supervisor, signal.SIGKILL)
        started = time.monotonic()
        with anyio.fail_after(10):
            result = await backend.wait(run_id, 10)
        noticed_s = time.monotonic() - started
        finished: list[RunEvent] = [e async for e in backend.events(run_id) if e.kind == "finished"]
    assert result is not None and result.status is RunStatus.LOST
    assert f"supervisor (process {supervisor}) died" in (result.error or "")
    assert noticed_s < 5, noticed_s
    assert len(finished) == 1 and finished[0].status is RunStatus.LOST
    await nothing_left(run_id, supervisor, timeout_s=5)


async def test_cancel_from_another_front_end_stops_the_tree_within_3_s(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=20, seconds=1)
    async with DurableBackend(state_home) as first:
        run_id = await first.submit(slow_request(config, workdir))
        supervisor = await until_running(first, run_id)
    async with DurableBackend(state_home, kill_grace_s=1.0) as other:
        started = time.monotonic()
        report = await other.cancel(run_id, "cancelled: from another front end")
        gone_s = time.monotonic() - started
        record = await other.status(run_id)
        again = await other.cancel(run_id, "cancelled: second")
    assert report.cancelled and report.status is RunStatus.CANCELLED and report.remaining == 0
    assert gone_s < 3, gone_s
    assert record.status is RunStatus.CANCELLED and record.error == "cancelled: from another front end"
    assert not again.cancelled
    await nothing_left(run_id, supervisor, timeout_s=5)


async def test_a_queued_run_cancelled_before_it_got_a_slot_ends_at_once(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=20, seconds=1)
    async with DurableBackend(state_home, max_concurrent=1, kill_grace_s=1.0) as backend:
        running = await backend.submit(slow_request(config, workdir))
        first_supervisor = await until_running(backend, running)
        queued = await backend.submit(slow_request(config, workdir))
        with anyio.fail_after(15):
            while "queued" not in ((await backend.status(queued)).last_progress or ""):  # noqa: ASYNC110
                await anyio.sleep(0.1)
        queued_supervisor = (await backend.status(queued)).owner_pid
        report = await backend.cancel(queued, "cancelled: not needed")
        result = await backend.wait(queued, 5)
        await backend.cancel(running, "cancelled: done with the test")
    assert report.cancelled and result is not None and result.status is RunStatus.CANCELLED
    assert result.error == "cancelled: not needed"
    assert queued_supervisor is not None
    await nothing_left(queued, queued_supervisor)
    await nothing_left(running, first_supervisor)


async def test_cc_execute_detach_returns_a_handle_at_once(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=1, seconds=0.5, final="detached and done")
    started = time.monotonic()
    handle = await cc_execute(
        "job", config=config.model_copy(update={"allowed_tools": ["Bash"]}), cwd=workdir, detach=True
    )
    returned_s = time.monotonic() - started
    result = await RunHandle(handle.run_id).wait(60)  # rebuilt from the id alone
    progress = [e.progress.message async for e in handle.events() if e.progress is not None]
    assert returned_s < 2, returned_s
    assert result is not None and result.status is RunStatus.SUCCESS and result.result == "detached and done"
    assert any("Bash: sleep 0.5" in m for m in progress), progress
    with pytest.raises(InvalidRequestError, match="detach=True returns at once"):
        await cc_execute("job", config=config, cwd=workdir, detach=True, on_progress=print)  # type: ignore[call-overload]
    assert (await handle.status()).owner_pid is not None
    await nothing_left(handle.run_id, (await handle.status()).owner_pid or 0)


async def test_pruning_a_finished_durable_run_takes_its_request_and_events_too(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    from cc_executor.registry.store import RunStore

    fake_api.scenario = scenarios.text("short")
    async with DurableBackend(state_home) as backend:
        run_id = await backend.submit(build_request("short job", config=config, cwd=workdir))
        result = await backend.wait(run_id, 60)
        supervisor = (await backend.status(run_id)).owner_pid or 0
    assert result is not None and result.status is RunStatus.SUCCESS
    await nothing_left(run_id, supervisor)
    async with RunStore.open(state_home / "runs.db") as store:
        assert await store.events_after(run_id, 0) and await store.load_request(run_id)
        assert await store.delete_runs([run_id]) == 1
        assert await store.events_after(run_id, 0) == [] and await store.load_request(run_id) is None


def _list_supervisors(home: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "cc_executor.engine.list_supervisor" in line and str(home) in line]


async def test_a_parallel_list_goes_on_without_its_front_end_within_max_parallel(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=2, seconds=1, final="member done")
    bash = config.model_copy(update={"allowed_tools": ["Bash"]})
    list_id = str(uuid.uuid4())
    requests = [build_request(f"job {i}", config=bash, cwd=workdir, list_id=list_id) for i in range(3)]
    async with DurableBackend(state_home) as first:
        await first.submit_list(ListRequest(list_id=list_id, requests=requests, mode="parallel", max_parallel=2))
    async with DurableBackend(state_home) as second:  # the front end that submitted it has gone
        events = [e async for e in second.events(list_id)]
        outcome = await second.list_outcome(list_id)
        rows = [await second.status(r.run_id) for r in requests]
    assert outcome.status == "success" and outcome.mode == "parallel" and outcome.succeeded == 3
    assert events[-1].kind == "finished" and any("[3/3]" in (e.progress.message if e.progress else "") for e in events)
    spans = [(r.started_at or "", r.finished_at or "") for r in rows]
    at_once = max(sum(s <= start < f for s, f in spans) for start, _ in spans)
    assert at_once == 2, spans  # two ran side by side, never three
    assert all(r.context is None for r in rows)  # parallel members are not told about each other
    await until(10, lambda: not _list_supervisors(state_home), "the list's supervisor is still running")
    assert not any(marked_processes(r.run_id) for r in requests)


async def test_a_list_with_a_refused_member_starts_and_records_nothing(
    config: CCExecutorConfig, workdir: Path, state_home: Path
) -> None:
    missing = config.model_copy(update={"claude_path": str(workdir / "no-claude")})
    list_id = str(uuid.uuid4())
    requests = [
        build_request("fine", config=config, cwd=workdir, list_id=list_id),
        build_request("refused", config=missing, cwd=workdir, list_id=list_id),
    ]
    async with DurableBackend(state_home) as backend:
        with pytest.raises(CCExecutorError, match="no-claude"):
            await backend.submit_list(ListRequest(list_id=list_id, requests=requests))
        with pytest.raises(RunNotFoundError):
            await backend.list_outcome(list_id)
        assert await backend.list_runs(RunFilter()) == []
    assert not _list_supervisors(state_home)
    assert not (state_home / "supervisors").exists() or not list((state_home / "supervisors").iterdir())


async def test_a_dead_list_supervisor_is_reconciled_at_the_next_start_and_pruning_takes_the_ended_list(
    config: CCExecutorConfig, fake_api: FakeAnthropic, workdir: Path, state_home: Path
) -> None:
    from cc_executor.engine.recovery import open_store

    fake_api.scenario = scenarios.slow(steps=30, seconds=1)
    list_id = str(uuid.uuid4())
    requests = [slow_request(config, workdir).model_copy(update={"list_id": list_id}) for _ in range(2)]
    async with DurableBackend(state_home) as backend:
        await backend.submit_list(ListRequest(list_id=list_id, requests=requests))
        with anyio.fail_after(30):
            while (await backend.list_outcome(list_id)).running == 0:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        supervisor = await until_running(backend, requests[0].run_id)
    os.kill(supervisor, signal.SIGKILL)  # nobody is looking: only the next front end's start can notice
    await nothing_left(requests[0].run_id, supervisor)
    async with open_store(state_home / "runs.db") as store:  # what every front end does first
        row = await store.get_list(list_id)
        statuses = [(await store.get(r.run_id)).status for r in requests]
        assert row is not None and row.status == "failed" and f"process {supervisor}" in (row.error or "")
        assert statuses == [RunStatus.LOST, RunStatus.SKIPPED]
        assert (await store.list_events_after(list_id, 0))[-1][1] == "finished"
        assert await store.delete_runs([requests[0].run_id]) == 1
        assert await store.get_list(list_id) is not None  # a member is left
        assert await store.delete_runs([requests[1].run_id]) == 1
        assert await store.get_list(list_id) is None and await store.list_events_after(list_id, 0) == []
        assert await store.list_of(requests[0].run_id) is None
