"""The task-list engine, ``TaskList``: many runs under one ``list_id``, sequential (each task told what the earlier
ones produced) or bounded-parallel.

Every task is its own run with its own row; a task that never started gets a ``skipped`` row, so the registry
accounts for every task. ``TaskList`` is the one implementation. ``task_lists.cc_execute_list`` runs it in this
process, each task through ``execute_run``; ``LocalBackend.submit_list`` runs it in the backend's task group with
an ``execute`` that submits each task to the backend, so every task is a backend run (status, wait, cancel work
per task) and the list outlives the call that started it. Building and validating the requests is
``task_lists.py``'s job.

Stopping. A list stops when a task ends without success and ``stop_on_error`` is set (the default for
sequential lists), or when it is cancelled (``TaskList.cancel(reason)``, or the caller's cancel scope). Whatever
the mode and the cause, the same happens: tasks still running are cancelled (their rows say ``cancelled`` and
why) and tasks not yet started are recorded ``skipped`` with the reason. So a parallel list stops at its first
failure rather than letting its other tasks run on: once the list's outcome is known, nothing keeps spending or
editing the working directory. One task can also be stopped on its own (``TaskList.cancel_member``): a pending
one is skipped, a running one cancelled; the list goes on unless stop_on_error applies to that cancellation.
The first reason given wins, for the list as for each run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import anyio
from pydantic import BaseModel

from cc_executor.engine.emit import EventCallback, notify
from cc_executor.engine.progress_text import shorten
from cc_executor.engine.runner import execute_run
from cc_executor.engine.slots import RunSlots
from cc_executor.errors import RunNotFoundError
from cc_executor.models import ExecutionResult, ProgressUpdate, RunRequest, RunStatus
from cc_executor.registry.store import RunStore

log = logging.getLogger(__name__)

ListProgressCallback = Callable[[ProgressUpdate], Awaitable[None] | None]
UpdateCallback = Callable[[ProgressUpdate], Awaitable[None]]
ExecuteFn = Callable[[RunRequest, UpdateCallback], Awaitable[ExecutionResult]]
"""Runs one task to the end and returns its result. Like ``execute_run`` it writes the task's row, reports
progress through the callback, and when cancelled stops the run (recorded ``cancelled``) before re-raising; a
cancel reason already on the row is the one the run records."""

_CONTEXT_CHARS = 1500


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
    isolation: str = "none"
    note: str | None = None


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


MemberState = Literal["pending", "running", "finished", "skipped"]
_UNFINISHED_STATUS: dict[MemberState, RunStatus] = {
    "pending": RunStatus.PENDING,
    "running": RunStatus.RUNNING,
    "skipped": RunStatus.SKIPPED,
}


@dataclass(eq=False)
class ListMember:
    """One task of a list. ``running``: handed to ``execute`` (its row exists once execute has prepared the run);
    ``request`` then carries the summary of the earlier tasks (sequential lists)."""

    index: int  # 1-based
    task: str  # as given, without the summary of earlier tasks
    request: RunRequest
    state: MemberState = "pending"
    result: ExecutionResult | None = None
    reason: str | None = None  # why it was skipped, or cancelled by the list
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)  # finished or skipped
    recorded: bool = False  # skipped, and its row written

    @property
    def run_id(self) -> str:
        return self.request.run_id

    @property
    def status(self) -> RunStatus:
        return self.result.status if self.result is not None else _UNFINISHED_STATUS[self.state]

    def entry(self) -> ListEntry:
        return ListEntry(index=self.index, task=self.task, run_id=self.run_id, status=self.status, result=self.result)


@dataclass(frozen=True, slots=True)
class ListCounts:
    succeeded: int
    failed: int  # finished without success: failed, timeout, idle_timeout, cancelled, lost
    skipped: int
    running: int
    pending: int
    cost_usd: float

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.skipped


class TaskList:
    """A list of validated requests (one ``list_id``), run at most once by ``run()``; see the module doc."""

    def __init__(
        self,
        requests: Sequence[RunRequest],
        store: RunStore,
        *,
        sequential: bool = True,
        max_parallel: int = 2,
        stop_on_error: bool | None = None,
        on_progress: ListProgressCallback | None = None,
        on_event: EventCallback | None = None,
        slots: RunSlots | None = None,
        execute: ExecuteFn | None = None,
    ) -> None:
        if not requests:
            raise ValueError("a task list needs at least one task")
        self.list_id = requests[0].list_id or ""
        self.mode: Literal["sequential", "parallel"] = "sequential" if sequential else "parallel"
        self.members = [ListMember(i, r.task, r) for i, r in enumerate(requests, start=1)]
        self.max_parallel = max_parallel
        self.stop_on_error = sequential if stop_on_error is None else stop_on_error
        self.store = store
        self.on_progress = on_progress
        self.on_event = on_event
        self.slots = slots
        self.execute: ExecuteFn = execute or self._execute_in_process
        self.stop_reason: str | None = None  # what the skipped tasks are told; set once, by the first stop
        self._cancel_reason = "cancelled: the task list stopped"  # ... and the cancelled ones
        self.cancelled = False  # stopped by cancel() or the caller, not by a failure
        self.done = anyio.Event()
        self._started = anyio.current_time()
        self._ended: float | None = None

    def member(self, run_id: str) -> ListMember | None:
        return next((m for m in self.members if m.run_id == run_id), None)

    # --- running -----------------------------------------------------------------------------------------------

    async def run(self) -> TaskListResult:
        """Run the members and combine their results; cancelling the caller stops the list and re-raises."""
        self._started = anyio.current_time()
        try:
            if self.mode == "sequential":
                for member in self.members:
                    await self._run_member(member)
            else:
                limiter = anyio.CapacityLimiter(self.max_parallel)
                async with anyio.create_task_group() as group:
                    for member in self.members:
                        group.start_soon(self._run_limited, member, limiter)
        except BaseException as exc:
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            why = "the task list was cancelled" if cancelled else "the task list crashed"
            self._note_stop(f"skipped: {why}", f"cancelled: {why}", cancelled)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self._settle()
            self._ended = anyio.current_time()
            self.done.set()
        return self.result()

    async def _run_limited(self, member: ListMember, limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            await self._run_member(member)

    async def _run_member(self, member: ListMember) -> None:
        if member.state != "pending":
            return  # skipped on its own (cancel_member) while it waited
        if self.stop_reason is not None:
            self._skip(member, self.stop_reason)
            return
        if self.mode == "sequential":
            member.request = self._with_base(member, self._with_context(member))
        member.state = "running"
        result: ExecutionResult | None = None
        with member.scope:
            result = await self.execute(member.request, partial(self._progress, member))
        if result is None:  # cancelled by cancel_member or a stopping list: the row says how it ended
            await self._from_row(member)
        else:
            self._finish(member, result)
        if member.result is not None and not member.result.ok and self.stop_on_error:
            cause = f"task {member.index} ended {member.result.status.value} and stop_on_error is set"
            await self._stop(f"skipped: {cause}", f"cancelled: {cause}")

    async def _execute_in_process(self, request: RunRequest, on_progress: UpdateCallback) -> ExecutionResult:
        return await execute_run(request, self.store, on_progress=on_progress, on_event=self.on_event, slots=self.slots)

    def _with_context(self, member: ListMember) -> RunRequest:
        """Sequential lists: the prompt starts with a summary of the earlier tasks that ran."""
        earlier = [m.entry() for m in self.members[: member.index - 1] if m.result is not None]
        if not earlier:
            return member.request
        return member.request.model_copy(update={"context": context_preamble(earlier)})

    def _with_base(self, member: ListMember, request: RunRequest) -> RunRequest:
        """Sequential lists of worktrees: a task with no base_ref starts from the branch head of the task before
        it (when that one ran in a worktree), so it works on top of the earlier work; the front ends leave
        base_ref unset for exactly those tasks (task_lists.cc_execute_list, the MCP task list tool)."""
        if request.isolation != "worktree" or request.base_ref is not None or member.index == 1:
            return request
        before = self.members[member.index - 2].result
        if before is None or before.isolation != "worktree" or not before.head_sha:
            return request
        return request.model_copy(update={"base_ref": before.head_sha})

    async def _progress(self, member: ListMember, update: ProgressUpdate) -> None:
        counts = self.counts()
        total = len(self.members)
        summary = f"{counts.running} running, {counts.finished} done, {counts.failed} failed"
        update = update.model_copy(
            update={
                "message": f"[{member.index}/{total}] {update.message} ({summary})",
                "list_index": member.index,
                "list_total": total,
            }
        )
        await notify(self.on_progress, update)

    # --- stopping ----------------------------------------------------------------------------------------------

    async def cancel(self, reason: str) -> None:
        """Stop the list: running tasks are cancelled and the rest skipped, all with ``reason`` (the first reason
        wins). Returns once the running tasks are told; ``done`` is set when the list has ended."""
        await self._stop(reason, reason, cancelled=True)

    async def cancel_member(self, run_id: str, reason: str) -> bool:
        """Stop one task: a pending one is skipped, a running one cancelled (its row says ``reason``), and this
        returns once it has ended. False if it had already ended (or is not in this list)."""
        member = self.member(run_id)
        if member is None or member.done.is_set():
            return False
        if member.state == "pending":
            self._skip(member, reason)
            await self._record_skipped(member)  # now, not at the end: other processes read the list from its rows
        else:
            await self._cancel_running(member, reason)
            await member.done.wait()
        return True

    def _note_stop(self, skip_reason: str, cancel_reason: str, cancelled: bool) -> bool:
        """Record why the list stops; only the first stop counts."""
        if self.stop_reason is not None:
            return False
        self.stop_reason, self._cancel_reason, self.cancelled = skip_reason, cancel_reason, cancelled
        return True

    async def _stop(self, skip_reason: str, cancel_reason: str, *, cancelled: bool = False) -> None:
        if not self._note_stop(skip_reason, cancel_reason, cancelled):
            return
        for member in self.members:
            if member.state == "running":
                await self._cancel_running(member, cancel_reason)

    async def _cancel_running(self, member: ListMember, reason: str) -> None:
        """Mark the row first (the runner records the reason it finds there), then stop whatever executes it."""
        member.reason = member.reason or reason
        with contextlib.suppress(RunNotFoundError):  # no row yet: the cancel stops its preparation; see _from_row
            await self.store.mark_cancelled(member.run_id, member.reason)
        member.scope.cancel()

    async def _from_row(self, member: ListMember) -> None:
        """A member whose execute ended without a result. Its row says how it ended; a row left unfinished
        (cancelled while the run was prepared) is marked cancelled; without a row it never started: skipped."""
        try:
            await self.store.mark_cancelled(member.run_id, member.reason or self._cancel_reason)
            record = await self.store.get(member.run_id)
        except RunNotFoundError:
            self._skip(member, member.reason or self.stop_reason or "skipped: the task list stopped")
            return
        self._finish(member, record.to_result())

    async def _settle(self) -> None:
        """Account for every member once the list ends: pending ones skipped, ones cut off while running read
        back from their rows, and a row for every skipped one."""
        for member in self.members:
            try:
                if member.state == "pending":
                    self._skip(member, self.stop_reason or "skipped: the task list stopped")
                elif member.state == "running":
                    await self._from_row(member)
                if member.state == "skipped" and not member.recorded:
                    await self._record_skipped(member)
            except Exception:
                log.exception("could not record how task %d of list %s ended", member.index, self.list_id)
                self._skip(member, member.reason or "skipped")  # done either way: nobody may wait forever

    async def _record_skipped(self, member: ListMember) -> None:
        await self.store.record_skipped(member.request, member.reason or "skipped")
        member.recorded = True

    @staticmethod
    def _finish(member: ListMember, result: ExecutionResult) -> None:
        member.result, member.state = result, "finished"
        member.done.set()

    @staticmethod
    def _skip(member: ListMember, reason: str) -> None:
        member.state, member.reason = "skipped", reason
        member.done.set()

    # --- reporting ---------------------------------------------------------------------------------------------

    def counts(self) -> ListCounts:
        results = [m.result for m in self.members if m.result is not None]
        states = [m.state for m in self.members]
        return ListCounts(
            succeeded=sum(r.ok for r in results),
            failed=sum(not r.ok for r in results),
            skipped=states.count("skipped"),
            running=states.count("running"),
            pending=states.count("pending"),
            cost_usd=round(sum(r.cost_usd or 0.0 for r in results), 6),
        )

    def elapsed(self) -> float:
        return round((self._ended or anyio.current_time()) - self._started, 3)

    def status(self) -> Literal["success", "failed", "cancelled"]:
        """success: every task succeeded; cancelled: the list was cancelled, or its only problems are cancelled or
        skipped tasks; failed: otherwise."""
        if all(m.result is not None and m.result.ok for m in self.members):
            return "success"
        if self.cancelled:
            return "cancelled"
        bad = (m.result.status for m in self.members if m.result is not None and not m.result.ok)
        return "failed" if any(status is not RunStatus.CANCELLED for status in bad) else "cancelled"

    def result(self) -> TaskListResult:
        results = [m.result for m in self.members if m.result is not None]
        counts = self.counts()
        return TaskListResult(
            list_id=self.list_id,
            mode=self.mode,
            status=self.status(),
            entries=[m.entry() for m in self.members],
            succeeded=counts.succeeded,
            failed=counts.failed,
            skipped=counts.skipped,
            cost_usd=counts.cost_usd,
            duration_s=self.elapsed(),
            files_created=sorted({f for r in results for f in r.files_created}),
            files_modified=sorted({f for r in results for f in r.files_modified}),
        )


async def run_task_list(requests: Sequence[RunRequest], store: RunStore, **options: Any) -> TaskListResult:
    """Run validated requests (all sharing one list_id) and combine their results. ``options`` are TaskList's:
    sequential, max_parallel, stop_on_error, on_progress, on_event, slots, and ``execute`` (how one task runs;
    default ``execute_run`` in this process)."""
    return await TaskList(requests, store, **options).run()
