"""Task lists: sequential (each task told what the earlier ones produced) or bounded-parallel.

Every task is its own run row, grouped by one ``list_id``. Stopping (stop_on_error, or the caller
cancelling) cancels running members and records the rest as ``skipped``, so the registry always tells
what happened to each task.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field

from cc_executor.models import CCExecutorConfig, ExecutionResult, ProgressUpdate, RunRequest, RunStatus
from cc_executor.progress import shorten
from cc_executor.runner import EventCallback, execute_run
from cc_executor.slots import RunSlots
from cc_executor.store import RunStore

ListProgressCallback = Callable[[ProgressUpdate], Awaitable[None] | None]
MAX_LIST_TASKS = 200
_CONTEXT_CHARS = 1500


class ListTask(BaseModel):
    """One task of a list, with optional per-task overrides of the list's config."""

    task: str
    overrides: dict[str, Any] = Field(default_factory=dict, description="CCExecutorConfig fields for this task only.")
    json_schema: dict[str, Any] | None = None


class ListEntry(BaseModel):
    index: int
    task: str
    run_id: str
    status: RunStatus
    result: ExecutionResult | None = None


class TaskListResult(BaseModel):
    list_id: str
    mode: Literal["sequential", "parallel"]
    status: Literal["success", "failed", "cancelled"]
    entries: list[ListEntry]
    succeeded: int
    failed: int
    skipped: int
    cost_usd: float
    duration_s: float
    files_created: list[str]
    files_modified: list[str]


def context_preamble(done: Sequence[ListEntry]) -> str:
    """What a later task is told about the earlier ones: a concise summary each, not transcripts."""
    lines = ["Earlier tasks in this list (same working directory) and their outcomes:"]
    for entry in done:
        result = entry.result
        outcome = (result.summary or result.result or "") if result else ""
        files = ", ".join(result.files_created + result.files_modified) if result else ""
        lines.append(f"{entry.index}. {shorten(entry.task, 200)}")
        lines.append(f"   status: {entry.status.value}" + (f"; files: {shorten(files, 300)}" if files else ""))
        if outcome:
            lines.append("   result: " + shorten(" ".join(outcome.split()), _CONTEXT_CHARS))
    return "\n".join(lines)


class _ListRunner:
    def __init__(
        self,
        requests: list[RunRequest],
        store: RunStore,
        *,
        on_progress: ListProgressCallback | None,
        on_event: EventCallback | None,
        slots: RunSlots | None,
    ) -> None:
        self.requests = requests
        self.store = store
        self.on_progress = on_progress
        self.on_event = on_event
        self.slots = slots
        self.entries: dict[int, ListEntry] = {}
        self.running = 0
        self.stop = False

    async def _progress(self, index: int, update: ProgressUpdate) -> None:
        total = len(self.requests)
        done = len(self.entries)
        failed = sum(1 for e in self.entries.values() if e.status is not RunStatus.SUCCESS)
        counts = f"{self.running} running, {done} done, {failed} failed"
        update = update.model_copy(
            update={
                "message": f"[{index}/{total}] {update.message} ({counts})",
                "list_index": index,
                "list_total": total,
            }
        )
        if self.on_progress is not None:
            maybe = self.on_progress(update)
            if maybe is not None:
                await maybe

    async def run_one(self, index: int, request: RunRequest) -> ListEntry:
        async def progress(update: ProgressUpdate) -> None:
            await self._progress(index, update)

        self.running += 1
        try:
            result = await execute_run(
                request, self.store, on_progress=progress, on_event=self.on_event, slots=self.slots
            )
        finally:
            self.running -= 1
        entry = ListEntry(index=index, task=request.task, run_id=result.run_id, status=result.status, result=result)
        self.entries[index] = entry
        return entry

    async def skip_rest(self, reason: str) -> None:
        with anyio.CancelScope(shield=True):
            for index, request in enumerate(self.requests, start=1):
                if index in self.entries:
                    continue
                try:
                    await self.store.get(request.run_id)
                    started = True
                except LookupError:
                    started = False
                if not started:
                    await self.store.create_run(request, argv=[], owner_pid=0, status=RunStatus.SKIPPED)
                    await self.store.mark_status(request.run_id, RunStatus.SKIPPED, error=reason)
                    status = RunStatus.SKIPPED
                else:
                    status = (await self.store.get(request.run_id)).status
                self.entries[index] = ListEntry(index=index, task=request.task, run_id=request.run_id, status=status)


async def run_task_list(
    requests: list[RunRequest],
    store: RunStore,
    *,
    sequential: bool = True,
    max_parallel: int = 2,
    stop_on_error: bool | None = None,
    on_progress: ListProgressCallback | None = None,
    on_event: EventCallback | None = None,
    slots: RunSlots | None = None,
) -> TaskListResult:
    """Run validated requests (all sharing one list_id) and combine their results."""
    if not requests:
        raise ValueError("a task list needs at least one task")
    stop_on_error = sequential if stop_on_error is None else stop_on_error
    runner = _ListRunner(requests, store, on_progress=on_progress, on_event=on_event, slots=slots)
    started = anyio.current_time()
    try:
        if sequential:
            await _sequential(runner, stop_on_error)
        else:
            await _parallel(runner, max_parallel, stop_on_error)
    except anyio.get_cancelled_exc_class():
        await runner.skip_rest("the list was cancelled")
        raise
    await runner.skip_rest("skipped: an earlier task failed (stop_on_error)")
    return _combine(requests[0].list_id or "", "sequential" if sequential else "parallel", runner, started)


async def _sequential(runner: _ListRunner, stop_on_error: bool) -> None:
    for index, request in enumerate(runner.requests, start=1):
        done = [runner.entries[i] for i in sorted(runner.entries)]
        if done:
            task = f"{context_preamble(done)}\n\nYour task now:\n{request.task}"
            request = request.model_copy(update={"task": task})
            runner.requests[index - 1] = request
        entry = await runner.run_one(index, request)
        if entry.status is not RunStatus.SUCCESS and stop_on_error:
            return


async def _parallel(runner: _ListRunner, max_parallel: int, stop_on_error: bool) -> None:
    limiter = anyio.CapacityLimiter(max_parallel)
    async with anyio.create_task_group() as group:

        async def member(index: int, request: RunRequest) -> None:
            async with limiter:
                if runner.stop:
                    return
                entry = await runner.run_one(index, request)
            if entry.status is not RunStatus.SUCCESS and stop_on_error:
                runner.stop = True
                group.cancel_scope.cancel()

        for index, request in enumerate(runner.requests, start=1):
            group.start_soon(member, index, request)


def _combine(
    list_id: str, mode: Literal["sequential", "parallel"], runner: _ListRunner, started: float
) -> TaskListResult:
    entries = [runner.entries[i] for i in sorted(runner.entries)]
    results = [e.result for e in entries if e.result is not None]
    succeeded = sum(1 for e in entries if e.status is RunStatus.SUCCESS)
    skipped = sum(1 for e in entries if e.status is RunStatus.SKIPPED)
    failed = len(entries) - succeeded - skipped
    cancelled = any(e.status is RunStatus.CANCELLED for e in entries)
    return TaskListResult(
        list_id=list_id,
        mode=mode,
        status="success" if succeeded == len(entries) else "cancelled" if cancelled else "failed",
        entries=entries,
        succeeded=succeeded,
        failed=failed,
        skipped=skipped,
        cost_usd=round(sum(r.cost_usd or 0.0 for r in results), 6),
        duration_s=round(anyio.current_time() - started, 3),
        files_created=sorted({f for r in results for f in r.files_created}),
        files_modified=sorted({f for r in results for f in r.files_modified}),
    )


def build_list_requests(
    tasks: Sequence[str | ListTask | dict[str, Any]],
    *,
    config: CCExecutorConfig | None = None,
    cwd: str | Path | None = None,
    list_id: str | None = None,
) -> list[RunRequest]:
    """Validate the whole list before anything runs (an InvalidRequestError names the task and field)."""
    from cc_executor.api import build_request
    from cc_executor.errors import InvalidRequestError

    if not tasks:
        raise InvalidRequestError("tasks: the list is empty")
    if len(tasks) > MAX_LIST_TASKS:
        raise InvalidRequestError(f"tasks: {len(tasks)} tasks is more than the limit of {MAX_LIST_TASKS}")
    base = config or CCExecutorConfig()
    list_id = list_id or str(uuid.uuid4())
    requests = []
    for index, item in enumerate(tasks, start=1):
        spec = ListTask(task=item) if isinstance(item, str) else ListTask.model_validate(item)
        try:
            task_config = base.model_copy(update=spec.overrides) if spec.overrides else base
            task_config = CCExecutorConfig.model_validate(task_config.model_dump())
            requests.append(
                build_request(spec.task, config=task_config, cwd=cwd, json_schema=spec.json_schema, list_id=list_id)
            )
        except (InvalidRequestError, ValueError) as exc:
            raise InvalidRequestError(f"tasks[{index}]: {exc}") from None
    return requests


async def cc_execute_list(
    tasks: Sequence[str | ListTask | dict[str, Any]],
    *,
    sequential: bool = True,
    max_parallel: int = 2,
    stop_on_error: bool | None = None,
    config: CCExecutorConfig | None = None,
    cwd: str | Path | None = None,
    on_progress: ListProgressCallback | None = None,
    store: RunStore | None = None,
    slots: RunSlots | None = None,
) -> TaskListResult:
    """Run several tasks in one cwd. Sequential (default): each later task is told the earlier results and
    the list stops at the first failure. ``sequential=False``: at most ``max_parallel`` at once."""
    from cc_executor.api import open_store

    requests = build_list_requests(tasks, config=config, cwd=cwd)
    kwargs: dict[str, Any] = {
        "sequential": sequential,
        "max_parallel": max_parallel,
        "stop_on_error": stop_on_error,
        "on_progress": on_progress,
        "slots": slots,
    }
    if store is not None:
        return await run_task_list(requests, store, **kwargs)
    async with open_store() as own:
        return await run_task_list(requests, own, **kwargs)
