"""A task list lives in Temporal, not in the front end that submitted it: a front end SIGKILLed mid-list, or one that
closes cleanly, leaves the list going on, and a new front end reads it (pending members included), follows it,
waits for its members, and cancels it or one of its members. Real dev server, real workers, the real `claude`
against the fake API; the first front end is a real process."""

from __future__ import annotations

import itertools
import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from cc_executor.backends.protocol import ListRequest, RunEvent, RunFilter
from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.errors import RunNotFoundError
from cc_executor.models import CCExecutorConfig, ExecutionResult, RunRequest, RunStatus
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.git_repos import make_repo, show
from cc_executor.testing.temporal_cluster import Workers, run_processes, until_no_run_processes

pytestmark = pytest.mark.anyio

# A front end that submits the list (read as JSON on stdin), says "running" once its first task has started on a
# worker, and then either waits to be killed ("kill") or leaves cleanly ("close").
FRONT_END = """
import sys, anyio
from cc_executor.backends.protocol import ListRequest
from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.backends.temporal.settings import TemporalSettings

async def main() -> None:
    request = ListRequest.model_validate_json(sys.stdin.read())
    settings = TemporalSettings(address=sys.argv[1], task_queue=sys.argv[2])
    async with TemporalBackend(settings, poll_s=0.2) as backend:
        await backend.submit_list(request)
        first = request.requests[0].run_id
        while (await backend.status(first)).status.value != "running" or not (await backend.status(first)).worker:
            await anyio.sleep(0.2)
        print("running", flush=True)
        if sys.argv[3] == "kill":
            await anyio.sleep_forever()

anyio.run(main)
"""


@pytest.fixture
def backend(temporal_backend: TemporalBackend) -> TemporalBackend:
    return temporal_backend


async def run_front_end(temporal_workers: Workers, listed: ListRequest, how: str) -> None:
    """Submit ``listed`` from another process, which is SIGKILLed ("kill") or leaves cleanly ("close") once the
    list's first member runs on a worker. It shares this test's registry (CC_EXECUTOR_HOME)."""
    settings = temporal_workers.settings
    argv = [sys.executable, "-c", FRONT_END, settings.address, settings.task_queue, how]
    async with await anyio.open_process(argv, env=dict(os.environ)) as front_end:
        assert front_end.stdin is not None and front_end.stdout is not None
        try:
            await front_end.stdin.send(listed.model_dump_json().encode())
            await front_end.stdin.aclose()
            with anyio.fail_after(60):
                line = await front_end.stdout.receive()
            assert line.strip() == b"running"
            if how == "close":
                with anyio.fail_after(30):
                    assert await front_end.wait() == 0
        finally:
            if front_end.returncode is None:
                front_end.send_signal(signal.SIGKILL)
                await front_end.wait()


def three(workdir: Path, config: CCExecutorConfig, list_id: str) -> list[RunRequest]:
    with_bash = config.model_copy(update={"allowed_tools": ["Bash"]})
    return [RunRequest(task=f"{name}-TASK", cwd=workdir, config=with_bash, list_id=list_id) for name in NAMES]


NAMES = ("ALPHA", "BRAVO", "CHARLIE")


async def test_a_list_outlives_its_sigkilled_front_end(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    list_id = "21111111-2222-4333-8444-555555555555"
    fake_api.routes = {
        "ALPHA-TASK": scenarios.slow(steps=2, seconds=1.5, final="ALPHA-DONE"),
        "BRAVO-TASK": scenarios.text("BRAVO-DONE"),
        "CHARLIE-TASK": scenarios.text("CHARLIE-DONE"),
    }
    requests = three(workdir, config, list_id)
    await run_front_end(temporal_workers, ListRequest(list_id=list_id, requests=requests), "kill")

    # A new front end (this one) never saw the list: it finds it by a member not started yet, reads it, waits for
    # that member and follows the list to its end.
    last = requests[2].run_id
    assert await backend.list_of(last) == list_id
    early = await backend.list_outcome(list_id)
    assert early.status == "running" and [m.state for m in early.members][1:] == ["pending", "pending"]
    pending = await backend.status(last)
    assert (pending.status, pending.list_id, pending.list_index) == (RunStatus.PENDING, list_id, 3)
    listed = await backend.list_runs(RunFilter(list_id=list_id))  # a front end that did not submit it lists it too
    assert [r.run_id for r in listed[:2]] == [last, requests[1].run_id]
    assert [r.status for r in listed[:2]] == [RunStatus.PENDING] * 2
    waited: list[ExecutionResult | None] = []

    async def wait_last() -> None:
        waited.append(await backend.wait(last, 90))

    with anyio.fail_after(90):
        async with anyio.create_task_group() as group:
            group.start_soon(wait_last)
            events: list[RunEvent] = [event async for event in backend.events(list_id)]
    assert events[-1].kind == "finished" and [e.seq for e in events] == list(range(1, len(events) + 1))
    assert any(e.progress is not None and e.progress.message.startswith("[1/3] ") for e in events), events
    assert waited[0] is not None and waited[0].ok and waited[0].result == "CHARLIE-DONE"

    outcome = await backend.list_outcome(list_id, timeout_s=30)
    assert outcome.status == "success" and outcome.succeeded == 3
    assert [m.run_id for m in outcome.members] == [r.run_id for r in requests]
    assert [m.result.result if m.result else None for m in outcome.members] == [f"{n}-DONE" for n in NAMES]
    rows = [await backend.status(r.run_id) for r in requests]
    assert all(row.status is RunStatus.SUCCESS and row.backend == "temporal" for row in rows)
    for earlier, later in itertools.pairwise(rows):  # in order: each started after the one before ended
        assert earlier.finished_at is not None and later.started_at is not None
        assert earlier.finished_at <= later.started_at
    # The context was forwarded: the last task was told what the earlier two produced.
    charlie = [r.text for r in fake_api.message_requests if "CHARLIE-TASK" in r.text]
    assert charlie and "ALPHA-DONE" in charlie[0] and "BRAVO-DONE" in charlie[0]
    assert all(run_processes(r.run_id) == [] for r in requests)
    with pytest.raises(RunNotFoundError):
        async for _ in backend.events("31111111-2222-4333-8444-555555555555"):  # no such run or list
            pass


async def test_a_new_front_end_cancels_a_list_its_closed_front_end_left_running(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    list_id = "51111111-2222-4333-8444-555555555555"
    fake_api.scenario = scenarios.slow(steps=30, seconds=1.0, final="never")
    requests = three(workdir, config, list_id)
    # The submitting front end closes cleanly: that no longer cancels anything (the list lives in Temporal).
    await run_front_end(temporal_workers, ListRequest(list_id=list_id, requests=requests), "close")
    first, second, last = (r.run_id for r in requests)
    await anyio.sleep(1.0)
    assert (await backend.status(first)).status is RunStatus.RUNNING

    # The command line (another front end, with no row for a pending member) shows, lists and cancels a pending
    # member by a prefix of its id: skipped at once, the list goes on.
    env = {
        **os.environ,
        "CC_EXECUTOR_BACKEND": "temporal",
        "CC_EXECUTOR_TEMPORAL_ADDRESS": temporal_workers.settings.address,
        "CC_EXECUTOR_TEMPORAL_TASK_QUEUE": temporal_workers.settings.task_queue,
    }
    cli = [sys.executable, "-m", "cc_executor.cli"]
    show = await anyio.run_process([*cli, "show", last[:8]], env=env, check=False)
    table = await anyio.run_process([*cli, "runs", "--list", list_id], env=env, check=False)
    cancel = await anyio.run_process([*cli, "cancel", last[:8]], env=env, check=False)
    assert show.returncode == 0, show.stderr.decode()
    assert "pending" in show.stdout.decode() and f"{list_id} (task 3)" in show.stdout.decode()
    rows = [line.split()[:2] for line in table.stdout.decode().splitlines()[1:]]
    assert rows[:2] == [[last[:8], "pending"], [second[:8], "pending"]], table.stdout.decode()
    assert cancel.returncode == 0 and f"skipped run {last}" in cancel.stderr.decode(), cancel.stderr.decode()
    skipped = await backend.wait(last, 5)
    assert skipped is not None and skipped.status is RunStatus.SKIPPED
    outcome = await backend.list_outcome(list_id)
    assert [m.state for m in outcome.members] == ["running", "pending", "skipped"]
    assert (outcome.members[2].reason or "").startswith("cancelled by `cc-executor cancel`")

    assert await backend.cancel_list(list_id, "stop the list") is True
    outcome = await backend.list_outcome(list_id)
    assert outcome.status == "cancelled"
    assert [m.state for m in outcome.members] == ["finished", "skipped", "skipped"]
    cancelled = outcome.members[0].result
    assert cancelled is not None and cancelled.status is RunStatus.CANCELLED
    assert (await backend.status(first)).error == "stop the list"
    assert outcome.members[1].reason == "stop the list"
    assert (outcome.members[2].reason or "").startswith("cancelled by `cc-executor cancel`")
    assert (await backend.status(second)).status is RunStatus.SKIPPED
    assert await backend.cancel_list(list_id) is False  # already ended
    assert await until_no_run_processes(first) == []  # nothing of the cancelled member left on any worker (same host)
    requests_seen = len(fake_api.message_requests)
    await anyio.sleep(2.0)
    assert len(fake_api.message_requests) == requests_seen  # no API request after the cancel


async def test_list_outcome_from_rows_waits_for_its_members(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    fake_api.scenario = scenarios.slow(steps=2, seconds=1.5, final="done")
    list_id = "41111111-2222-4333-8444-555555555555"
    request = RunRequest(task="slow", cwd=workdir, config=config.model_copy(update={"allowed_tools": ["Bash"]}))
    run_id = await backend.submit(request.model_copy(update={"list_id": list_id}))
    # Another front end (here: a second backend on the same registry) sees only the list's rows.
    async with TemporalBackend(temporal_workers.settings, poll_s=0.2) as other:
        early = await other.list_outcome(list_id)
        assert early.status == "running" and early.running == 1
        waited = await other.list_outcome(list_id, timeout_s=60)
    assert waited.status == "success" and [m.run_id for m in waited.members] == [run_id]


async def test_a_parallel_list_stops_at_its_first_failure(
    backend: TemporalBackend, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    list_id = "61111111-2222-4333-8444-555555555555"
    fake_api.routes = {"FAIL-TASK": scenarios.api_error(400), "SLOW-TASK": scenarios.slow(steps=30, seconds=1.0)}
    with_bash = config.model_copy(update={"allowed_tools": ["Bash"]})
    tasks = ("SLOW-TASK", "FAIL-TASK", "SLOW-TASK 2")
    requests = [RunRequest(task=t, cwd=workdir, config=with_bash, list_id=list_id) for t in tasks]
    listed = ListRequest(list_id=list_id, requests=requests, mode="parallel", max_parallel=2, stop_on_error=True)
    await backend.submit_list(listed)
    outcome = await backend.list_outcome(list_id, timeout_s=60)

    assert outcome.status == "failed", outcome
    slow, failed = (m.result for m in outcome.members[:2])
    assert failed is not None and failed.status is RunStatus.FAILED
    assert slow is not None and slow.status is RunStatus.CANCELLED
    assert slow.error == "cancelled: task 2 ended failed and stop_on_error is set"
    assert outcome.members[2].state == "skipped"
    assert outcome.members[2].reason == "skipped: task 2 ended failed and stop_on_error is set"
    assert (await backend.status(requests[2].run_id)).status is RunStatus.SKIPPED
    assert await until_no_run_processes(requests[0].run_id) == []


async def test_a_list_is_read_from_its_memo_while_no_worker_answers(
    temporal_workers: Workers, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    list_id = "71111111-2222-4333-8444-555555555555"
    settings = temporal_workers.dedicated("lists")
    fake_api.scenario = scenarios.slow(steps=30, seconds=1.0)
    requests = three(workdir, config, list_id)[:2]
    async with TemporalBackend(settings, poll_s=0.2) as backend:
        await backend.submit_list(ListRequest(list_id=list_id, requests=requests))
        with anyio.fail_after(30):
            status = (await backend.status(requests[0].run_id)).status
            while status is not RunStatus.RUNNING:
                await anyio.sleep(0.2)
                status = (await backend.status(requests[0].run_id)).status
        temporal_workers.signal("lists", signal.SIGSTOP)  # its only worker stops answering
        try:
            with anyio.fail_after(20):
                outcome = await backend.list_outcome(list_id)
            assert outcome.status == "running" and [m.state for m in outcome.members] == ["running", "pending"]
            assert [m.task for m in outcome.members] == [r.task for r in requests]
        finally:
            temporal_workers.signal("lists", signal.SIGCONT)
        assert await backend.cancel_list(list_id, "stop it") is True
        outcome = await backend.list_outcome(list_id)
    assert outcome.status == "cancelled" and [m.state for m in outcome.members] == ["finished", "skipped"]
    assert await until_no_run_processes(requests[0].run_id) == []


async def test_a_sequential_worktree_list_chains_each_member_on_the_one_before(
    backend: TemporalBackend, fake_api: FakeAnthropic, config: CCExecutorConfig, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n"})
    list_id = "81111111-2222-4333-8444-555555555555"
    fake_api.routes = {
        "step two": scenarios.bash("cat one.txt > seen.txt"),
        "step one": scenarios.bash("echo one > one.txt"),
    }
    with_bash = config.model_copy(update={"allowed_tools": ["Bash"]})
    requests = [
        RunRequest(task=task, cwd=repo, config=with_bash, list_id=list_id, isolation="worktree")
        for task in ("step one", "step two")
    ]
    await backend.submit_list(ListRequest(list_id=list_id, requests=requests))
    outcome = await backend.list_outcome(list_id, timeout_s=90)

    assert outcome.status == "success", outcome
    one, two = (m.result for m in outcome.members)
    assert one is not None and two is not None and one.head_sha
    assert two.base_sha == one.head_sha  # it started from the first member's branch head
    assert show(repo, two.branch or "", "seen.txt") == "one"  # and saw its work
