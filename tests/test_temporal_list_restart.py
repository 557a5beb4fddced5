"""A task list whose front end crashes mid-list: its submitted member goes on in Temporal, and a restarted front end
follows the list through the members' rows (``events(list_id)``, ``list_outcome`` with a timeout). Real dev
server, real workers, the real `claude` against the fake API; the crashing front end is a real process."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from cc_executor.backends.protocol import ListRequest, RunEvent
from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.errors import RunNotFoundError
from cc_executor.models import CCExecutorConfig, RunRequest, RunStatus
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.temporal_cluster import Workers, run_processes

pytestmark = pytest.mark.anyio

LIST_ID = "21111111-2222-4333-8444-555555555555"

# A front end that submits the list (read as JSON on stdin), says "running" once its first task has started on a
# worker, and then waits to be killed.
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
        await anyio.sleep_forever()

anyio.run(main)
"""


@pytest.fixture
async def backend(temporal_workers: Workers) -> AsyncIterator[TemporalBackend]:
    temporal_workers.ensure("w1", "w2")
    async with TemporalBackend(temporal_workers.settings, poll_s=0.2) as front_end:
        yield front_end


async def test_a_restarted_front_end_follows_a_list_through_its_rows(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    fake_api.routes = {"first": scenarios.slow(steps=2, seconds=1.5, final="one"), "second": scenarios.text("two")}
    with_bash = config.model_copy(update={"allowed_tools": ["Bash"]})
    requests = [RunRequest(task=t, cwd=workdir, config=with_bash, list_id=LIST_ID) for t in ("first", "second")]
    listed = ListRequest(list_id=LIST_ID, requests=requests, mode="sequential")
    settings = temporal_workers.settings
    argv = [sys.executable, "-c", FRONT_END, settings.address, settings.task_queue]
    # The same registry (CC_EXECUTOR_HOME) as the restarted front end below.
    async with await anyio.open_process(argv, env=dict(os.environ)) as crashing:
        assert crashing.stdin is not None and crashing.stdout is not None
        try:
            await crashing.stdin.send(listed.model_dump_json().encode())
            await crashing.stdin.aclose()
            with anyio.fail_after(60):
                line = await crashing.stdout.receive()
            assert line.strip() == b"running"
        finally:
            crashing.send_signal(signal.SIGKILL)
            await crashing.wait()

    # The restarted front end (this one) never ran the list: it follows it through the members' rows.
    with anyio.fail_after(60):
        events: list[RunEvent] = [event async for event in backend.events(LIST_ID)]
    assert events[-1].kind == "finished" and [e.seq for e in events] == list(range(1, len(events) + 1))
    assert any(e.progress is not None and e.progress.message.startswith("[1/1] ") for e in events), events
    outcome = await backend.list_outcome(LIST_ID, timeout_s=30)
    (first,) = outcome.members  # the second task was never submitted: the crashed front end held it
    assert first.run_id == requests[0].run_id and first.result is not None
    assert first.result.status is RunStatus.SUCCESS and first.result.result == "one"  # it went on in Temporal
    with pytest.raises(RunNotFoundError):
        await backend.status(requests[1].run_id)
    with pytest.raises(RunNotFoundError):
        async for _ in backend.events("31111111-2222-4333-8444-555555555555"):  # no such run or list
            pass
    assert run_processes(requests[0].run_id) == []


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
