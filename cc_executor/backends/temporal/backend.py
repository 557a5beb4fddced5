"""``TemporalBackend``: the front ends' side of runs executed on Temporal workers.

Each run is a workflow whose id is the run id (so submitting twice never starts two). Its state lives in
Temporal; the front end keeps its SQLite registry filled from what it observes, so ``cc-executor runs``/``show``
work as before:
- while the run is live, from ``describe``: the pending activity's attempt, its worker, and the heartbeat, which
  carries the latest progress updates with their sequence numbers (only the current attempt's heartbeat counts);
- when it ends, from the workflow's result, which also says which worker ran it, how many attempts it took, and
  ships the transcript (gzipped; its last MiB when longer) so the front end keeps a copy that outlives the worker.
Nothing here needs to stay up for a run to go on: a restarted front end finds its runs through the registry rows
marked ``backend = 'temporal'`` and Temporal. Rows are brought up to date when a run is looked at (status, wait,
events, list) and, while the backend is entered (``async with``), by a background sweep.

A live transcript is read from the worker that writes it, through a short workflow on that worker's own task
queue; when that worker does not answer, the front end says so and returns the latest progress it has.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

import anyio
import anyio.abc
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from cc_executor.backends.list_outcomes import outcome_from_rows, outcome_of
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
from cc_executor.backends.temporal.client import connect
from cc_executor.backends.temporal.list_events import ListLog
from cc_executor.backends.temporal.observation import Observation, events_from, observe
from cc_executor.backends.temporal.rows import record_progress, record_result
from cc_executor.backends.temporal.settings import TemporalSettings
from cc_executor.backends.temporal.worker import transcript_queue
from cc_executor.backends.temporal.workflow import CANCEL_SIGNAL, RUN_WORKFLOW, TRANSCRIPT_WORKFLOW
from cc_executor.backends.transcript_chunks import read_chunk
from cc_executor.engine.recovery import connect_registry
from cc_executor.engine.task_list_runner import ListMember, TaskList, UpdateCallback
from cc_executor.errors import InvalidRequestError, RunNotFoundError, TranscriptNotFoundError
from cc_executor.models import Approval, ApprovalDecision, ExecutionResult, RunRecord, RunRequest, RunStatus
from cc_executor.registry.store import RunStore

log = logging.getLogger(__name__)

BACKEND = "temporal"
_START_SLACK_S = 120.0  # an attempt's start-to-close: the run's own wall timeout (the engine enforces it) + slack
_SWEEP_S = 5.0
_DRAIN_S = 2.0  # how long wait() lets followers deliver a finished run's last events
_ORPHAN_AFTER_S = 60.0  # a row whose workflow Temporal does not know after this long is lost


@dataclass
class _Follow:
    """The ``events`` iterators following one run: ``wait`` wakes them when it ends and lets them drain."""

    count: int = 0
    wake: anyio.Event = field(default_factory=anyio.Event)
    drained: anyio.Event = field(default_factory=anyio.Event)


class TemporalBackend:
    """Runs as Temporal workflows; see the module doc. ``settings`` default to ``CC_EXECUTOR_TEMPORAL_*``."""

    name = BACKEND

    def __init__(
        self,
        settings: TemporalSettings | None = None,
        *,
        store_path: Path | None = None,
        transcript_dir: Path | None = None,
        poll_s: float = 0.5,
        page_timeout_s: float = 5.0,
    ) -> None:
        self.settings = settings or TemporalSettings.from_env()
        self.store_path = store_path
        self.transcript_dir = transcript_dir
        self.poll_s = poll_s
        self.page_timeout_s = page_timeout_s
        self._client: Client | None = None
        self._store: RunStore | None = None
        self._lock = anyio.Lock()
        self._group: anyio.abc.TaskGroup | None = None
        self._lists: dict[str, TaskList] = {}
        self._synced_attempts: dict[str, int] = {}
        self._follows: dict[str, _Follow] = {}
        self._list_logs: dict[str, ListLog] = {}

    # --- lifecycle --------------------------------------------------------------------------------------------

    async def __aenter__(self) -> TemporalBackend:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._sweep)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._group is not None
        self._group.cancel_scope.cancel()  # runs go on in Temporal; only this process's watchers stop
        try:
            return await self._group.__aexit__(exc_type, exc, tb)
        finally:
            self._group = None
            await self.aclose()

    async def aclose(self) -> None:
        if self._group is not None:
            self._group.cancel_scope.cancel()
        if self._store is not None:
            with anyio.CancelScope(shield=True):
                await self._store.close()
            self._store = None
        self._client = None

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await connect(self.settings)
        return self._client

    async def store(self) -> RunStore:
        async with self._lock:
            if self._store is None:
                self._store = await connect_registry(self.store_path)
        return self._store

    # --- submitting -------------------------------------------------------------------------------------------

    async def preflight(self, request: RunRequest) -> None:
        """What this backend cannot do, and whether Temporal answers; ``claude`` and the cwd are the workers' (a
        worker refuses what it can't run)."""
        _refuse_ask_mode(request)
        await self.client()

    async def approve(
        self,
        run_id: str,
        request_id: str,
        decision: ApprovalDecision,
        *,
        decided_by: str = "caller",
        message: str | None = None,
    ) -> Approval:
        """Runs on workers never ask (ask mode is refused at submit), so there is nothing to answer."""
        await (await self.store()).get(run_id)  # RunNotFoundError for an unknown id
        raise InvalidRequestError(f"run {run_id} has no question {request_id!r}: {_NO_ASK_MODE}")

    async def submit(self, request: RunRequest, *, activity_queue: str | None = None) -> str:
        _refuse_ask_mode(request)
        client = await self.client()  # unreachable: refuse before anything is recorded
        store = await self.store()
        try:
            await store.create_run(request, argv=[], owner_pid=os.getpid(), backend=BACKEND)
        except InvalidRequestError:
            record = await store.get(request.run_id)
            if record.backend != BACKEND:
                raise InvalidRequestError(f"run id {request.run_id!r} already exists (not a Temporal run)") from None
        spec = {
            "request": request.model_dump(mode="json"),
            "max_attempts": request.config.max_attempts,
            "heartbeat_timeout_s": self.settings.heartbeat_timeout_s,
            "start_to_close_s": request.timeout_s + _START_SLACK_S,
            "activity_queue": activity_queue,
        }
        with contextlib.suppress(WorkflowAlreadyStartedError):  # submitted before: one run, one workflow
            await client.start_workflow(
                RUN_WORKFLOW,
                spec,
                id=request.run_id,
                task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        return request.run_id

    async def resume(self, request: ResumeRequest) -> str:
        """A new run continuing a finished one's session, on the worker that holds the session (its own queue)."""
        original = await (await self.store()).get(request.run_id)
        if not original.status.finished:
            raise InvalidRequestError(f"run {request.run_id} has not finished yet: wait for it before resuming")
        if not original.session_id:
            raise InvalidRequestError(f"run {request.run_id} has no Claude session to resume")
        new = request.request.model_copy(
            update={
                "cwd": Path(original.cwd),
                "resume_session_id": original.session_id,
                "fork_session": request.fork,
                "parent_run_id": original.run_id,
                "run_id": str(uuid.uuid4()),
            }
        )
        queue = transcript_queue(self.settings.task_queue, original.worker) if original.worker else None
        return await self.submit(new, activity_queue=queue)

    async def cancel(self, run_id: str, reason: str = "cancelled") -> CancelReport:
        """Signal the run's workflow (the first reason wins there too); the worker kills the tree when the cancel
        reaches it with its next heartbeat, and this returns once the workflow has ended."""
        pending = await self._pending_member(run_id)
        if pending is not None:
            task_list = pending[0]
            await task_list.cancel_member(run_id, reason)
            return CancelReport(run_id=run_id, cancelled=True, status=RunStatus.SKIPPED, owner="elsewhere")
        record = await (await self.store()).get(run_id)
        handle = (await self.client()).get_workflow_handle(run_id)
        try:
            await handle.signal(CANCEL_SIGNAL, reason)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            record = await self._sync(run_id)  # closed already (NOT_FOUND for a closed workflow's signal)
            return CancelReport(run_id=run_id, cancelled=False, status=record.status, owner="elsewhere")
        if not record.status.finished:
            await (await self.store()).mark_cancelled(run_id, reason)
        observation = await self._observe(run_id, wait_s=60.0)
        record = await self._sync(run_id, observation) if observation.finished else await self.status(run_id)
        cancelled = observation.finished and record.status is RunStatus.CANCELLED
        return CancelReport(run_id=run_id, cancelled=cancelled, status=record.status, owner="elsewhere")

    async def _pending_member(self, run_id: str) -> tuple[TaskList, ListMember] | None:
        """A task-list member not yet submitted to Temporal (so it has no workflow and maybe no row)."""
        for task_list in self._lists.values():
            member = task_list.member(run_id)
            if member is not None and member.state == "pending":
                return task_list, member
        return None

    async def _until_submitted(self, run_id: str, timeout_s: float) -> bool:
        """For a pending list member: until it is submitted or skipped (False if the timeout came first)."""
        deadline = anyio.current_time() + timeout_s
        pending = await self._pending_member(run_id)
        while pending is not None and anyio.current_time() < deadline:
            await anyio.sleep(min(self.poll_s, max(0.0, deadline - anyio.current_time())))
            pending = await self._pending_member(run_id)
        return pending is None

    # --- observing --------------------------------------------------------------------------------------------

    async def status(self, run_id: str) -> RunRecord:
        pending = await self._pending_member(run_id)
        if pending is not None:
            request = pending[1].request
            return RunRecord(run_id=run_id, status=RunStatus.QUEUED, task=request.task, cwd=str(request.cwd))
        record = await (await self.store()).get(run_id)
        if record.backend == BACKEND and (not record.status.finished or record.finished_at is None):
            return await self._sync(run_id)
        return record

    async def wait(self, run_id: str, timeout_s: float) -> ExecutionResult | None:
        started = anyio.current_time()
        if not await self._until_submitted(run_id, timeout_s):
            return None
        record = await (await self.store()).get(run_id)
        if record.status is RunStatus.SKIPPED:
            return record.to_result()
        timeout_s = max(0.0, timeout_s - (anyio.current_time() - started))
        observation = await self._observe(run_id, wait_s=timeout_s)
        if not observation.finished:
            return None
        record = await self._sync(run_id, observation)
        follow = self._follows.get(run_id)
        if follow is not None:
            # Followers poll; let them deliver the run's last events (shipped with the result) before a caller
            # that waits and follows at once (the MCP server) stops following.
            follow.wake.set()
            with anyio.move_on_after(_DRAIN_S):
                await follow.drained.wait()
        return record.to_result()

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        list_log = self._list_logs.get(run_id)
        if list_log is not None:  # a list id: its tasks' progress, then finished
            async for event in list_log.follow(after):
                yield event
            return
        await self._until_submitted(run_id, float("inf"))
        record = await (await self.store()).get(run_id)
        if record.status is RunStatus.SKIPPED:
            yield RunEvent(run_id=run_id, seq=after + 1, kind="finished", status=record.status)
            return
        follow = self._follows.setdefault(run_id, _Follow())
        follow.count += 1
        try:
            async for event in self._follow(run_id, after, follow):
                yield event
        finally:
            follow.count -= 1
            if follow.count == 0:
                follow.drained.set()
                self._follows.pop(run_id, None)

    async def _follow(self, run_id: str, after: int, follow: _Follow) -> AsyncIterator[RunEvent]:
        last = after
        while True:
            observation = await self._observe(run_id)
            for event in observation.events:
                if event.seq > last:
                    last = event.seq
                    yield event
            if observation.finished:
                for event in events_from(run_id, (observation.envelope or {}).get("events") or [], None):
                    if event.seq > last:
                        last = event.seq
                        yield event
                record = await self._sync(run_id, observation)
                final = max(last, int((observation.envelope or {}).get("last_seq") or 0)) + 1
                if final > after:
                    yield RunEvent(run_id=run_id, seq=final, kind="finished", status=record.status)
                return
            await self._sync(run_id, observation)
            with anyio.move_on_after(self.poll_s):
                await follow.wake.wait()

    async def list_runs(self, query: RunFilter) -> list[RunRecord]:
        store = await self.store()
        for record in await store.unfinished_runs(backend=BACKEND):
            await self._sync_quietly(record.run_id)
        return await matching_runs(store, query)

    async def find_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Run ids in this front end's registry starting with ``prefix``."""
        return await (await self.store()).find_ids(prefix, limit=limit)

    async def transcript(self, run_id: str, query: TranscriptQuery) -> TranscriptChunk:
        record = await self.status(run_id)
        if record.transcript_path and await anyio.Path(record.transcript_path).is_file():
            return read_chunk(Path(record.transcript_path), run_id, query, finished=record.status.finished)
        observation = await self._observe(run_id)
        queue = observation.transcript_queue or (
            transcript_queue(self.settings.task_queue, record.worker) if record.worker else None
        )
        if queue is None:
            raise TranscriptNotFoundError(f"run {run_id} has no transcript yet: no worker has started it")
        try:
            return await self._remote_page(run_id, queue, query)
        except TimeoutError:
            return self._leftovers(record, observation, queue)

    async def _remote_page(self, run_id: str, queue: str, query: TranscriptQuery) -> TranscriptChunk:
        client = await self.client()
        page_query = {"run_id": run_id, "query": query.model_dump(mode="json")}
        handle = await client.start_workflow(
            TRANSCRIPT_WORKFLOW,
            page_query,
            id=f"{run_id}-transcript-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=self.page_timeout_s),
        )
        try:
            with anyio.fail_after(self.page_timeout_s + 1):
                page = await handle.result()
        except WorkflowFailureError as exc:
            cause = getattr(exc.cause, "cause", None)
            if cause is not None and "TranscriptNotFoundError" in str(getattr(cause, "type", "")):
                raise TranscriptNotFoundError(str(getattr(cause, "message", cause))) from None
            raise TimeoutError(str(exc)) from None
        return TranscriptChunk.model_validate(page)

    def _leftovers(self, record: RunRecord, observation: Observation, queue: str) -> TranscriptChunk:
        """The worker holding the transcript is gone: say so, and give the progress lines this front end has."""
        worker = observation.worker or record.worker or queue
        note = (
            f"[cc-executor] the transcript of run {record.run_id} is kept by worker {worker}, which did not answer "
            f"within {self.page_timeout_s:g}s (stopped or unreachable); below is the latest progress known here"
        )
        lines = [note] + [e.progress.message for e in observation.events if e.progress is not None]
        if record.last_progress and len(lines) == 1:
            lines.append(record.last_progress)
        return TranscriptChunk(
            run_id=record.run_id, lines=lines, cursor=0, next_cursor=None, total_bytes=0, running=True
        )

    # --- task lists -------------------------------------------------------------------------------------------

    async def submit_list(self, request: ListRequest) -> str:
        if self._group is None:
            raise RuntimeError("TemporalBackend must be entered (async with) before submit_list")
        task_list = TaskList(
            request.requests,
            await self.store(),
            sequential=request.mode == "sequential",
            max_parallel=request.max_parallel,
            stop_on_error=request.stop_on_error,
            execute=self._execute_member,
        )
        if request.list_id in self._lists:
            return request.list_id
        log_ = ListLog(request.list_id)
        task_list.on_progress = log_.progress
        self._lists[request.list_id] = task_list
        self._list_logs[request.list_id] = log_
        self._group.start_soon(self._drive_list, task_list, log_)
        return request.list_id

    @staticmethod
    async def _drive_list(task_list: TaskList, log_: ListLog) -> None:
        try:
            await task_list.run()
        except Exception:
            log.exception("task list %s crashed", task_list.list_id)
        finally:
            log_.finish()

    async def cancel_list(self, list_id: str, reason: str = "cancelled") -> bool:
        task_list = self._lists.get(list_id)
        if task_list is None or task_list.done.is_set():
            return False
        await task_list.cancel(reason)
        await task_list.done.wait()
        return True

    async def list_outcome(self, list_id: str, timeout_s: float = 0.0) -> ListOutcome:
        task_list = self._lists.get(list_id)
        if task_list is None:
            return await self._outcome_from_rows(list_id)
        with anyio.move_on_after(timeout_s):
            await task_list.done.wait()
        return outcome_of(task_list, finished=task_list.done.is_set())

    async def list_of(self, run_id: str) -> str | None:
        return next((list_id for list_id, tl in self._lists.items() if tl.member(run_id) is not None), None)

    async def _outcome_from_rows(self, list_id: str) -> ListOutcome:
        """A list another front end (or this one before a restart) ran: what its rows say, refreshed."""
        rows = await (await self.store()).list_runs(list_id=list_id, limit=500)
        if not rows:
            raise RunNotFoundError(list_id)
        return outcome_from_rows(list_id, [await self.status(row.run_id) for row in rows])

    async def _execute_member(self, request: RunRequest, on_progress: UpdateCallback) -> ExecutionResult:
        """A list member as a Temporal run: progress relayed, and a cancelled member cancelled in Temporal."""
        await self.submit(request)
        try:
            async for event in self.events(request.run_id):
                if event.progress is not None:
                    await on_progress(event.progress)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                row = await (await self.store()).get(request.run_id)
                reason = row.error if row.status is RunStatus.CANCELLED and row.error else "cancelled: list stopped"
                await self.cancel(request.run_id, reason)
            raise
        return (await self.status(request.run_id)).to_result()

    # --- Temporal → registry ----------------------------------------------------------------------------------

    async def _observe(self, run_id: str, *, wait_s: float = 0.0) -> Observation:
        return await observe(await self.client(), run_id, wait_s=wait_s)

    async def _sync(self, run_id: str, observation: Observation | None = None) -> RunRecord:
        """Bring the registry row up to date with what Temporal says (every attempt recorded)."""
        observation = observation or await self._observe(run_id)
        store = await self.store()
        if observation.finished:
            assert observation.envelope is not None
            await record_result(store, run_id, observation.envelope, self.transcript_dir)
            self._synced_attempts.pop(run_id, None)
        elif observation.attempt:
            seen = await record_progress(store, run_id, observation, self._synced_attempts.get(run_id))
            if seen is not None:
                self._synced_attempts[run_id] = seen
        return await store.get(run_id)

    async def _sync_quietly(self, run_id: str) -> None:
        try:
            await self._sync(run_id)
        except RunNotFoundError:
            store = await self.store()
            record = await store.get(run_id)
            created = datetime.fromisoformat(record.created_at) if record.created_at else None
            if created is not None and datetime.now(UTC) - created > timedelta(seconds=_ORPHAN_AFTER_S):
                # Not a submit racing this sweep: the workflow never started or Temporal dropped it.
                await store.mark_status(
                    run_id, RunStatus.LOST, error_class="RunLostError", error="its workflow is not in Temporal"
                )
        except Exception:
            log.warning("could not refresh run %s from Temporal", run_id, exc_info=True)

    async def _sweep(self) -> None:
        """While entered: keep unfinished Temporal rows up to date, so `runs` shows them without being asked."""
        while True:
            with contextlib.suppress(Exception):
                for record in await (await self.store()).unfinished_runs(backend=BACKEND):
                    if record.run_id not in self._follows:  # followed runs are kept up to date by their followers
                        await self._sync_quietly(record.run_id)
            await anyio.sleep(_SWEEP_S)


_NO_ASK_MODE = (
    "the Temporal backend runs tasks on workers, whose permission prompts cannot be answered from here; "
    "use permission_prompts='deny' (the default) with allowed_tools"
)


def _refuse_ask_mode(request: RunRequest) -> None:
    if request.config.permission_prompts == "ask":
        raise InvalidRequestError(f"permission_prompts='ask' is not available: {_NO_ASK_MODE}")
