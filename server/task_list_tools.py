"""Task lists through the backend, which owns the orchestration (order, parallelism, stop_on_error, skipping,
cancelling). The server only

* validates every task before the list starts, then submits the list (``Backend.submit_list``); the list outlives
  the tool call that started it (hand-off: the caller gets every task's run id at once and follows them with
  wait_run);
* reaches each task by its run id through the backend (get_run, wait_run, cancel_run work per task, also while
  it is pending);
* forwards the list's progress events to the calls waiting on it, and translates members and totals to the tool
  schemas.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from cc_executor.text import one_line

from . import run_tools as runs
from .progress_notifications import ProgressSink, heartbeating, wait_reporting
from .results import run_result
from .schemas import ListTotals, RunOptions, RunResult, TaskListOutput, TaskSpec

if TYPE_CHECKING:
    from cc_executor.backends import ListMemberState, ListOutcome
    from cc_executor.models import RunRequest

    from .state import AppState, PeerCancelled

log = logging.getLogger(__name__)

Mode = Literal["sequential", "parallel"]

_CANCEL_BOUND_S = 30.0
_KEEP_FINISHED_LISTS = 50


# --- one task of a list: get_run, wait_run, cancel_run -------------------------------------------------------------


async def find_list(state: AppState, run_id: str) -> str | None:
    """The id of the list ``run_id`` belongs to, if any: one this server started, or one the backend can reach
    (a durable list recorded by an earlier server on the same state dir)."""
    known = state.list_members.get(run_id)
    return known if known is not None else await (await state.backend()).list_of(run_id)


async def _member(state: AppState, list_id: str, run_id: str) -> ListMemberState:
    outcome = await (await state.backend()).list_outcome(list_id)
    return next(m for m in outcome.members if m.run_id == run_id)


def unstarted_result(list_id: str, member: ListMemberState) -> RunResult:
    """A task without a row yet (pending, or handed to the backend a moment ago) or ever (skipped)."""
    if member.state == "skipped":
        message = f"Task {member.index} of list {list_id} never started: {member.reason}."
        status: Literal["pending", "skipped"] = "skipped"
    else:
        waits = "is starting" if member.state == "running" else "waits for earlier tasks"
        message = (
            f"Task {member.index} of list {list_id} {waits}. Call wait_run(run_id='{member.run_id}') to wait for it."
        )
        status = "pending"
    return RunResult(
        run_id=member.run_id,
        status=status,
        done=member.state == "skipped",
        message=message,
        task=one_line(member.task, 200),
        cwd=member.cwd,
        list_id=list_id,
    )


async def describe_entry(state: AppState, list_id: str, run_id: str, *, waited_s: float | None = None) -> RunResult:
    """get_run for a task of a list: its run once it has a row, else pending or skipped."""
    from cc_executor.errors import RunNotFoundError

    member = await _member(state, list_id, run_id)
    if member.state in ("pending", "skipped"):
        return unstarted_result(list_id, member)
    try:
        return await runs.describe(state, run_id, waited_s=waited_s)
    except RunNotFoundError:  # the backend is still preparing it
        return unstarted_result(list_id, member)


async def wait_entry(state: AppState, list_id: str, run_id: str, *, sink: ProgressSink, timeout_s: float) -> RunResult:
    """wait_run for a task of a list: until it has finished or was skipped (earlier tasks first), with its progress."""
    await wait_reporting(await state.backend(), run_id, sink, timeout_s)
    return await describe_entry(state, list_id, run_id, waited_s=sink.elapsed())


async def cancel_entry(state: AppState, list_id: str, run_id: str, reason: str | None) -> RunResult:
    """cancel_run for a task of a list: skipped if pending, cancelled if running; the list goes on."""
    report = await (await state.backend()).cancel(run_id, runs.cancel_reason(reason))
    out = await describe_entry(state, list_id, run_id)
    if not report.cancelled:
        out.message = f"Nothing to cancel: the task had already ended ({out.status}). " + out.message
    return out


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
    by_peer: PeerCancelled = lambda: True,
    roots: list[Path] | None = None,
) -> TaskListOutput:
    """Validate every task, start the list on the backend, and follow it for up to ``wait_s``."""
    from cc_executor.backends import ListRequest
    from cc_executor.task_lists import list_isolation

    requests = await _requests(state, specs, shared, roots or [], sequential=mode == "sequential")
    isolation, note = await list_isolation(shared.isolation, sequential=mode == "sequential", cwd=requests[0].cwd)
    if isolation == "worktree":
        from cc_executor.worktrees import check_requests

        if shared.isolation is None:  # chosen for the caller: parallel tasks in a git repository
            requests = [
                r if r.isolation == "worktree" else r.model_copy(update={"isolation": "worktree"}) for r in requests
            ]
        await check_requests(requests)
    backend = await state.backend()
    list_id = requests[0].list_id or ""
    _remember(state, list_id, requests)
    progress = _ListProgress(len(requests))
    await backend.submit_list(
        ListRequest(
            list_id=list_id, requests=requests, mode=mode, max_parallel=max_parallel, stop_on_error=stop_on_error
        )
    )
    try:
        with anyio.move_on_after(wait_s):
            async with heartbeating(sink, progress.value):
                async for event in backend.events(list_id):
                    if event.progress is not None:
                        progress.saw(await backend.list_outcome(list_id))
                        await sink.send(event.progress.message, progress.value(message=True))
    except anyio.get_cancelled_exc_class():
        if state.cancels_with_call(by_peer=by_peer()):
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_BOUND_S):
                await backend.cancel_list(list_id, runs.CLIENT_CANCEL_REASON)
        raise
    result = await list_result(state, await backend.list_outcome(list_id), state.settings.max_result_chars)
    message = f"{result.message} {note}" if note else result.message
    return result.model_copy(update={"isolation": isolation, "note": note, "message": message})


class _ListProgress:
    """Finished tasks plus a fraction that grows with each message about the current ones (stays below +1)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.finished = 0
        self._finished_seen = 0
        self._messages = 0

    def saw(self, outcome: ListOutcome) -> None:
        self.finished = outcome.succeeded + outcome.failed + outcome.skipped

    def value(self, *, message: bool = False) -> float:
        if self.finished != self._finished_seen:
            self._finished_seen, self._messages = self.finished, 0
        self._messages += message
        # A message may be read after its task was counted finished (events and outcome are read separately): the
        # fraction then tops up the last task, so the value never passes the total.
        return min(self.finished, self.total - 1) + 1 - 1 / (self._messages + 1)


def _remember(state: AppState, list_id: str, requests: list[RunRequest]) -> None:
    """Note which runs belong to which list (so get_run/wait_run/cancel_run reach pending tasks); forget the
    oldest lists beyond a bound."""
    state.lists.add(list_id)
    for request in requests:
        state.list_members[request.run_id] = list_id
    known = list(dict.fromkeys(state.list_members.values()))
    for old in known[: max(0, len(known) - _KEEP_FINISHED_LISTS)]:
        for run_id in [r for r, lid in state.list_members.items() if lid == old]:
            del state.list_members[run_id]
        state.lists.discard(old)


async def _requests(
    state: AppState, specs: list[TaskSpec], shared: RunOptions, roots: list[Path], *, sequential: bool
) -> list[RunRequest]:
    from cc_executor.errors import CCExecutorError

    list_id = str(uuid.uuid4())
    requests = []
    # A sequential list's base_ref is its first task's: each later task without its own starts from the branch
    # head of the task before it (the engine's TaskList fills that in).
    later = shared.model_copy(update={"base_ref": None}) if sequential else shared
    for i, spec in enumerate(specs):
        options = RunOptions(**spec.model_dump(exclude={"task"}, exclude_none=True)).merged_over(
            shared if i == 0 else later
        )
        try:
            submission = await runs.make_request(state, spec.task, options, list_id=list_id, roots=roots)
        except (CCExecutorError, ToolError) as exc:
            raise ToolError(f"tasks[{i}]{_joined(str(exc))}") from None
        requests.append(submission.request)
    return requests


def _joined(message: str) -> str:
    """``cwd: ...`` of task 1 reads ``tasks[1].cwd: ...``; a message naming no field reads ``tasks[1]: ...``."""
    head = message.split(":", 1)[0]
    return f".{message}" if head.replace("_", "").isalnum() and head.islower() else f": {message}"


async def list_result(state: AppState, outcome: ListOutcome, max_chars: int) -> TaskListOutput:
    """The list's state: one RunResult per task (results trimmed to share ``max_chars``) plus totals."""
    share = max(1000, max_chars // max(1, len(outcome.members)))
    tasks: list[RunResult] = []
    for member in outcome.members:
        if member.result is not None:
            tasks.append(run_result(member.result, max_chars=share))
        else:
            tasks.append(await describe_entry(state, outcome.list_id, member.run_id))
    totals = ListTotals(
        tasks=len(outcome.members),
        succeeded=outcome.succeeded,
        failed=outcome.failed,
        skipped=outcome.skipped,
        unfinished=outcome.running + outcome.pending,
        cost_usd=outcome.cost_usd,
        duration_s=outcome.elapsed_s,
    )
    return TaskListOutput(
        list_id=outcome.list_id,
        status=outcome.status,
        done=outcome.finished,
        message=_list_message(outcome.list_id, outcome.status, totals),
        mode=outcome.mode,
        tasks=tasks,
        totals=totals,
    )


def _list_message(list_id: str, status: str, t: ListTotals) -> str:
    line = f"{t.succeeded} succeeded, {t.failed} failed, {t.skipped} skipped, {t.unfinished} unfinished"
    if status == "running":
        return (
            f"The list is still running on the server ({line}). Call wait_run(run_id=...) for each task whose "
            f"status is running, queued or pending, in order; list_runs(list_id='{list_id}') shows them all."
        )
    if status == "success":
        return f"All {t.tasks} tasks succeeded."
    return f"The list ended {status}: {line}. Each task's message says what happened."
