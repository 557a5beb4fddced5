"""``LocalBackend``: runs in this process's task group, behind the seam (``backends.protocol.Backend``).

Runs submitted here outlive the call that started them (the MCP server hands a run id back before a host's wall
clock expires and the run keeps going) but not this process: leaving the backend cancels what still runs, and
kills its tree. Runs owned by other processes on the same registry are still visible: their rows are followed
(status, wait, events, transcript) and cancelled through the core's cross-process ``cancel_run``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from cc_executor.backends.list_outcomes import outcome_from_rows, outcome_of
from cc_executor.backends.pending_members import (
    merge_ids,
    pending_record,
    placed,
    skipped_record,
    unstarted_transcript,
)
from cc_executor.backends.protocol import (
    CancelReport,
    ListOutcome,
    ListRequest,
    ResumeRequest,
    RunEvent,
    RunFilter,
    TranscriptChunk,
    TranscriptQuery,
)
from cc_executor.backends.run_queries import matching_runs
from cc_executor.backends.transcript_chunks import read_chunk
from cc_executor.engine import process
from cc_executor.engine.approvals import decide
from cc_executor.engine.cancel import cancel_run
from cc_executor.engine.runner import Run, preflight, prepare_run
from cc_executor.engine.slots import RunSlots
from cc_executor.engine.task_list_runner import ListMember, TaskList
from cc_executor.errors import InvalidRequestError, RunNotFoundError, TranscriptNotFoundError
from cc_executor.models import (
    Approval,
    ApprovalDecision,
    ExecutionResult,
    ProgressUpdate,
    RunRecord,
    RunRequest,
    RunStatus,
)
from cc_executor.registry.store import RunStore, utc_now

log = logging.getLogger(__name__)

_POLL_S = 0.5
_KEPT_EVENTS = 256  # per live run: enough for a reconnecting front end; the transcript is the full record
_KEPT_LISTS = 50


class _EventLog:
    """Numbered events of one run or list: a bounded history for late subscribers, then live delivery."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.history: deque[RunEvent] = deque(maxlen=_KEPT_EVENTS)
        self.subscribers: list[MemoryObjectSendStream[RunEvent]] = []
        self.ended = anyio.Event()

    @property
    def last_seq(self) -> int:
        return self.history[-1].seq if self.history else 0

    def progress(self, update: ProgressUpdate) -> None:
        self._emit(RunEvent(run_id=self.key, seq=self.last_seq + 1, kind="progress", progress=update))

    def finish(self, status: RunStatus | None) -> None:
        self._emit(RunEvent(run_id=self.key, seq=self.last_seq + 1, kind="finished", status=status))
        for send in self.subscribers:
            send.close()
        self.ended.set()

    def _emit(self, event: RunEvent) -> None:
        self.history.append(event)
        for send in list(self.subscribers):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                pass  # a slow subscriber misses an update, never the run (and always gets "finished": see follow)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.subscribers.remove(send)

    async def follow(self, after: int) -> AsyncIterator[RunEvent]:
        send, receive = anyio.create_memory_object_stream[RunEvent](_KEPT_EVENTS)
        for event in self.history:
            if event.seq > after:
                send.send_nowait(event)
        if self.ended.is_set():
            send.close()
        else:
            self.subscribers.append(send)
        last = after
        async with receive:
            async for event in receive:
                last = event.seq
                yield event
        if self.ended.is_set() and last < self.last_seq:  # dropped while we were slow: still say it ended
            yield self.history[-1]


@dataclass(eq=False)
class _LiveRun:
    run: Run
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    result: ExecutionResult | None = None
    latest: ProgressUpdate | None = None
    log: _EventLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = _EventLog(self.run.request.run_id)

    @property
    def run_id(self) -> str:
        return self.run.request.run_id

    @property
    def done(self) -> anyio.Event:
        return self.log.ended

    async def publish(self, update: ProgressUpdate) -> None:
        self.latest = update
        self.log.progress(update)

    def finish(self, result: ExecutionResult) -> None:
        self.result = result
        self.log.finish(result.status)


@dataclass(eq=False)
class _LiveList:
    core: TaskList
    log: _EventLog
    created_at: str = field(default_factory=utc_now)  # what its pending members report as their creation

    @property
    def done(self) -> anyio.Event:
        return self.log.ended

    async def publish(self, update: ProgressUpdate) -> None:
        self.log.progress(update)

    def outcome(self) -> ListOutcome:
        return outcome_of(self.core, finished=self.done.is_set())


class LocalBackend:
    """In-process runs under one task group; leaving the context cancels (and kills) whatever still runs here."""

    name = "local"

    def __init__(
        self,
        store: RunStore | None = None,
        *,
        store_path: Path | None = None,
        slots: RunSlots | None = None,
        transcript_dir: Path | None = None,
        max_concurrent: int | None = None,
        kill_grace_s: float = 2.0,
    ) -> None:
        self._store = store
        self._owns_store = store is None
        self.store_path = store_path
        self.slots = slots or RunSlots(max_concurrent)  # None: one run per CPU
        self.transcript_dir = transcript_dir
        self.kill_grace_s = kill_grace_s
        self._live: dict[str, _LiveRun] = {}
        self._lists: dict[str, _LiveList] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._store_lock = anyio.Lock()
        self._submit_lock = anyio.Lock()

    # --- lifecycle -----------------------------------------------------------------------------------------------

    async def _registry(self) -> RunStore:
        """Open the registry on first use (and reconcile runs of dead owners), so start-up does no I/O."""
        async with self._store_lock:
            if self._store is None:
                from cc_executor.engine.recovery import connect_registry

                self._store = await connect_registry(self.store_path)
        return self._store

    async def __aenter__(self) -> LocalBackend:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._group is not None
        for live in self._live.values():
            live.run.set_cancel_reason("cancelled: the server shut down")
            live.scope.cancel()
        try:
            return await self._group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as errors:
            if exc is not None and len(errors.exceptions) == 1 and errors.exceptions[0] is exc:
                return None  # the body's own error (a refused submit...): let it propagate as itself, not in a group
            raise
        finally:
            self._group = None
            await self.aclose()

    async def aclose(self) -> None:
        if self._owns_store and self._store is not None:
            with anyio.CancelScope(shield=True):
                await self._store.close()
            self._store = None

    def _started_group(self) -> anyio.abc.TaskGroup:
        if self._group is None:
            raise RuntimeError("LocalBackend must be entered (async with) before it can start runs")
        return self._group

    # --- starting runs -------------------------------------------------------------------------------------------

    async def preflight(self, request: RunRequest) -> None:
        preflight(request)

    async def submit(self, request: RunRequest) -> str:
        """Validate and record the run, start it in the background and return its id at once (idempotent)."""
        group = self._started_group()
        async with self._submit_lock:  # two submits of one id: the second sees the first's row
            if request.run_id in self._live or await self._known(request.run_id):
                return request.run_id
            live = await self._prepare(request)
        group.start_soon(self._drive, live)
        return request.run_id

    async def _known(self, run_id: str) -> bool:
        try:
            await (await self._registry()).get(run_id)
        except RunNotFoundError:
            return False
        return True

    async def _prepare(self, request: RunRequest) -> _LiveRun:
        run = await prepare_run(request, await self._registry(), transcript_dir=self.transcript_dir)
        live = _LiveRun(run)
        self._forget_finished()
        self._live[request.run_id] = live
        return live

    async def resume(self, request: ResumeRequest) -> str:
        return await self.submit(await self.resume_request(request))

    async def resume_request(self, request: ResumeRequest) -> RunRequest:
        """The run request that continues (or forks) ``request.run_id``'s session in that run's own cwd."""
        parent = await (await self._registry()).get(request.run_id)
        if not parent.session_id:
            raise InvalidRequestError(
                f"run {request.run_id} has no Claude session to resume (status {parent.status.value})"
            )
        from cc_executor.worktrees import resume_isolation

        isolation = resume_isolation(parent, {"isolation": request.request.isolation})  # isolated runs stay so
        return request.request.model_copy(
            update={
                "cwd": Path(parent.cwd),
                "resume_session_id": parent.session_id,
                "fork_session": request.fork,
                "parent_run_id": request.run_id,
                **isolation,
            }
        )

    async def _drive(self, live: _LiveRun) -> None:
        result: ExecutionResult | None = None
        try:
            with live.scope:
                result = await live.run.execute(on_progress=live.publish, slots=self.slots)
        except Exception:
            log.exception("run %s crashed in the executor", live.run_id)
        finally:
            with anyio.CancelScope(shield=True):
                live.finish(result or await self._recorded_result(live.run_id))

    async def _recorded_result(self, run_id: str) -> ExecutionResult:
        return (await (await self._registry()).get(run_id)).to_result()

    async def execute(
        self, request: RunRequest, on_progress: Callable[[ProgressUpdate], Awaitable[None]]
    ) -> ExecutionResult:
        """Submit ``request`` and wait for it, forwarding its progress; cancelling the caller cancels the run
        (``TaskList``'s ``execute`` contract: the row's first cancel reason is the one recorded)."""
        run_id = await self.submit(request)
        live = self._live[run_id]
        try:
            async for event in self.events(run_id):
                if event.progress is not None:
                    await on_progress(event.progress)
            await live.done.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._cancel_here(run_id, "cancelled: the task list stopped")
            raise
        assert live.result is not None
        return live.result

    # --- following runs ------------------------------------------------------------------------------------------

    async def cancel(self, run_id: str, reason: str = "cancelled") -> CancelReport:
        """Kill a run's tree and record ``cancelled``. A run of another process is cancelled through its row and
        its process marker; a task of a list through the list (pending: skipped). The first reason wins."""
        for live_list in self._lists.values():
            if live_list.core.member(run_id) is not None and not live_list.done.is_set():
                cancelled = await live_list.core.cancel_member(run_id, reason)
                return await self._report(run_id, cancelled)
        return await self._cancel_here(run_id, reason)

    async def _cancel_here(self, run_id: str, reason: str) -> CancelReport:
        live = self._live.get(run_id)
        if live is None:
            outcome = await cancel_run(await self._registry(), run_id, reason=reason, grace_s=self.kill_grace_s)
            return CancelReport(
                run_id=run_id,
                cancelled=outcome.cancelled,
                status=outcome.status,
                owner="elsewhere",
                signalled=outcome.signalled,
                remaining=outcome.remaining,
            )
        if live.done.is_set():
            return await self._report(run_id, False)
        live.run.set_cancel_reason(reason)
        live.scope.cancel()
        await live.done.wait()
        return await self._report(run_id, True)

    async def _report(self, run_id: str, cancelled: bool) -> CancelReport:
        try:
            status = (await (await self._registry()).get(run_id)).status
        except RunNotFoundError:  # a list task skipped before it had a row
            status = RunStatus.SKIPPED
        return CancelReport(run_id=run_id, cancelled=cancelled, status=status, owner="here")

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        """Numbered events with ``seq > after`` until the ``finished`` event, for a run or a list of this backend.
        A pending list task is waited for; a run of another process (or one this backend no longer holds) is
        followed through its row: progress lines, then ``finished``."""
        live_list = self._lists.get(run_id)
        if live_list is not None:
            async for event in live_list.log.follow(after):
                yield event
            return
        await self._until_started(run_id)
        live = self._live.get(run_id)
        source = live.log.follow(after) if live is not None else self._follow_row(run_id, after)
        async for event in source:
            yield event

    async def _until_started(self, run_id: str) -> None:
        """A pending task of a live list: wait until it has been handed to this backend or has ended."""
        member = self._list_member(run_id)
        while member is not None and member.state == "pending" and run_id not in self._live:
            with anyio.move_on_after(_POLL_S):
                await member.done.wait()

    def _list_member(self, run_id: str) -> ListMember | None:
        for live in self._lists.values():
            member = live.core.member(run_id)
            if member is not None:
                return member
        return None

    async def _follow_row(self, run_id: str, after: int) -> AsyncIterator[RunEvent]:
        seq, seen = after, None
        while True:
            record = await self._row(run_id)
            if record.status.finished:
                yield RunEvent(run_id=run_id, seq=seq + 1, kind="finished", status=record.status)
                return
            if record.last_progress and record.last_progress != seen:
                seen = record.last_progress
                seq += 1
                update = ProgressUpdate(run_id=run_id, kind="heartbeat", message=record.last_progress)
                yield RunEvent(run_id=run_id, seq=seq, kind="progress", progress=update)
            await anyio.sleep(_POLL_S)

    async def approve(
        self,
        run_id: str,
        request_id: str,
        decision: ApprovalDecision,
        *,
        decided_by: str = "caller",
        message: str | None = None,
    ) -> Approval:
        """Answer a pending question of a run (this process's or another's: the store is where answers meet)."""
        return await decide(await self._registry(), run_id, request_id, decision, decided_by, message)

    async def _row(self, run_id: str) -> RunRecord:
        """The row of a run this backend does not hold. If it is unfinished and its owner process has died, runs of
        dead owners are reconciled first, so a follower sees ``lost`` (and its leftovers killed), never a row
        that says ``running`` forever."""
        store = await self._registry()
        record = await store.get(run_id)
        owner_alive = process.owner_alive(record.owner_pid, record.owner_start, record.owner_boot)  # pid reuse too
        if not record.status.finished and not owner_alive:
            from cc_executor.engine.recovery import reconcile

            await reconcile(store)
            record = await store.get(run_id)
        return record

    async def status(self, run_id: str) -> RunRecord:
        try:
            record = await (await self._registry()).get(run_id)
        except RunNotFoundError:
            unstarted = self._unstarted(run_id)
            if unstarted is None:
                raise
            return unstarted
        placed([record], self._places())
        live = self._live.get(run_id)
        if live is not None and live.latest is not None and not live.done.is_set():
            record.last_progress = live.latest.message
        return record

    async def wait(self, run_id: str, timeout_s: float) -> ExecutionResult | None:
        """The result once the run finishes, or None if it is still running after ``timeout_s``."""
        with anyio.move_on_after(timeout_s):
            member = self._list_member(run_id)
            if member is not None:  # a task of a list, maybe not started yet
                await member.done.wait()
            live = self._live.get(run_id)
            if live is not None:
                await live.done.wait()
                return live.result
            while True:  # owned by another process: follow its row
                record = await self._row(run_id)
                if record.status.finished:
                    return record.to_result()
                await anyio.sleep(_POLL_S)
        return None

    async def list_runs(self, query: RunFilter) -> list[RunRecord]:
        """Recorded runs and the pending tasks of this backend's lists, newest first."""
        pending = await self._pending_runs(query.list_id)
        return placed(await matching_runs(await self._registry(), query, pending), self._places())

    async def find_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Run ids starting with ``prefix`` (for front ends that accept a short id), pending list tasks included."""
        found = await (await self._registry()).find_ids(prefix, limit=limit)
        return merge_ids(found, await self._pending_runs(None), prefix, limit)

    async def _pending_runs(self, list_id: str | None) -> list[RunRecord]:
        """The tasks of this backend's lists (or of ``list_id``) that have not started, as ``pending`` runs."""
        lists = [live for key, live in self._lists.items() if list_id is None or key == list_id]
        records = (self._unstarted(m.run_id) for live in lists for m in live.core.members)
        return [r for r in records if r is not None and r.status is RunStatus.PENDING]

    def _places(self) -> dict[str, int]:
        """Each task's place in this backend's lists (run id -> 1-based index)."""
        return {m.run_id: m.index for live in self._lists.values() for m in live.core.members}

    def _unstarted(self, run_id: str) -> RunRecord | None:
        """A task of a live list without a row: ``pending`` (not started, or being prepared a moment ago), or
        ``skipped`` in the moment before its row is written; None for any other id."""
        for list_id, live in self._lists.items():
            member = live.core.member(run_id)
            if member is None or member.recorded:
                continue
            task, cwd, index, created = member.task, str(member.request.cwd), member.index, live.created_at
            if member.state == "skipped":
                reason = member.reason or "skipped"
                return skipped_record(
                    run_id, list_id=list_id, index=index, task=task, cwd=cwd, created_at=created, reason=reason
                )
            if member.state == "pending" or (member.state == "running" and run_id not in self._live):
                total = len(live.core.members)
                return pending_record(
                    run_id, list_id=list_id, index=index, total=total, task=task, cwd=cwd, created_at=created
                )
        return None

    async def transcript(self, run_id: str, query: TranscriptQuery) -> TranscriptChunk:
        record = await self.status(run_id)
        unstarted = unstarted_transcript(record)
        if unstarted is not None:
            raise unstarted
        if not record.transcript_path:
            raise TranscriptNotFoundError(f"run {run_id} kept no transcript (save_transcript was off)")
        return read_chunk(Path(record.transcript_path), run_id, query, finished=record.status.finished)

    # --- task lists ----------------------------------------------------------------------------------------------

    async def submit_list(self, request: ListRequest) -> str:
        """Start a task list in the background; each task is a run of this backend (see the protocol)."""
        group = self._started_group()
        if request.list_id in self._lists:
            return request.list_id
        log_ = _EventLog(request.list_id)
        core = TaskList(
            request.requests,
            await self._registry(),
            sequential=request.mode == "sequential",
            max_parallel=request.max_parallel,
            stop_on_error=request.stop_on_error,
            execute=self.execute,
        )
        live = _LiveList(core, log_)
        core.on_progress = live.publish
        self._forget_finished_lists()
        self._lists[request.list_id] = live
        group.start_soon(self._drive_list, live)
        return request.list_id

    async def _drive_list(self, live: _LiveList) -> None:
        try:
            await live.core.run()
        except Exception:
            log.exception("task list %s crashed", live.core.list_id)
        finally:
            live.log.finish(None)

    async def cancel_list(self, list_id: str, reason: str = "cancelled") -> bool:
        live = self._lists.get(list_id)
        if live is None or live.done.is_set():
            return False
        await live.core.cancel(reason)
        await live.done.wait()
        return True

    async def list_outcome(self, list_id: str, timeout_s: float = 0.0) -> ListOutcome:
        live = self._lists.get(list_id)
        if live is None:
            return await self._outcome_from_rows(list_id)
        with anyio.move_on_after(timeout_s):
            await live.done.wait()
        return live.outcome()

    async def list_of(self, run_id: str) -> str | None:
        for list_id, live in self._lists.items():
            if live.core.member(run_id) is not None:
                return list_id
        return None

    async def _outcome_from_rows(self, list_id: str) -> ListOutcome:
        """A list this backend did not run (or has forgotten): what its rows say."""
        rows = await (await self._registry()).list_runs(list_id=list_id, limit=500)
        if not rows:
            raise RunNotFoundError(list_id)
        return outcome_from_rows(list_id, rows)

    # --- memory --------------------------------------------------------------------------------------------------

    def latest(self, run_id: str) -> ProgressUpdate | None:
        live = self._live.get(run_id)
        return live.latest if live else None

    def live_run_ids(self) -> list[str]:
        return [run_id for run_id, live in self._live.items() if not live.done.is_set()]

    def _forget_finished(self) -> None:
        """Drop finished runs from memory (their rows stay in the store); keeps a long-lived server flat."""
        for run_id in [r for r, live in self._live.items() if live.done.is_set()]:
            del self._live[run_id]

    def _forget_finished_lists(self) -> None:
        finished = [list_id for list_id, live in self._lists.items() if live.done.is_set()]
        for list_id in finished[: max(0, len(finished) - _KEPT_LISTS)]:
            del self._lists[list_id]


__all__ = ["LocalBackend"]
