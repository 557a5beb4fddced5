"""The Temporal backend end to end: a real dev server, two real worker processes, the real `claude` against the
fake Messages API. Each test asserts what a user of the MCP server or the CLI would notice."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from pathlib import Path

import anyio
import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client

from cc_executor.backends.protocol import ListRequest, RunEvent, RunFilter, TranscriptQuery
from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.models import CCExecutorConfig, RunRecord, RunRequest, RunStatus
from cc_executor.registry.store import RunStore
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.temporal_cluster import HEARTBEAT_TIMEOUT_S, Workers, run_processes, until_no_run_processes

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "cc_executor.cli"]


@pytest.fixture
def backend(temporal_backend: TemporalBackend) -> TemporalBackend:
    return temporal_backend


def with_bash(config: CCExecutorConfig) -> CCExecutorConfig:
    return config.model_copy(update={"allowed_tools": ["Bash"]})


async def until_running(backend: TemporalBackend, run_id: str, timeout_s: float = 30.0) -> RunRecord:
    """The row once a worker has started the run and reported progress."""
    with anyio.fail_after(timeout_s):
        while True:
            record = await backend.status(run_id)
            if record.worker and record.status is RunStatus.RUNNING and record.last_progress:
                return record
            await anyio.sleep(0.2)


async def test_a_run_end_to_end_with_events_in_order(
    backend: TemporalBackend, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.write_file("hello.txt", "hi from a worker\n")
    run_id = await backend.submit(RunRequest(task="write hello.txt", cwd=workdir, config=config))
    assert await backend.submit(RunRequest(task="write hello.txt", cwd=workdir, config=config, run_id=run_id)) == run_id

    events: list[RunEvent] = [event async for event in backend.events(run_id)]

    seqs = [event.seq for event in events]
    assert seqs == sorted(set(seqs)), seqs
    assert events[-1].kind == "finished" and events[-1].status is RunStatus.SUCCESS
    assert any(e.progress is not None and e.progress.kind == "started" for e in events)
    result = await backend.wait(run_id, 10)
    assert result is not None and result.ok, result
    assert result.worker in ("w1", "w2") and result.attempts == 1
    assert result.files_created == ["hello.txt"]  # the worker's own before/after diff
    assert len(fake_api.message_requests) == 2  # one workflow, one run: the duplicate submit started nothing
    record = await backend.status(run_id)
    assert record.status is RunStatus.SUCCESS and record.worker == result.worker and record.backend == "temporal"
    page = await backend.transcript(run_id, TranscriptQuery(limit=5000))
    assert not page.running and page.next_cursor is None and any('"Write"' in line for line in page.lines)
    listed = await backend.list_runs(RunFilter())
    assert [r.run_id for r in listed] == [run_id]


async def test_a_task_list_spreads_over_both_workers(
    backend: TemporalBackend, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=1, seconds=2.0, final="step done")
    requests = [
        RunRequest(
            task=f"task {i}", cwd=workdir, config=with_bash(config), list_id="11111111-2222-4333-8444-555555555555"
        )
        for i in range(4)
    ]
    list_id = await backend.submit_list(
        ListRequest(list_id=requests[0].list_id or "", requests=requests, mode="parallel", max_parallel=4)
    )
    with anyio.fail_after(90):
        events = [event async for event in backend.events(list_id)]  # the list's own events, as the MCP tool reads
    outcome = await backend.list_outcome(list_id, timeout_s=90)

    assert events[-1].kind == "finished" and [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.progress.list_index for e in events if e.progress is not None} == {1, 2, 3, 4}

    assert outcome.finished
    results = [m.result for m in outcome.members if m.result is not None]
    assert [r.status for r in results] == [RunStatus.SUCCESS] * 4, [r.error for r in results]
    assert {r.worker for r in results} == {"w1", "w2"}  # each worker takes two at a time


async def test_cancel_stops_the_tree_on_the_worker(
    backend: TemporalBackend, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=20, seconds=2.0, final="never")
    run_id = await backend.submit(RunRequest(task="twenty slow steps", cwd=workdir, config=with_bash(config)))
    await until_running(backend, run_id)
    with anyio.fail_after(20):
        await until_marked(run_id, "sleep 2")
    requests_before = len(fake_api.message_requests)

    assert (await backend.cancel(run_id, "cancelled: the test changed its mind")).cancelled

    record = await backend.status(run_id)
    assert record.status is RunStatus.CANCELLED and record.error == "cancelled: the test changed its mind"
    assert await until_no_run_processes(run_id, timeout_s=5) == []
    await anyio.sleep(1)
    assert len(fake_api.message_requests) == requests_before  # no API request after the cancel
    assert not (await backend.cancel(run_id, "again")).cancelled  # already ended


async def test_a_killed_worker_s_run_completes_on_the_other(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    fake_api.scenario = scenarios.slow(steps=3, seconds=1.0, final="survived")
    run_id = await backend.submit(RunRequest(task="three slow steps", cwd=workdir, config=with_bash(config)))
    first = await until_running(backend, run_id)
    assert first.worker is not None
    other = "w2" if first.worker == "w1" else "w1"

    attempt_1 = set(run_processes(run_id))
    assert attempt_1
    temporal_workers.kill(first.worker)
    killed_at = time.monotonic()
    with anyio.fail_after(10):  # attempt 1's tree dies with its worker (pdeathsig), before attempt 2 may start
        await until_gone(attempt_1, run_id)

    result = await backend.wait(run_id, 60)
    assert result is not None and result.ok, result
    assert result.attempts == 2 and result.worker == other
    assert time.monotonic() - killed_at < HEARTBEAT_TIMEOUT_S + 30
    attempts = await _attempts(backend, run_id)
    assert [(a["n"], a["status"]) for a in attempts] == [(1, "lost"), (2, "success")]


async def test_a_stalled_worker_s_late_attempt_is_fenced_off(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    fake_api.scenario = scenarios.slow(steps=3, seconds=1.5, final="the current attempt's answer")
    run_id = await backend.submit(RunRequest(task="three slow steps", cwd=workdir, config=with_bash(config)))
    first = await until_running(backend, run_id)
    assert first.worker is not None
    stalled = first.worker

    temporal_workers.signal(stalled, signal.SIGSTOP)  # alive but silent: a partitioned or frozen machine
    try:
        with anyio.fail_after(30):
            await until_moved(backend, run_id, stalled)
    finally:
        temporal_workers.signal(stalled, signal.SIGCONT)  # attempt 1 wakes up and tries to go on

    result = await backend.wait(run_id, 60)
    assert result is not None and result.ok and result.result == "the current attempt's answer"
    # Attempt 1's late result did not count. (The frozen worker's open poll may have been handed attempt 2 as
    # well, which then timed out the same way: so at least two attempts.)
    assert result.attempts >= 2 and result.worker != stalled
    # Attempt 1 learns on its next heartbeat that it is no longer the run's, and stops its tree.
    assert await until_no_run_processes(run_id, timeout_s=15) == []
    attempts = await _attempts(backend, run_id)
    statuses = [(a["n"], a["status"]) for a in attempts]
    assert statuses == [(n, "lost") for n in range(1, result.attempts)] + [(result.attempts, "success")]


async def test_a_restarted_front_end_finds_its_run(
    temporal_workers: Workers, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    temporal_workers.ensure("w1", "w2")
    fake_api.scenario = scenarios.slow(steps=2, seconds=1.0, final="outlived the front end")
    async with TemporalBackend(temporal_workers.settings, poll_s=0.2) as first:
        run_id = await first.submit(RunRequest(task="outlive the front end", cwd=workdir, config=with_bash(config)))
        await until_running(first, run_id)
    async with TemporalBackend(temporal_workers.settings, poll_s=0.2) as second:
        assert (await second.status(run_id)).status is RunStatus.RUNNING  # not marked lost: Temporal owns it
        result = await second.wait(run_id, 60)
        assert result is not None and result.ok and result.result == "outlived the front end"
        assert (await second.status(run_id)).status is RunStatus.SUCCESS


@pytest.mark.parametrize(
    ("limits", "status"),
    [({"timeout": 4.0}, RunStatus.TIMEOUT), ({"idle_timeout": 3.0}, RunStatus.IDLE_TIMEOUT)],
)
async def test_wall_and_idle_timeouts_kill_the_tree_on_the_worker(
    backend: TemporalBackend,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
    limits: dict[str, float],
    status: RunStatus,
) -> None:
    fake_api.scenario = scenarios.silent(60)
    request = RunRequest(task="say nothing", cwd=workdir, config=config.model_copy(update=limits))
    run_id = await backend.submit(request)

    result = await backend.wait(run_id, 60)

    assert result is not None and result.status is status, result
    assert result.attempts == 1  # a timeout is not retried
    assert await until_no_run_processes(run_id, timeout_s=5) == []


async def test_a_cwd_missing_on_the_worker_is_refused_clearly(
    backend: TemporalBackend, config: CCExecutorConfig, tmp_path: Path
) -> None:
    gone = tmp_path / "only-on-the-front-end"
    gone.mkdir()
    run_id = await backend.submit(RunRequest(task="anything", cwd=gone, config=config))
    gone.rmdir()  # the front end had it; the workers do not

    result = await backend.wait(run_id, 30)

    assert result is not None and result.status is RunStatus.FAILED
    assert result.error_class == "InvalidRequestError"
    assert f"cannot find the run's cwd {str(gone)!r}" in (result.error or "")


async def until_moved(backend: TemporalBackend, run_id: str, away_from: str) -> RunRecord:
    """Until a later attempt of the run has started on another worker than ``away_from``."""
    while True:
        record = await backend.status(run_id)
        if record.attempts >= 2 and record.worker not in (None, away_from):
            return record
        await anyio.sleep(0.2)


async def until_gone(pids: set[int], run_id: str) -> None:
    """Until none of ``pids`` still carries the run's marker."""
    left = pids & set(run_processes(run_id))
    while left:
        await anyio.sleep(0.1)
        left = pids & set(run_processes(run_id))


async def until_marked(run_id: str, text: str) -> None:
    """Until one of the run's processes has ``text`` in its command line (its Bash tool is running)."""
    found = False
    while not found:
        await anyio.sleep(0.2)
        found = any(text in " ".join(_cmdline(pid)) for pid in run_processes(run_id))


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


async def _attempts(backend: TemporalBackend, run_id: str) -> list[dict[str, object]]:
    store: RunStore = await backend.store()
    return await store.list_attempts(run_id)


async def test_heartbeats_keep_coming_while_claude_is_silent(
    backend: TemporalBackend, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.silent(7.0)
    run_id = await backend.submit(RunRequest(task="think quietly", cwd=workdir, config=config))
    handle = (await backend.client()).get_workflow_handle(run_id)
    beats: set[str] = set()
    arrivals: list[float] = []

    async def sample_heartbeats() -> None:
        while True:
            pending = (await handle.describe()).raw_description.pending_activities
            if pending and pending[0].HasField("last_heartbeat_time"):
                beats.add(pending[0].last_heartbeat_time.ToJsonString())
            await anyio.sleep(0.25)

    async with anyio.create_task_group() as group:
        group.start_soon(sample_heartbeats)
        async for event in backend.events(run_id):
            arrivals.append(time.monotonic())
            if event.kind == "finished":
                assert event.status is RunStatus.SUCCESS
        group.cancel_scope.cancel()

    assert len(beats) >= 4  # the activity heartbeats on its timer (every second) while claude says nothing
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps) <= 6.5, gaps  # progress (the engine's "still working" line) at least every 5 s, plus a poll


async def test_a_live_transcript_comes_from_its_worker_and_a_gone_worker_is_named(
    temporal_workers: Workers, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    temporal_workers.ensure("w1", "w2")
    fake_api.scenario = scenarios.slow(steps=8, seconds=1.5, final="never")
    once = with_bash(config).model_copy(update={"max_attempts": 1})
    async with TemporalBackend(temporal_workers.settings, poll_s=0.2, page_timeout_s=2.0) as backend:
        run_id = await backend.submit(RunRequest(task="eight slow steps", cwd=workdir, config=once))
        record = await until_running(backend, run_id)
        live = await backend.transcript(run_id, TranscriptQuery(limit=5000))
        assert live.running and any('"subtype":"init"' in line.replace(" ", "") for line in live.lines)

        assert record.worker is not None
        temporal_workers.kill(record.worker)
        result = await backend.wait(run_id, 30)
        assert result is not None and result.status is RunStatus.LOST and result.error_class == "RunLostError"
        gone = await backend.transcript(run_id, TranscriptQuery())

    assert f"kept by worker {record.worker}, which did not answer" in gone.lines[0]
    assert len(gone.lines) > 1  # and the latest progress this front end had


async def test_sigterm_lets_a_worker_hand_its_run_back(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    fake_api.scenario = scenarios.slow(steps=4, seconds=2.0, final="finished elsewhere")
    run_id = await backend.submit(RunRequest(task="four slow steps", cwd=workdir, config=with_bash(config)))
    first = await until_running(backend, run_id)
    assert first.worker is not None

    exited = temporal_workers.kill(first.worker, signal.SIGTERM)  # graceful timeout 5 s: shorter than the run

    assert exited
    log = temporal_workers.log(first.worker).read_text()
    assert f"worker {first.worker} got SIGTERM: taking no new runs" in log
    assert log.rstrip().endswith(f"worker {first.worker} stopped")  # a clean exit, not a crash
    result = await backend.wait(run_id, 60)
    assert result is not None and result.ok and result.result == "finished elsewhere"
    assert result.attempts == 2 and result.worker != first.worker


async def test_the_cli_runs_a_task_on_a_worker(
    temporal_workers: Workers, fake_api: FakeAnthropic, cli_env: dict[str, str], claude_bin: Path, workdir: Path
) -> None:
    # The worker's own environment has the login (here: the fake API) and `claude`; the front end has neither.
    settings = temporal_workers.dedicated("cli", env={**cli_env, "CC_EXECUTOR_CLAUDE": str(claude_bin)})
    fake_api.scenario = scenarios.text("hello from a worker")
    env = {
        **os.environ,
        "CC_EXECUTOR_BACKEND": "temporal",
        "CC_EXECUTOR_TEMPORAL_ADDRESS": settings.address,
        "CC_EXECUTOR_TEMPORAL_TASK_QUEUE": settings.task_queue,
    }
    done = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "cc_executor.cli",
            "run",
            "say hello",
            "-C",
            str(workdir),
            "--model",
            "claude-sonnet-4-5",
        ],
        env=env,
        check=False,
    )

    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert done.stdout.decode().strip() == "hello from a worker"
    assert "✓ success" in stderr and "worker cli" in stderr


async def test_the_mcp_server_runs_tasks_on_workers(
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temporal_workers.ensure("w1", "w2")
    monkeypatch.setenv("CC_EXECUTOR_TEMPORAL_ADDRESS", temporal_workers.settings.address)
    monkeypatch.setenv("CC_EXECUTOR_TEMPORAL_TASK_QUEUE", temporal_workers.settings.task_queue)
    fake_api.scenario = scenarios.write_file("notes.md", "# notes\n")
    settings = ServerSettings(
        cli_env=config.env, claude_path=config.claude_path, model=config.model, return_after_s=60, backend="temporal"
    )
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with Client(create_server(settings)) as client:
        answer = await client.call_tool(
            "execute_task", {"task": "write notes.md", "cwd": str(workdir)}, progress_callback=on_progress
        )
        content = answer.structured_content
        assert not answer.is_error and content is not None, answer
        assert content["status"] == "success" and content["files_created"] == ["notes.md"]
        assert content["worker"] in ("w1", "w2") and content["attempts"] == 1
        assert any("Write" in message for message in seen), seen  # the run's progress, from the worker
        listed = await client.call_tool("list_runs", {})
        fake_api.routes = {"first of two": scenarios.text("FIRST-DONE"), "second of two": scenarios.text("second")}
        tasks = [{"task": "first of two"}, {"task": "second of two"}]
        seen.clear()
        answer = await client.call_tool(
            "execute_task_list", {"tasks": tasks, "cwd": str(workdir)}, progress_callback=on_progress
        )
        in_order = answer.structured_content
    assert listed.structured_content is not None and content["run_id"] in str(listed.structured_content)
    assert not answer.is_error and in_order is not None, answer
    assert in_order["status"] == "success" and [t["result"] for t in in_order["tasks"]] == ["FIRST-DONE", "second"]
    assert "FIRST-DONE" in fake_api.message_requests[-1].text  # the sequential list passed the result forward
    assert any(message.startswith("[2/2] ") for message in seen), seen


async def test_a_worker_sharing_the_front_end_s_state_dir_keeps_its_own_registry(
    temporal_workers: Workers, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """docs/scale-out.md's one-machine example: worker and front end with the same CC_EXECUTOR_HOME. The worker's
    copy of a run lives in <home>/worker, so the front end's row stays its own (a Temporal row) all along."""
    from cc_executor.backends.temporal.worker import transcript_queue

    temporal_workers.ensure("w1")
    home = temporal_workers.directory / "w1"  # w1's CC_EXECUTOR_HOME, shared by this front end
    fake_api.scenario = scenarios.slow(steps=2, seconds=1, final="shared home done")
    request = RunRequest(task="two steps", cwd=workdir, config=with_bash(config))
    on_w1 = transcript_queue(temporal_workers.settings.task_queue, "w1")
    async with TemporalBackend(
        temporal_workers.settings, store_path=home / "runs.db", transcript_dir=home / "transcripts", poll_s=0.2
    ) as front_end:
        run_id = await front_end.submit(request, activity_queue=on_w1)
        live = await until_running(front_end, run_id)
        result = await front_end.wait(run_id, 60)
        record = await front_end.status(run_id)
    assert live.backend == "temporal" and live.worker == "w1"
    assert result is not None and result.result == "shared home done"
    assert record.backend == "temporal" and record.transcript_path == str(home / "transcripts" / f"{run_id}.jsonl")
    worker_store = await RunStore.connect(home / "worker" / "runs.db")
    try:
        worker_copy = await worker_store.get(run_id)
    finally:
        await worker_store.close()
    assert worker_copy.backend != "temporal" and worker_copy.status is RunStatus.SUCCESS
    assert Path(worker_copy.transcript_path or "").parent == home / "worker" / "transcripts"
