"""Task lists: many runs under one list id, sequential (each sees a summary of the earlier results) or parallel.

A list runs as a job in the server's task group, so it can outlive the tool call that started it (hand-off): the
caller gets every entry's run id at once and follows them with wait_run. Every request is validated before the
first run starts; an entry that never started has no row and is reported as 'pending' or 'skipped'.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from .progress import ProgressSink
from .results import run_result, shorten
from .schemas import ListTotals, RunOptions, RunResult, TaskListResult, TaskSpec

if TYPE_CHECKING:
    from cc_executor.models import ExecutionResult, RunRequest

    from .state import AppState

log = logging.getLogger(__name__)

Mode = Literal["sequential", "parallel"]
Listener = Callable[[str, float], Awaitable[None]]

_KEEP_FINISHED_JOBS = 50
_CANCEL_BOUND_S = 30.0
CLIENT_CANCEL_REASON = "cancelled: the MCP client cancelled the tool call"


@dataclass(eq=False)
class Entry:
    index: int  # 1-based
    request: RunRequest
    state: Literal["pending", "submitted", "skipped"] = "pending"
    skip_reason: str = ""
    result: ExecutionResult | None = None
    settled: anyio.Event = field(default_factory=anyio.Event)  # submitted or skipped

    @property
    def run_id(self) -> str:
        return self.request.run_id

    def skip(self, reason: str) -> None:
        if self.state == "pending":
            self.state = "skipped"
            self.skip_reason = reason
            self.settled.set()


class ListJob:
    def __init__(
        self, state: AppState, requests: list[RunRequest], *, mode: Mode, max_parallel: int, stop_on_error: bool
    ):
        self.app = state
        self.list_id = requests[0].list_id or str(uuid.uuid4())
        self.entries = [Entry(i, request) for i, request in enumerate(requests, start=1)]
        self.mode = mode
        self.max_parallel = max_parallel
        self.stop_on_error = stop_on_error
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        self.listeners: set[Listener] = set()
        self._messages_since_finish = 0

    # --- lookups from other tools ------------------------------------------------------------------------------

    def entry(self, run_id: str) -> Entry | None:
        return next((e for e in self.entries if e.run_id == run_id), None)

    @property
    def finished_count(self) -> int:
        return sum(1 for e in self.entries if e.result is not None or e.state == "skipped")

    # --- running -----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            with self.scope:
                if self.mode == "sequential":
                    for entry in self.entries:
                        await self._run_entry(entry)
                else:
                    limiter = anyio.CapacityLimiter(self.max_parallel)
                    async with anyio.create_task_group() as group:
                        for entry in self.entries:
                            group.start_soon(self._run_limited, entry, limiter)
        finally:
            for entry in self.entries:
                entry.skip(self.stop_reason or "the list stopped before this task started")
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_BOUND_S):
                await self._record_skipped()
            self.done.set()

    async def _record_skipped(self) -> None:
        """A row for each task that never started, so list_runs(list_id) accounts for every task."""
        from cc_executor.models import RunStatus

        skipped = [e for e in self.entries if e.state == "skipped"]
        if not skipped:
            return
        try:
            store = await (await self.app.backend()).get_store()
            for entry in skipped:
                await store.create_run(entry.request, argv=[], owner_pid=os.getpid(), status=RunStatus.SKIPPED)
                await store.mark_status(entry.run_id, RunStatus.SKIPPED, error=entry.skip_reason)
        except Exception:
            log.exception("could not record the skipped tasks of list %s", self.list_id)

    async def _run_limited(self, entry: Entry, limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            await self._run_entry(entry)

    async def _run_entry(self, entry: Entry) -> None:
        if entry.state != "pending":
            return
        if self.stop_reason is not None:
            entry.skip(self.stop_reason)
            return
        request = self._with_context(entry) if self.mode == "sequential" else entry.request
        await self.app.submit(request)
        entry.state = "submitted"
        entry.settled.set()
        backend = await self.app.backend()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._forward, entry)
                entry.result = await backend.wait(entry.run_id, float("inf"))
                group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await backend.cancel(entry.run_id, self.stop_reason or "cancelled: the task list was cancelled")
            raise
        self._messages_since_finish = 0
        if entry.result is not None and not entry.result.ok and self.stop_on_error and self.stop_reason is None:
            self.stop_reason = f"skipped: task {entry.index} ended {entry.result.status.value} and stop_on_error is set"

    async def _forward(self, entry: Entry) -> None:
        async for update in (await self.app.backend()).events(entry.run_id):
            await self._emit(f"[{self.finished_count}/{len(self.entries)} done] task {entry.index}: {update.message}")

    def progress_value(self) -> float:
        """Finished tasks plus a fraction that grows with each message about the current ones (stays below +1)."""
        return self.finished_count + 1 - 1 / (self._messages_since_finish + 1)

    async def _emit(self, message: str) -> None:
        self._messages_since_finish += 1
        value = self.progress_value()
        for listener in list(self.listeners):
            await listener(message, value)

    def _with_context(self, entry: Entry) -> RunRequest:
        """Sequential mode: the prompt starts with the core's summary of the earlier results (as cc_execute_list)."""
        from cc_executor.lists import ListEntry, context_preamble

        earlier = [
            ListEntry(index=e.index, task=e.request.task, run_id=e.run_id, status=e.result.status, result=e.result)
            for e in self.entries[: entry.index - 1]
            if e.result is not None
        ]
        if not earlier:
            return entry.request
        task = f"{context_preamble(earlier)}\n\nYour task now:\n{entry.request.task}"
        return entry.request.model_copy(update={"task": task})

    def cancel(self, reason: str) -> None:
        """Stop the list: pending entries are skipped and live runs cancelled with ``reason``."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.scope.cancel()

    # --- reporting ---------------------------------------------------------------------------------------------

    def summary_line(self) -> str:
        t = self.totals()
        return f"{t.succeeded} succeeded, {t.failed} failed, {t.skipped} skipped, {t.unfinished} unfinished"

    def totals(self) -> ListTotals:
        totals = ListTotals(tasks=len(self.entries), duration_s=round(time.monotonic() - self.started, 3))
        for entry in self.entries:
            if entry.state == "skipped":
                totals.skipped += 1
            elif entry.result is None:
                totals.unfinished += 1
            elif entry.result.ok:
                totals.succeeded += 1
            else:
                totals.failed += 1
            if entry.result is not None and entry.result.cost_usd:
                totals.cost_usd += entry.result.cost_usd
        totals.cost_usd = round(totals.cost_usd, 6)
        return totals


# --- the tool-facing side ------------------------------------------------------------------------------------------


def start_job(state: AppState, job: ListJob) -> None:
    _prune(state)
    state.lists[job.list_id] = job
    state.group.start_soon(_run_job, job)


async def _run_job(job: ListJob) -> None:
    try:
        await job.run()
    except Exception:
        log.exception("task list %s crashed", job.list_id)


def _prune(state: AppState) -> None:
    finished = [list_id for list_id, job in state.lists.items() if job.done.is_set()]
    for list_id in finished[: max(0, len(finished) - _KEEP_FINISHED_JOBS)]:
        del state.lists[list_id]


def find_entry(state: AppState, run_id: str) -> tuple[ListJob, Entry] | None:
    for job in state.lists.values():
        entry = job.entry(run_id)
        if entry is not None:
            return job, entry
    return None


def unstarted_result(job: ListJob, entry: Entry) -> RunResult:
    """A list entry without a row yet (pending) or ever (skipped)."""
    if entry.state == "skipped":
        message = f"Task {entry.index} of list {job.list_id} never started: {entry.skip_reason}."
        status: Literal["pending", "skipped"] = "skipped"
    else:
        message = (
            f"Task {entry.index} of list {job.list_id} waits for earlier tasks. "
            f"Call wait_run(run_id='{entry.run_id}') to wait for it."
        )
        status = "pending"
    return RunResult(
        run_id=entry.run_id,
        status=status,
        done=entry.state == "skipped",
        message=message,
        task=shorten(entry.request.task, 200),
        cwd=str(entry.request.cwd),
        list_id=job.list_id,
    )


async def list_result(job: ListJob, max_chars: int) -> TaskListResult:
    """The list's state: one RunResult per entry (results trimmed to share ``max_chars``) plus totals."""
    from .runs import describe

    share = max(1000, max_chars // max(1, len(job.entries)))
    tasks: list[RunResult] = []
    for entry in job.entries:
        if entry.result is not None:
            tasks.append(run_result(entry.result, max_chars=share))
        elif entry.state == "submitted":
            tasks.append(await describe(job.app, entry.run_id))
        else:
            tasks.append(unstarted_result(job, entry))
    totals = job.totals()
    status = _list_status(job, totals)
    return TaskListResult(
        list_id=job.list_id,
        status=status,
        done=job.done.is_set(),
        message=_list_message(job, status),
        mode="sequential" if job.mode == "sequential" else "parallel",
        tasks=tasks,
        totals=totals,
    )


def _list_status(job: ListJob, totals: ListTotals) -> Literal["success", "failed", "running", "cancelled"]:
    if not job.done.is_set():
        return "running"
    if totals.succeeded == totals.tasks:
        return "success"
    if job.stop_reason is not None and job.stop_reason.startswith("cancelled"):
        return "cancelled"
    return "failed"


def _list_message(job: ListJob, status: str) -> str:
    line = job.summary_line()
    if status == "running":
        return (
            f"The list is still running on the server ({line}). Call wait_run(run_id=...) for each task whose "
            f"status is running, queued or pending, in order; list_runs(list_id='{job.list_id}') shows them all."
        )
    if status == "success":
        return f"All {len(job.entries)} tasks succeeded."
    return f"The list ended {status}: {line}. Each task's message says what happened."


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
) -> TaskListResult:
    """Validate every task, start the list as a server-owned job, and follow it for up to ``wait_s``."""
    requests = await _requests(state, specs, shared)
    job = ListJob(state, requests, mode=mode, max_parallel=max_parallel, stop_on_error=stop_on_error)
    start_job(state, job)
    job.listeners.add(sink.send)
    try:
        with anyio.move_on_after(wait_s):
            async with anyio.create_task_group() as group:
                group.start_soon(sink.heartbeat, job.progress_value)
                await job.done.wait()
                group.cancel_scope.cancel()
    except anyio.get_cancelled_exc_class():
        job.cancel(CLIENT_CANCEL_REASON)
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_BOUND_S):
            await job.done.wait()
        raise
    finally:
        job.listeners.discard(sink.send)
    return await list_result(job, state.settings.max_result_chars)


async def _requests(state: AppState, specs: list[TaskSpec], shared: RunOptions) -> list[RunRequest]:
    from cc_executor.errors import CCExecutorError

    from .runs import make_request

    list_id = str(uuid.uuid4())
    requests = []
    for i, spec in enumerate(specs):
        options = RunOptions(**spec.model_dump(exclude={"task"}, exclude_none=True)).merged_over(shared)
        try:
            requests.append(await make_request(state, spec.task, options, list_id=list_id))
        except (CCExecutorError, ToolError) as exc:
            raise ToolError(f"tasks[{i}]: {exc}") from None
    return requests


async def wait_entry(state: AppState, job: ListJob, entry: Entry, *, sink: ProgressSink, timeout_s: float) -> RunResult:
    """wait_run for a list entry: wait for it to start (earlier tasks first), then for its result."""
    from .runs import follow

    deadline = time.monotonic() + timeout_s
    if entry.state == "pending":
        with anyio.move_on_after(timeout_s):
            async with anyio.create_task_group() as group:
                group.start_soon(sink.heartbeat, job.progress_value)
                await entry.settled.wait()
                group.cancel_scope.cancel()
    if entry.state != "submitted":
        return unstarted_result(job, entry)
    return await follow(state, entry.run_id, sink, max(0.0, deadline - time.monotonic()))
