"""Task lists over the core's ``TaskList``, which owns the orchestration (order, parallelism, stop_on_error,
skipping, cancelling: cc_executor/tasklist.py). The server only

* starts the list in its own task group, so the list outlives the tool call that started it (hand-off: the caller
  gets every task's run id at once and follows them with wait_run);
* runs each task on its LocalBackend (``ListJob.execute``), so get_run, wait_run and cancel_run work per task;
* forwards progress to the calls waiting on the list, and translates tasks and totals to the tool schemas.

Every request is validated before the first task starts.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from . import run_tools as runs
from .progress_notifications import ProgressSink, heartbeating, wait_forwarding
from .results import run_result, shorten
from .schemas import ListTotals, RunOptions, RunResult, TaskListResult, TaskSpec

if TYPE_CHECKING:
    from cc_executor.engine.task_list_runner import ListMember
    from cc_executor.models import ExecutionResult, ProgressUpdate, RunRequest
    from cc_executor.registry.store import RunStore

    from .state import AppState

log = logging.getLogger(__name__)

Mode = Literal["sequential", "parallel"]
Listener = Callable[["ProgressUpdate", float], Awaitable[None]]

_KEEP_FINISHED_JOBS = 50
_CANCEL_BOUND_S = 30.0
_LIST_STOPPED = "cancelled: the task list stopped"


class ListJob:
    """A core TaskList run by this server, and the tool calls listening to its progress."""

    def __init__(
        self,
        state: AppState,
        requests: list[RunRequest],
        store: RunStore,
        *,
        mode: Mode,
        max_parallel: int,
        stop_on_error: bool,
    ) -> None:
        from cc_executor.engine.task_list_runner import TaskList

        self.app = state
        self.listeners: set[Listener] = set()
        self._finished_seen = 0
        self._messages = 0
        self.core = TaskList(
            requests,
            store,
            sequential=mode == "sequential",
            max_parallel=max_parallel,
            stop_on_error=stop_on_error,
            on_progress=self._forward,
            execute=self._execute,
        )

    @property
    def list_id(self) -> str:
        return self.core.list_id

    async def _execute(
        self, request: RunRequest, on_progress: Callable[[ProgressUpdate], Awaitable[None]]
    ) -> ExecutionResult:
        """One task as a backend run (so the run tools reach it), followed to its end."""
        backend = await self.app.backend()
        async with runs.submitted(self.app, request, _LIST_STOPPED) as run_id:
            result = await wait_forwarding(backend, run_id, on_progress, math.inf)
        assert result is not None  # waited without a timeout
        return result

    async def _forward(self, update: ProgressUpdate) -> None:
        value = self.progress_value(message=True)
        for listener in list(self.listeners):
            await listener(update, value)

    def progress_value(self, *, message: bool = False) -> float:
        """Finished tasks plus a fraction that grows with each message about the current ones (stays below +1)."""
        finished = self.core.counts().finished
        if finished != self._finished_seen:
            self._finished_seen, self._messages = finished, 0
        self._messages += message
        return finished + 1 - 1 / (self._messages + 1)


async def start_job(
    state: AppState, requests: list[RunRequest], *, mode: Mode, max_parallel: int, stop_on_error: bool
) -> ListJob:
    """Start the list in the server's task group (it outlives the tool call) and return it."""
    store = await (await state.backend()).get_store()
    job = ListJob(state, requests, store, mode=mode, max_parallel=max_parallel, stop_on_error=stop_on_error)
    _prune(state)
    state.lists[job.list_id] = job
    state.group.start_soon(_run_job, job)
    return job


async def _run_job(job: ListJob) -> None:
    try:
        await job.core.run()
    except Exception:
        log.exception("task list %s crashed", job.list_id)


def _prune(state: AppState) -> None:
    finished = [list_id for list_id, job in state.lists.items() if job.core.done.is_set()]
    for list_id in finished[: max(0, len(finished) - _KEEP_FINISHED_JOBS)]:
        del state.lists[list_id]


# --- one task of a list: get_run, wait_run, cancel_run -------------------------------------------------------------


def find_entry(state: AppState, run_id: str) -> tuple[ListJob, ListMember] | None:
    for job in state.lists.values():
        member = job.core.member(run_id)
        if member is not None:
            return job, member
    return None


def unstarted_result(job: ListJob, member: ListMember) -> RunResult:
    """A task without a row yet (pending, or handed to the backend a moment ago) or ever (skipped)."""
    if member.state == "skipped":
        message = f"Task {member.index} of list {job.list_id} never started: {member.reason}."
        status: Literal["pending", "skipped"] = "skipped"
    else:
        waits = "is starting" if member.state == "running" else "waits for earlier tasks"
        message = (
            f"Task {member.index} of list {job.list_id} {waits}. "
            f"Call wait_run(run_id='{member.run_id}') to wait for it."
        )
        status = "pending"
    return RunResult(
        run_id=member.run_id,
        status=status,
        done=member.state == "skipped",
        message=message,
        task=shorten(member.task, 200),
        cwd=str(member.request.cwd),
        list_id=job.list_id,
    )


async def describe_entry(
    state: AppState, job: ListJob, member: ListMember, *, waited_s: float | None = None
) -> RunResult:
    """get_run for a task of a list: its run once it has a row, else pending or skipped."""
    from cc_executor.errors import RunNotFoundError

    if member.state in ("pending", "skipped"):
        return unstarted_result(job, member)
    try:
        return await runs.describe(state, member.run_id, waited_s=waited_s)
    except RunNotFoundError:  # the backend is still preparing it
        return unstarted_result(job, member)


async def wait_entry(
    state: AppState, job: ListJob, member: ListMember, *, sink: ProgressSink, timeout_s: float
) -> RunResult:
    """wait_run for a task of a list: until it has finished or was skipped (earlier tasks first), with its progress."""

    async def report(update: ProgressUpdate, _value: float) -> None:
        if update.list_index == member.index:
            await sink.send(update.message)

    job.listeners.add(report)
    try:
        with anyio.move_on_after(timeout_s):
            async with heartbeating(sink):
                await member.done.wait()
    finally:
        job.listeners.discard(report)
    return await describe_entry(state, job, member, waited_s=sink.elapsed())


async def cancel_entry(state: AppState, job: ListJob, member: ListMember, reason: str | None) -> RunResult:
    """cancel_run for a task of a list: the core skips it (pending) or cancels it (running); the list goes on."""
    if not await job.core.cancel_member(member.run_id, runs.cancel_reason(reason)) and member.state == "finished":
        return await runs.cancel(state, member.run_id, reason)  # says there was nothing to cancel
    return await describe_entry(state, job, member)


# --- the whole list ------------------------------------------------------------------------------------------------


async def execute_list(
    state: AppState,
    specs: list[TaskSpec],
    shared: RunOptions,
    *,
    mode: Mode,
    max_parallel: int,
    stop_on_error: bool,
    sink: ProgressSink,
    wait_s: float,
    roots: list[Path] | None = None,
) -> TaskListResult:
    """Validate every task, start the list as a server-owned job, and follow it for up to ``wait_s``."""
    requests = await _requests(state, specs, shared, roots or [])
    job = await start_job(state, requests, mode=mode, max_parallel=max_parallel, stop_on_error=stop_on_error)

    async def report(update: ProgressUpdate, value: float) -> None:
        await sink.send(update.message, value)

    job.listeners.add(report)
    try:
        with anyio.move_on_after(wait_s):
            async with heartbeating(sink, job.progress_value):
                await job.core.done.wait()
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_BOUND_S):
            await job.core.cancel(runs.CLIENT_CANCEL_REASON)
            await job.core.done.wait()
        raise
    finally:
        job.listeners.discard(report)
    return await list_result(job, state.settings.max_result_chars)


async def _requests(state: AppState, specs: list[TaskSpec], shared: RunOptions, roots: list[Path]) -> list[RunRequest]:
    from cc_executor.errors import CCExecutorError

    list_id = str(uuid.uuid4())
    requests = []
    for i, spec in enumerate(specs):
        options = RunOptions(**spec.model_dump(exclude={"task"}, exclude_none=True)).merged_over(shared)
        try:
            requests.append(await runs.make_request(state, spec.task, options, list_id=list_id, roots=roots))
        except (CCExecutorError, ToolError) as exc:
            raise ToolError(f"tasks[{i}]: {exc}") from None
    return requests


async def list_result(job: ListJob, max_chars: int) -> TaskListResult:
    """The list's state: one RunResult per task (results trimmed to share ``max_chars``) plus totals."""
    members = job.core.members
    share = max(1000, max_chars // max(1, len(members)))
    tasks: list[RunResult] = []
    for member in members:
        if member.result is not None:
            tasks.append(run_result(member.result, max_chars=share))
        else:
            tasks.append(await describe_entry(job.app, job, member))
    counts = job.core.counts()
    totals = ListTotals(
        tasks=len(members),
        succeeded=counts.succeeded,
        failed=counts.failed,
        skipped=counts.skipped,
        unfinished=counts.running + counts.pending,
        cost_usd=counts.cost_usd,
        duration_s=job.core.elapsed(),
    )
    status = job.core.status() if job.core.done.is_set() else "running"
    return TaskListResult(
        list_id=job.list_id,
        status=status,
        done=job.core.done.is_set(),
        message=_list_message(job, status, totals),
        mode=job.core.mode,
        tasks=tasks,
        totals=totals,
    )


def _list_message(job: ListJob, status: str, t: ListTotals) -> str:
    line = f"{t.succeeded} succeeded, {t.failed} failed, {t.skipped} skipped, {t.unfinished} unfinished"
    if status == "running":
        return (
            f"The list is still running on the server ({line}). Call wait_run(run_id=...) for each task whose "
            f"status is running, queued or pending, in order; list_runs(list_id='{job.list_id}') shows them all."
        )
    if status == "success":
        return f"All {t.tasks} tasks succeeded."
    return f"The list ended {status}: {line}. Each task's message says what happened."
