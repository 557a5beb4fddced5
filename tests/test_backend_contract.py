"""The seam's contract: what every backend does the same way, through the Backend protocol only.

Parametrised over backends (``BACKENDS``): a new backend adds its factory there and must pass every test here.
The real CLI runs behind the fake Messages API; every test ends with no process of its runs left.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from cc_executor.api import build_request
from cc_executor.backends import (
    Backend,
    DurableBackend,
    ListRequest,
    LocalBackend,
    ResumeRequest,
    RunEvent,
    RunFilter,
    TranscriptQuery,
)
from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.errors import RunNotFoundError, TranscriptNotFoundError
from cc_executor.models import CCExecutorConfig, RunStatus
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.temporal_cluster import Workers, run_processes

pytestmark = pytest.mark.anyio

BackendFactory = Callable[[int | None], AbstractAsyncContextManager[Backend]]


@asynccontextmanager
async def local_backend(max_concurrent: int | None) -> AsyncIterator[Backend]:
    async with LocalBackend(max_concurrent=max_concurrent, kill_grace_s=0.5) as backend:
        yield backend


@asynccontextmanager
async def durable_backend(max_concurrent: int | None) -> AsyncIterator[Backend]:
    async with DurableBackend(max_concurrent=max_concurrent, kill_grace_s=0.5) as backend:
        yield backend


def temporal_backend(workers: Workers) -> BackendFactory:
    """Runs on the session's Temporal dev server and worker processes (a one-slot worker for ``max_concurrent``)."""

    @asynccontextmanager
    async def make(max_concurrent: int | None) -> AsyncIterator[Backend]:
        workers.ensure("w1", "w2")
        settings = workers.settings if max_concurrent is None else workers.solo()
        async with TemporalBackend(settings, poll_s=0.2) as backend:
            yield backend

    return make


BACKENDS: dict[str, BackendFactory] = {"local": local_backend, "durable": durable_backend}
SESSION_BACKENDS = {"temporal": temporal_backend}  # built from the session's Temporal cluster


@pytest.fixture(params=sorted([*BACKENDS, *SESSION_BACKENDS]))
def make_backend(request: pytest.FixtureRequest) -> BackendFactory:
    if request.param in SESSION_BACKENDS:
        return SESSION_BACKENDS[request.param](request.getfixturevalue("temporal_workers"))
    return BACKENDS[request.param]


def with_bash(config: CCExecutorConfig) -> CCExecutorConfig:
    return config.model_copy(update={"allowed_tools": ["Bash"]})


async def all_events(backend: Backend, run_id: str, after: int = 0) -> list[RunEvent]:
    with anyio.fail_after(60):
        return [event async for event in backend.events(run_id, after=after)]


async def no_processes_left(*run_ids: str) -> None:
    for _ in range(100):
        if not any(run_processes(run_id) for run_id in run_ids):
            return
        await anyio.sleep(0.1)
    raise AssertionError(f"processes of {run_ids} still alive after 10 s")


async def started(backend: Backend, run_id: str) -> None:
    """Until the run's CLI has been spawned (its first progress event)."""
    with anyio.fail_after(30):
        async for event in backend.events(run_id):
            if event.kind == "progress" and event.progress is not None and event.progress.kind != "queued":
                return


async def test_submitting_one_run_id_twice_starts_one_run(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text("once")
    request = build_request("say once", config=config, cwd=workdir)
    async with make_backend(None) as backend:
        first = await backend.submit(request)
        second = await backend.submit(request)
        result = await backend.wait(first, 60)
        third = await backend.submit(request)  # after it finished, too
    assert first == second == third == request.run_id
    assert result is not None and result.status is RunStatus.SUCCESS and result.result == "once"
    assert len(fake_api.message_requests) == 1


async def test_events_are_numbered_in_order_and_resume_after_a_sequence_number(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.write_file("a.txt", "alpha")
    async with make_backend(None) as backend:
        run_id = await backend.submit(build_request("write a.txt", config=config, cwd=workdir))
        events = await all_events(backend, run_id)
        later = await all_events(backend, run_id, after=events[-3].seq)
    seqs = [event.seq for event in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] == 1
    assert [e.kind for e in events[:-1]] == ["progress"] * (len(events) - 1)
    assert events[-1].kind == "finished" and events[-1].status is RunStatus.SUCCESS
    assert [e.seq for e in later] == seqs[-2:] and later[-1].kind == "finished"


async def test_cancelling_a_running_run_stops_its_tree_and_records_why(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=5, seconds=2.0)
    async with make_backend(None) as backend:
        run_id = await backend.submit(build_request("slow", config=with_bash(config), cwd=workdir))
        await started(backend, run_id)
        report = await backend.cancel(run_id, "cancelled: contract test")
        again = await backend.cancel(run_id, "cancelled: second time")
        record = await backend.status(run_id)
    assert report.cancelled and report.status is RunStatus.CANCELLED
    assert not again.cancelled and again.status is RunStatus.CANCELLED
    assert record.status is RunStatus.CANCELLED and record.error == "cancelled: contract test"
    await no_processes_left(run_id)


async def test_cancelling_a_queued_run_never_starts_it(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=3, seconds=1.0)
    async with make_backend(1) as backend:
        running = await backend.submit(build_request("first", config=with_bash(config), cwd=workdir))
        await started(backend, running)  # first, so the one slot is taken (a remote queue need not be FIFO)
        queued = await backend.submit(build_request("second", config=config, cwd=workdir))
        report = await backend.cancel(queued, "cancelled: while queued")
        queued_record = await backend.status(queued)
        await backend.cancel(running, "cancelled: done with the test")
    assert report.cancelled and queued_record.status is RunStatus.CANCELLED
    assert queued_record.pid is None  # never spawned
    assert not [r for r in fake_api.message_requests if "second" in r.text]
    await no_processes_left(running, queued)


async def test_wait_returns_none_after_its_timeout_and_the_result_later(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text("late", delay_s=2.0)
    async with make_backend(None) as backend:
        run_id = await backend.submit(build_request("late", config=config, cwd=workdir))
        early = await backend.wait(run_id, 0.2)
        status = await backend.status(run_id)
        result = await backend.wait(run_id, 60)
    assert early is None and not status.status.finished
    assert result is not None and result.result == "late"


async def test_list_runs_filters_by_status_cwd_list_and_time(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, tmp_path: Path
) -> None:
    fake_api.scenario = scenarios.text("ok")
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    (tmp_path / "link").symlink_to(here)
    async with make_backend(None) as backend:
        a = await backend.submit(build_request("a", config=config, cwd=here))
        b = await backend.submit(build_request("b", config=config, cwd=there, list_id="list-1"))
        for run_id in (a, b):
            await backend.wait(run_id, 60)
        in_here = await backend.list_runs(RunFilter(cwd=str(here.resolve())))
        through_link = await backend.list_runs(RunFilter(cwd=str(tmp_path / "link")))
        in_list = await backend.list_runs(RunFilter(list_id="list-1"))
        succeeded = await backend.list_runs(RunFilter(status=RunStatus.SUCCESS))
        failed = await backend.list_runs(RunFilter(status=RunStatus.FAILED))
        future = await backend.list_runs(RunFilter(since=datetime.now(UTC) + timedelta(hours=1)))
        one = await backend.list_runs(RunFilter(limit=1))
        by_prefix = await backend.find_ids(a[:8])
    assert by_prefix == [a]
    assert [r.run_id for r in in_here] == [a] and [r.run_id for r in in_list] == [b]
    assert [r.run_id for r in through_link] == [a]  # cwd compared after resolving symlinks
    assert {r.run_id for r in succeeded} == {a, b} and failed == [] and future == []
    assert [r.run_id for r in one] == [b]  # newest first


async def test_transcript_pages_chain_to_the_whole_transcript_and_tail_gives_the_end(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.write_file("b.txt", "beta")
    async with make_backend(None) as backend:
        run_id = await backend.submit(build_request("write b.txt", config=config, cwd=workdir))
        await backend.wait(run_id, 60)
        pages, cursor = [], 0
        while True:
            page = await backend.transcript(run_id, TranscriptQuery(cursor=cursor, limit=2))
            pages.append(page)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        whole = await backend.transcript(run_id, TranscriptQuery(limit=5000))
        tail = await backend.transcript(run_id, TranscriptQuery(tail=1))
    lines = [line for page in pages for line in page.lines]
    assert len(pages) > 2 and all(len(page.lines) <= 2 for page in pages)
    assert lines == whole.lines and not whole.running
    assert tail.lines == whole.lines[-1:] and '"type":"result"' in tail.lines[0].replace(" ", "")


async def test_resume_continues_a_finished_runs_session_in_its_cwd(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text("first answer")
    async with make_backend(None) as backend:
        parent = await backend.submit(build_request("first", config=config, cwd=workdir))
        parent_result = await backend.wait(parent, 60)
        follow_up = build_request("second", config=config, cwd=Path("/"))  # ignored: the parent's cwd is used
        child = await backend.resume(ResumeRequest(run_id=parent, request=follow_up))
        child_result = await backend.wait(child, 60)
        child_record = await backend.status(child)
    assert parent_result is not None and parent_result.session_id
    assert child_result is not None and child_result.status is RunStatus.SUCCESS
    assert child_record.parent_run_id == parent and child_record.cwd == str(workdir.resolve())
    assert "first" in fake_api.message_requests[-1].text  # the earlier turn was in the resumed context


async def test_a_task_list_runs_each_task_as_a_run_of_the_backend(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text("listed")
    requests = [build_request(f"task {i}", config=config, cwd=workdir, list_id="contract-list") for i in (1, 2)]
    async with make_backend(None) as backend:
        list_id = await backend.submit_list(ListRequest(list_id="contract-list", requests=requests))
        second = await backend.wait(requests[1].run_id, 60)  # a pending task can be waited for by its id
        outcome = await backend.list_outcome(list_id, timeout_s=60)
    assert second is not None and second.status is RunStatus.SUCCESS
    assert outcome.status == "success" and outcome.succeeded == 2
    assert [m.run_id for m in outcome.members] == [r.run_id for r in requests]
    assert all(m.state == "finished" and m.result is not None for m in outcome.members)


async def test_a_pending_list_task_is_a_pending_run_of_its_list_until_cancelled_by_its_id(
    make_backend: BackendFactory, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.routes = {
        "ALPHA": scenarios.slow(steps=3, seconds=1.0, final="ALPHA-DONE"),
        "GAMMA": scenarios.text("GAMMA-DONE"),
    }
    list_id = f"pending-{uuid.uuid4()}"  # Temporal keeps list workflows between tests: one id per run
    requests = [
        build_request(task, config=with_bash(config), cwd=workdir, list_id=list_id)
        for task in ("task ALPHA", "task BETA", "task GAMMA")
    ]
    alpha, beta, gamma = (r.run_id for r in requests)
    async with make_backend(None) as backend:
        await backend.submit_list(ListRequest(list_id=list_id, requests=requests))
        await started(backend, alpha)
        pending = await backend.status(beta)
        listed = await backend.list_runs(RunFilter(list_id=list_id))
        by_status = await backend.list_runs(RunFilter(status=RunStatus.PENDING, cwd=str(workdir)))
        running = await backend.list_runs(RunFilter(status=RunStatus.RUNNING, list_id=list_id))
        by_prefix = await backend.find_ids(gamma[:8])
        not_yet = await backend.wait(gamma, 0.2)
        with pytest.raises(TranscriptNotFoundError, match="has not started yet"):
            await backend.transcript(gamma, TranscriptQuery())
        report = await backend.cancel(beta, "cancelled: not needed")
        skipped = await backend.wait(beta, 10)
        outcome = await backend.list_outcome(list_id, timeout_s=60)
        after = await backend.status(beta)
    assert pending.status is RunStatus.PENDING and not pending.status.finished
    assert (pending.list_id, pending.list_index, pending.task) == (list_id, 2, "task BETA")
    assert pending.cwd == str(workdir.resolve()) and pending.pid is None
    assert [r.run_id for r in listed] == [gamma, beta, alpha]  # newest first: later tasks as they will start
    assert [r.status for r in listed] == [RunStatus.PENDING, RunStatus.PENDING, RunStatus.RUNNING]
    assert [r.list_index for r in listed] == [3, 2, 1]
    assert {r.run_id for r in by_status} == {beta, gamma} and [r.run_id for r in running] == [alpha]
    assert by_prefix == [gamma] and not_yet is None
    assert report.cancelled and report.status is RunStatus.SKIPPED
    assert skipped is not None and skipped.status is RunStatus.SKIPPED
    assert after.status is RunStatus.SKIPPED and "not needed" in (after.error or "")
    assert [m.state for m in outcome.members] == ["finished", "skipped", "finished"]
    assert outcome.members[2].result is not None and outcome.members[2].result.result == "GAMMA-DONE"
    assert not any("task BETA" in r.text for r in fake_api.message_requests)  # nothing started for it
    await no_processes_left(alpha, beta, gamma)


async def test_unknown_run_ids_are_refused_by_every_call(make_backend: BackendFactory) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    async with make_backend(None) as backend:
        for call in (
            backend.status(unknown),
            backend.wait(unknown, 0.1),
            backend.cancel(unknown),
            backend.transcript(unknown, TranscriptQuery()),
        ):
            with pytest.raises(RunNotFoundError):
                await call
